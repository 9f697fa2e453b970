"""The whole pipeline in one call: pool + queries.parquet -> matched/ -> selected/ -> corpus/.

`wit pipeline run`, the demo and the planner's probe all go through `run`; `on_stage` lets a caller
time or announce each stage without the pipeline knowing about clocks or labels.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from pipeline.balance import balance
from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
from pipeline.download import download
from pipeline.match import match
from core import storage

T = TypeVar("T")
# on_stage(name, call): runs call() and returns its result; name is "match", "balance" or "download".
StageHook = Callable[[str, Callable[[], T]], T]


def untimed(name: str, call: Callable[[], T]) -> T:
    return call()


def run(
    pool: tuple[str, ...],
    queries_path: str,
    out_dir: str,
    match_cfg: MatchConfig = MatchConfig(),
    balance_cfg: BalanceConfig = BalanceConfig(),
    download_cfg: DownloadConfig = DownloadConfig(),
    on_stage: StageHook = untimed,
) -> dict[str, Any]:
    """match -> balance -> download into out_dir/{matched,selected,corpus} (a local dir or a cloud URI);
    returns each stage's result.

    Each stage reuses its finished output, so rerunning after an interruption resumes where it stopped.
    """
    matched_dir, selected_dir = storage.join(out_dir, "matched"), storage.join(out_dir, "selected")
    corpus_dir = storage.join(out_dir, "corpus")
    matched = on_stage("match", lambda: match(tuple(pool), queries_path, matched_dir, match_cfg))
    selected = on_stage("balance", lambda: balance(matched_dir, selected_dir, balance_cfg))
    manifest = on_stage("download", lambda: download(selected_dir, corpus_dir, download_cfg))
    return {"match": matched, "balance": selected, "download": manifest}
