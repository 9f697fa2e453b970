"""`wit demo`: the whole path on the embedded default, and the summary a person reads at the end.
The handler, imported only when it runs (the parser in wit/demo/cli.py stays light)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from core.validate import check_at_least, check_local_output
from wit.demo.config import DemoConfig, smoke_config
from wit.demo.run import run_demo


def demo(args: argparse.Namespace) -> int:
    check_at_least({"--steps": args.steps}, 1)
    check_at_least({"--seed": args.seed}, 0)
    check_local_output(args.out, "--out", what="the demo")
    cfg = smoke_config(args.out) if args.smoke else DemoConfig(out=args.out)
    cfg = replace(cfg, seed=args.seed)
    if args.steps:
        cfg = replace(cfg, train_steps=args.steps)
    print(format_summary(run_demo(cfg)))
    return 0


def _join(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {count:,}" for name, count in ranked if count)


def format_summary(s: dict[str, Any]) -> str:
    p, t, z = s["pipeline"], s["train"], s["zeroshot"]
    corpus = p["corpus"]["counts"]
    ens, single = z["ensemble"], z["single"]
    lines = [
        "",
        "== summary ==",
        f"queries      {s['queries']['total']:,} ({_join(s['queries']['by_source'])})",
        f"pool         {p['pool_rows']:,} rows -> matched {p['matched']['output_rows']:,}"
        f" -> selected {p['selected']['output_rows']:,} -> downloaded {corpus['downloaded']:,}",
        f"  dropped at match:    {_join(p['matched']['dropped'])}",
        f"  not claimed:         {p['selected']['dropped'].get('not_claimed', 0):,}"
        f" (cap {s['config']['cap_per_query']} per query)",
        f"  download failures:   {_join(p['corpus']['failures']) or 'none'}",
        f"  address guard:       --allow-network {' '.join(p['corpus']['config'].get('allow_networks', []))}"
        " opened for the demo's loopback web; all other private ranges stay refused",
        f"train        {t['steps']} steps, loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}",
        f"zero-shot    {ens['num_classes']} classes, {ens['n']} held-out images: top-1 {ens['top1']:.1%}"
        f" (prompt ensemble) / {single['top1']:.1%} (single prompt); chance {ens['chance']:.1%}"
        f" -> {ens['top1'] / ens['chance']:.1f}x chance",
        "seconds      " + ", ".join(f"{k.split(':')[0]} {v:.0f}" for k, v in s["seconds"].items()),
        "artifacts",
        *(f"  {name:16s} {path}" for name, path in s["artifacts"].items()),
        f"  {'summary':16s} {s['artifacts']['queries.parquet'].rsplit('/', 1)[0]}/summary.json",
    ]
    return "\n".join(lines)
