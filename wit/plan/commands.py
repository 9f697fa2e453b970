"""`wit plan`'s handler, imported only when it runs (the parser in wit/plan/cli.py stays light: the
planner's training model imports torch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.model import MODELS
from core.errors import WitError
from wit.plan.balance_sim import plot
from wit.plan.build import build_plan
from wit.plan.check import compare, comparison_table, demo_stage_seconds, pair_counts, pairs_table
from wit.plan.checks import check_plan_args
from wit.plan.cli import overridden
from wit.plan.config import load_plan_config
from wit.plan.report import format_plan, stage_seconds


def run_plan(args: argparse.Namespace) -> int:
    check_plan_args(args)
    cfg = overridden(load_plan_config(args.plan), args)
    plan, rates = build_plan(cfg, results_dir=args.results, compiled=False if args.eager else None,
                             slowdown=args.slowdown)
    text = format_plan(plan, rates, _models(args.models, cfg.train.model))
    if args.compare:
        text += "\n\n### Predicted vs measured\n\n" + _comparison(plan, args.compare)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.plot:
        print(f"\nwrote {plot(plan.workload.balance, args.plot, title=cfg.name.split(':')[0])}")
    if args.json:
        Path(args.json).write_text(json.dumps(plan_json(plan), indent=2) + "\n")
    return 0


def _comparison(plan, summary_path: str) -> str:
    try:
        summary = json.loads(Path(summary_path).read_text())
        measured = demo_stage_seconds(summary)
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise WitError(f"cannot read stage seconds from {summary_path}: {err}",
                       hint="pass the summary.json a `wit demo` run wrote in its --out directory, or the "
                            "JSON of `python bench/probe.py plan-check --out FILE`") from err
    text = comparison_table(compare(stage_seconds(plan), measured))
    if "items" in summary:                # a probe run: it also counted the pairs of each stage
        text += "\n\n" + pairs_table(pair_counts(plan, summary))
    return text


def _models(spec: str | None, default: str) -> tuple[str, ...]:
    if not spec:
        return (default,)
    if spec == "all":
        return tuple(name for name in MODELS if not name.startswith("tiny"))
    return tuple(m.strip() for m in spec.split(","))


def plan_json(plan) -> dict:
    return {"name": plan.config.name,
            "stages": {s.name: {"wall_s": s.wall_s, "core_hours": s.core_hours, "gpu_hours": s.gpu_hours,
                                "stored_bytes": s.stored_bytes, "moved_bytes": s.moved_bytes,
                                "peak_worker_bytes": s.peak_worker_bytes, "bottleneck": s.bottleneck,
                                "nodes": s.nodes, "node_type": s.node_type, "cost": s.cost,
                                "sources": [f.source for f in s.figures]} for s in plan.stages},
            "workload": {k: v for k, v in plan.workload.__dict__.items() if k != "balance"}}
