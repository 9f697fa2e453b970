"""`wit plan`: what a full WIT build and CLIP run will take, from our measured rates.

    from wit.plan import build_plan, load_plan_config
    plan, rates = build_plan(load_plan_config("paper"))
    plan.stage("train").gpu_hours

config (what is asked) -> rates (what bench/ measured, with sources) -> balance_sim (how many pairs to
match) + training (memory, GPUs, step time) -> model (per stage) -> report (tables).
"""

from __future__ import annotations

from wit.plan.balance_sim import plot
from wit.plan.config import PlanConfig, load_cluster, load_plan_config
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


__all__ = ["PlanConfig", "Plan", "Rates", "build_plan", "load_plan_config", "plot"]
