"""`wit plan`: what a full WIT build and CLIP run will take, from our measured rates.

    from wit.plan.build import build_plan
    from wit.plan.config import load_plan_config
    plan, rates = build_plan(load_plan_config("paper"))
    plan.stage("train").gpu_hours

config (what is asked) -> rates (what bench/ measured, with sources) -> balance_sim (how many pairs to
match) + training (memory, GPUs, step time) -> model (per stage) -> report (tables) -> build (all of it).
Nothing is imported here: `wit --help` imports wit.plan.cli, and wit.plan.training imports torch.
"""
