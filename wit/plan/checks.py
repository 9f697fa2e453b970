"""`wit plan`'s input checks, before any rate is read: sizes above zero (a negative corpus would
plan nonsense and exit 0), known model names, files that exist, outputs that can be written."""

from __future__ import annotations

import argparse

from trainer.model import MODELS
from core import validate


def check_plan_args(args: argparse.Namespace) -> None:
    validate.check_positive({"--pairs": args.pairs, "--epochs": args.epochs, "--slowdown": args.slowdown})
    validate.check_at_least({"--cpu-nodes": args.cpu_nodes, "--gpu-nodes": args.gpu_nodes, "--cap": args.cap}, 1)
    named = [args.model] if args.model else []
    if args.models and args.models != "all":
        named += [m.strip() for m in args.models.split(",")]
    for model in named:
        validate.check_choice("--model" if model == args.model else "--models", model, MODELS, "model")
    # PLAN itself and --results are checked where they are read (wit.plan.config, wit.plan.rates), in
    # milliseconds and with hints that name the presets and the bench script to run.
    if args.cluster and args.cluster != "local":
        validate.check_file(args.cluster, "--cluster", hint="a Ray cluster YAML, or `local`")
    if args.compare:
        validate.check_file(args.compare, "--compare", hint="a `wit demo` summary.json")
    for name in ("plot", "markdown", "json"):
        if getattr(args, name):
            validate.check_output(getattr(args, name), f"--{name}", directory=False)
