"""The six stages in one call: queries -> match -> balance -> download -> train -> eval.

`wit demo` runs it on the embedded default, and bench/probe.py (what `wit plan`'s local figures stand
on) runs it at the sizes it times; the middle three are `pipeline.run.run`, the same call as `wit
pipeline run`. Each stage reuses its finished output (core.stage), so a rerun only does what is missing.
`on_stage(name, call)` wraps every stage, for the demo's announcements and the probe's clock.

The pool comes from `serve_pool`, a context manager yielding the pool files: the web its URLs point at
(the demo's loopback server) must stay up from match through download, and no longer.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
from pipeline.run import StageHook, untimed
from pipeline.run import run as run_pipeline
from queries.build import build as build_queries
from queries.config import QueriesConfig
from trainer.eval.zeroshot import ZeroShotConfig, zeroshot
from trainer.config import TrainConfig
from trainer.fit import fit

STAGES = ("queries", "match", "balance", "download", "train", "eval")


@dataclass(frozen=True)
class FlowPaths:
    out: Path

    @property
    def queries(self) -> Path:
        return self.out / "queries.parquet"

    @property
    def corpus(self) -> Path:
        return self.out / "corpus"

    @property
    def run(self) -> Path:
        return self.out / "run"

    def artifacts(self) -> dict[str, str]:
        names = ("queries.parquet", "matched", "selected", "corpus", "run", "eval")
        return {name: str(self.out / name) for name in names}


@dataclass(frozen=True)
class EvalSet:
    images: str                           # an image-folder tree of held-out images
    classes_json: str                     # its class names and prompt templates


@dataclass(frozen=True)
class FlowConfig:
    queries: QueriesConfig
    train: TrainConfig                    # corpus_dir and run_dir: FlowPaths(out).corpus and .run
    match: MatchConfig = MatchConfig()
    balance: BalanceConfig = BalanceConfig()
    download: DownloadConfig = DownloadConfig()
    eval_templates: tuple[str, ...] = ("ensemble", "single")


def run_flow(out: Path, cfg: FlowConfig, serve_pool: Callable[[], AbstractContextManager[tuple[str, ...]]],
             eval_set: EvalSet, on_stage: StageHook = untimed) -> dict[str, Any]:
    """{stage: result} of the six stages into `out` (queries.parquet, matched/, selected/, corpus/, run/)."""
    paths = FlowPaths(out)
    if (Path(cfg.train.corpus_dir), Path(cfg.train.run_dir)) != (paths.corpus, paths.run):
        raise ValueError(f"train must read {paths.corpus} and write {paths.run}: the flow's own directories")
    results: dict[str, Any] = {"queries": on_stage("queries", lambda: build_queries(cfg.queries, str(paths.queries)))}
    with serve_pool() as pool:
        results |= run_pipeline(pool, str(paths.queries), str(out), cfg.match, cfg.balance, cfg.download, on_stage)
    results["train"] = on_stage("train", lambda: fit(cfg.train))
    checkpoint = results["train"]["checkpoint"]
    results["eval"] = on_stage("eval", lambda: {
        templates: zeroshot(ZeroShotConfig(checkpoint=checkpoint, images=eval_set.images,
                                           classes_json=eval_set.classes_json, templates=templates))
        for templates in cfg.eval_templates})
    return results
