"""`wit queries build`'s handler, imported only when it runs (the parser in queries/cli.py stays light)."""

from __future__ import annotations

import argparse
import logging

from queries.build import build
from queries.checks import check_build
from queries.cli import config_from_args
from queries.schema import read_queries
from core.artifacts import read_provenance


def run_build(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_build(cfg, args.out)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build(cfg, args.out, use_ray=not args.no_ray)
    table = read_queries(out)
    counts = read_provenance(out).get("counts", {})
    print(f"{table.num_rows:,} queries -> {out}")
    for source, kept in counts.get("after_caps", {}).items():
        print(f"  {source:8s} {kept:>9,}  (of {counts['before_caps'][source]:,} before caps)")
    top = table.slice(0, 10).to_pylist()
    print("top 10:", ", ".join(f"{row['query']} ({row['count']:,})" for row in top))
    return 0
