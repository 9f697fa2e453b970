"""`wit pipeline match|balance|download|run` and `wit inspect`: the handlers, imported only when one runs
(the parser in pipeline/cli.py stays light). Each checks its inputs first, then calls its recipe."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.balance import balance
from pipeline.checks import check_balance, check_download, check_inspect, check_match, check_run
from pipeline.cli import balance_config, download_config, match_config
from pipeline.contact_sheet import write_contact_sheet
from pipeline.download import download
from pipeline.inspect import format_summary, summarize
from pipeline.match import match
from pipeline.retry import retry_failures
from pipeline.run import run


def _print(result: dict) -> int:
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("queries", "shards")}, indent=2, default=str)
    )
    return 0


def run_match(a: argparse.Namespace) -> int:
    check_match(a)
    return _print(match(tuple(a.pool), a.queries, a.out, match_config(a)))


def run_balance(a: argparse.Namespace) -> int:
    check_balance(a)
    return _print(balance(a.matched, a.out, balance_config(a)))


def run_download(a: argparse.Namespace) -> int:
    check_download(a)
    if a.retry_failures:
        manifest = retry_failures(a.selected, a.out, download_config(a))
        return _print({**manifest["counts"], "retries": manifest.get("retries", [])[-1:]})
    return _print(download(a.selected, a.out, download_config(a))["counts"])


def run_pipeline(a: argparse.Namespace) -> int:
    check_run(a)
    result = run(tuple(a.pool), a.queries, a.out, match_config(a), balance_config(a), download_config(a))
    return _print(result["download"]["counts"])


def run_inspect(a: argparse.Namespace) -> int:
    check_inspect(a)
    summary = summarize(a.path, queries=a.queries, n=a.n)
    if a.html:
        summary["html"] = str(write_contact_sheet(a.path, a.html, queries=a.queries, n=a.sheet_rows))
    sys.stdout.write(
        (json.dumps(summary, indent=2, default=str) if a.json else format_summary(summary)) + "\n"
    )
    if a.html and not a.json:
        sys.stdout.write(f"contact sheet: {summary['html']}\n")
    return 0
