"""`build_plan`: a plan config and our measured rates -> the plan per stage, and the rates it used."""

from __future__ import annotations

from wit.plan.config import PlanConfig, load_cluster
from wit.plan.model import Plan, plan
from wit.plan.rates import RESULTS_DIR, Rates, load_rates, with_local_rates


def build_plan(cfg: PlanConfig, results_dir: str | None = None, compiled: bool | None = None,
               slowdown: float = 1.0) -> tuple[Plan, Rates]:
    cluster = load_cluster(cfg.cluster)
    rates = load_rates(results_dir or RESULTS_DIR, compiled=cfg.train.compile if compiled is None else compiled,
                       gpu=cluster.gpu.gpu_name if cluster.gpu else "")
    if cfg.local_rates:
        rates = with_local_rates(rates, results_dir or RESULTS_DIR, cfg.corpus.usable_alt_text_share)
    return plan(cfg, rates, cluster, slowdown), rates
