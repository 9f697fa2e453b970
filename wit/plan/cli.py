"""`wit plan`: what a corpus build and CLIP run will take on a cluster, from our measured rates.

Its options and help, and the options -> plan config overrides; the handler is in wit/plan/commands.py,
imported only when it runs (the planner's training model imports torch)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from core.commands import command

HELP = """\
Plan a run before paying for it: per stage (queries, match, balance, download, ingest, train, eval)
the core-hours or GPU-hours, the wall time on the cluster, bytes stored and moved, peak memory per
worker, the bottleneck and the cost, then how balancing shapes the corpus and how training fits in
GPU memory.

Every figure stands on a measured rate from bench/results/*.json (printed with its file and key) or
on an assumption printed as one. Nothing runs: it takes seconds.

PLAN is a preset or a YAML/JSON file:
  paper        400M pairs, 500k queries, cap 20k, ViT-L/14, 32 epochs, batch 32,768 (the CLIP paper)
  b32-budget   the same corpus, ViT-B/32
  demo         `wit demo` on this machine; demo-smoke: `wit demo --smoke` (compare with its summary.json)
  plan-check   every stage on this machine over the demo's web, sized so each outlasts its start-up:
               the run that checks this model against reality (tests/wit/plan/test_plan_reality.py)

A plan file starts from a preset and overrides what it names (every key: wit/plan/config.py):
  preset: paper
  corpus: {target_pairs: 100_000_000, cap_per_query: 20000, download_success: 0.6}
  train:  {model: ViT-B/16, epochs: 16, global_batch: 32768, state_dtype: fp16}
  cluster: {config: cluster/gcp.yaml, gpu_nodes: 8}
  prices: {n2-standard-32: 1.55, a3-highgpu-8g: 88.25}

Examples:
  wit plan paper                                   # the paper's run on cluster/aws.yaml
  wit plan b32-budget --gpu-nodes 1 --plot b32.png # one p5 node; per-query counts before/after balancing
  wit plan paper --cpu-nodes 64 --markdown out.md  # twice the CPU nodes, as Markdown
  wit plan demo-smoke --compare OUT/summary.json    # predicted vs measured seconds of `wit demo --smoke --out OUT`

Checking the model on your machine (about 5 minutes on 2 cores; the local presets read
bench/results/local_rates.json, this machine's per-item costs: `python bench/local_rates.py`):
  python bench/overheads.py --out-dir R   # then copy the other bench/results/*.json into R
  python bench/probe.py plan-check --out run.json
  wit plan plan-check --results R --compare run.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="what a full build and training run will take (nodes, hours, bytes, cost)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", nargs="?", default="paper", help="a preset or a YAML/JSON plan file (default: paper)")
    p.add_argument("--cluster", help="a Ray cluster YAML (node types: CPU and GPU workers) or `local`")
    p.add_argument("--cpu-nodes", type=int, help="CPU worker nodes (default: the YAML's max_workers)")
    p.add_argument("--gpu-nodes", type=int, help="GPU worker nodes (default: the YAML's max_workers)")
    p.add_argument("--model", help="override the model (see `wit models`)")
    p.add_argument("--pairs", type=float, help="override target_pairs, e.g. 4e9")
    p.add_argument("--epochs", type=float, help="override the epochs")
    p.add_argument("--cap", type=int, help="override cap_per_query")
    p.add_argument("--eager", action="store_true", help="use the measured eager step rate, not torch.compile's")
    p.add_argument("--results", default=None, help="bench results directory (default: the packaged copy of bench/results, wit/plan/data/results)")
    p.add_argument("--models", default=None,
                   help="comma-separated models for the training-memory table (default: the plan's; `all`)")
    p.add_argument("--plot", help="write a PNG of per-query pair counts before/after balancing")
    p.add_argument("--markdown", help="also write the report to this file")
    p.add_argument("--json", help="write stage figures as JSON (seconds, hours, bytes) to this file")
    p.add_argument("--compare", metavar="SUMMARY_JSON",
                   help="a `wit demo` summary.json: print predicted vs measured seconds per stage")
    p.add_argument("--slowdown", type=float, default=1.0,
                   help="scale the times measured on this machine's CPUs (a machine N times slower or busier)")
    p.set_defaults(run=command("wit.plan.commands", "run_plan"))


def overridden(cfg, args):
    """The plan config with what the options override (also bench/scaling.py's)."""
    cluster = cfg.cluster
    if args.cluster:
        cluster = replace(cluster, config=args.cluster, node_start_s=0.0 if args.cluster == "local" else cluster.node_start_s)
    if args.cpu_nodes is not None:
        cluster = replace(cluster, cpu_nodes=args.cpu_nodes)
    if args.gpu_nodes is not None:
        cluster = replace(cluster, gpu_nodes=args.gpu_nodes)
    corpus = replace(cfg.corpus, target_pairs=int(args.pairs)) if args.pairs else cfg.corpus
    if args.cap:
        corpus = replace(corpus, cap_per_query=args.cap)
    train = cfg.train
    if args.model:
        train = replace(train, model=args.model)
    if args.epochs:
        train = replace(train, epochs=args.epochs)
    return replace(cfg, cluster=cluster, corpus=corpus, train=train)
