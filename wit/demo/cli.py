"""`wit demo`: the whole path on the embedded default, and the summary a person reads at the end."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

HELP = """\
Run the whole path offline on the embedded default, in minutes on 2 CPUs:

  1. queries   the vendored Wikipedia excerpt + WordNet nouns  -> OUT/queries.parquet
  2. web       a loopback HTTP server of generated images       -> OUT/web/pool.parquet
  3. pipeline  match -> balance -> download with img2dataset    -> OUT/{matched,selected,corpus}/
  4. train     a tiny CLIP on 2 Ray Train workers               -> OUT/run/
  5. eval      zero-shot on held-out images of 8 colours        -> OUT/eval/results.json
  6. summary   counts at every stage, loss, accuracy vs chance  -> OUT/summary.json

Rerunning with the same --out reuses finished stages (same queries, same selected keys).
Look at the corpus afterwards with:  wit inspect OUT/corpus
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run every stage offline on the embedded default",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the web, balancing and training")
    parser.add_argument("--steps", type=int, help="training steps (default: 300)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every stage runs in about a minute")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from wit.demo.run import DemoConfig, run_demo, smoke_config
    from core.validate import check_at_least, check_local_output

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
