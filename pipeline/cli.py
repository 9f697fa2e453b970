"""`wit pipeline match|balance|download|run` and `wit inspect`: thin layers over the pipeline recipes."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig, PoolConfig

_RAW = argparse.RawDescriptionHelpFormatter

MATCH_HELP = """\
Keep the pool pairs whose alt text contains a query as whole words (Aho-Corasick on Ray Data).

inputs:  POOL...    Parquet/TSV/CSV/JSONL files or directories with a URL column (url/URL) and a
                    text column (caption/TEXT/text/alt); other names via --url-col/--text-col
         --queries  queries.parquet from `wit queries build`
output:  --out DIR  part-*.parquet (key, url, text, query_ids list<int32>), stats.json (rows dropped
                    per reason: invalid_url, url_too_long, empty_text, text_too_long, no_match,
                    duplicate), _SUCCESS.json. A finished DIR with the same inputs is reused.

example:
  wit pipeline match pool/*.parquet --queries queries.parquet --out work/matched
"""

BALANCE_HELP = """\
Select at most --cap pairs per query: a query with more claims the pairs with the smallest
hash(seed, key); a pair is kept when some query claims it. Independent of Ray's block layout.

input:   --matched DIR  output of `wit pipeline match`
output:  --out DIR      part-*.parquet (matched columns + claimed_by list<int32>), stats.json
                        (per-query matched and claimed counts, not_claimed), _SUCCESS.json

example:
  wit pipeline balance --matched work/matched --out work/selected --cap 20000 --seed 0
"""

DOWNLOAD_HELP = """\
Download the selected images with img2dataset, one Ray task per shard of rows; resumable.

input:   --selected DIR  output of `wit pipeline balance`
output:  --out DIR       part-*.parquet (key, url, caption, query_ids, jpg, width, height,
                         original_width, original_height, sha256), failures/part-*.parquet (key, url,
                         caption, status, error_message, reason), manifest.json, _SUCCESS.json.
                         Interrupted? Rerun the same command: finished shards are skipped.

example:
  wit pipeline download --selected work/selected --out work/corpus --image-size 256
"""

RUN_HELP = """\
match -> balance -> download in one command, into OUT/matched, OUT/selected and OUT/corpus.

example:
  wit pipeline run pool.parquet --queries queries.parquet --out work --cap 20000
"""

INSPECT_HELP = """\
Summarize any artifact with Polars: queries.parquet, matched/, selected/, corpus/ (with its
failures), or one Parquet file: rows, bytes, success rate and failure reasons, pairs per query
(top 20 and tail, named when a queries.parquet is beside it or given), caption lengths, image
sizes, sample rows.

example:
  wit inspect work/corpus
  wit inspect work/selected --queries queries.parquet --json
"""


def _add_match_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pool", nargs="+", help="pool files or directories")
    p.add_argument("--queries", required=True, help="queries.parquet")
    p.add_argument("--format", default="auto", help="pool format: auto|parquet|tsv|csv|jsonl (default: auto)")
    p.add_argument("--url-col", help="pool URL column (default: url or URL)")
    p.add_argument("--text-col", help="pool text column (default: caption, TEXT, text or alt)")
    p.add_argument("--keep", nargs="*", default=[], help="pool columns to carry into matched/")
    p.add_argument("--max-text-chars", type=int, default=MatchConfig.max_text_chars)


def _add_balance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cap", type=int, default=BalanceConfig.cap_per_query, help="pairs per query (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=BalanceConfig.seed)


def _add_download_args(p: argparse.ArgumentParser) -> None:
    d = DownloadConfig()
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument(
        "--resize-mode", default=d.resize_mode, help="keep_ratio (shorter side) | no | center_crop | border"
    )
    p.add_argument("--timeout", type=int, default=d.timeout_s, help="seconds per request")
    p.add_argument("--retries", type=int, default=d.retries)
    p.add_argument("--threads", type=int, default=d.thread_count, help="download threads per shard task")
    p.add_argument("--rows-per-shard", type=int, default=d.rows_per_input_shard)
    p.add_argument("--min-image-size", type=int, default=d.min_image_size)
    p.add_argument("--user-agent-token", default=d.user_agent_token)


def _match_cfg(a: argparse.Namespace) -> MatchConfig:
    pool = PoolConfig(format=a.format, url_col=a.url_col, text_col=a.text_col, keep_columns=tuple(a.keep))
    return MatchConfig(pool=pool, max_text_chars=a.max_text_chars)


def _balance_cfg(a: argparse.Namespace) -> BalanceConfig:
    return BalanceConfig(cap_per_query=a.cap, seed=a.seed)


def _download_cfg(a: argparse.Namespace) -> DownloadConfig:
    return DownloadConfig(
        image_size=a.image_size,
        resize_mode=a.resize_mode,
        timeout_s=a.timeout,
        retries=a.retries,
        thread_count=a.threads,
        rows_per_input_shard=a.rows_per_shard,
        min_image_size=a.min_image_size,
        user_agent_token=a.user_agent_token,
    )


def _print(result: dict) -> int:
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("queries", "shards")}, indent=2, default=str)
    )
    return 0


def _match(a: argparse.Namespace) -> int:
    from pipeline.match import match

    return _print(match(tuple(a.pool), a.queries, a.out, _match_cfg(a)))


def _balance(a: argparse.Namespace) -> int:
    from pipeline.balance import balance

    return _print(balance(a.matched, a.out, _balance_cfg(a)))


def _download(a: argparse.Namespace) -> int:
    from pipeline.download import download

    return _print(download(a.selected, a.out, _download_cfg(a))["counts"])


def _run(a: argparse.Namespace) -> int:
    from pipeline.run import run

    result = run(tuple(a.pool), a.queries, a.out, _match_cfg(a), _balance_cfg(a), _download_cfg(a))
    return _print(result["download"]["counts"])


def _inspect(a: argparse.Namespace) -> int:
    from pipeline.inspect import format_summary, summarize

    summary = summarize(a.path, queries=a.queries, n=a.n)
    sys.stdout.write(
        (json.dumps(summary, indent=2, default=str) if a.json else format_summary(summary)) + "\n"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pipeline = sub.add_parser("pipeline", help="pool -> matched -> selected -> corpus", formatter_class=_RAW)
    stages = pipeline.add_subparsers(dest="stage", metavar="STAGE", required=True)

    p = stages.add_parser(
        "match", help="pool + queries -> matched/", description=MATCH_HELP, formatter_class=_RAW
    )
    _add_match_args(p)
    p.add_argument("--out", required=True, help="output directory (matched/)")
    p.set_defaults(run=_match)

    p = stages.add_parser(
        "balance", help="matched/ -> selected/", description=BALANCE_HELP, formatter_class=_RAW
    )
    p.add_argument("--matched", required=True, help="matched/ directory")
    p.add_argument("--out", required=True, help="output directory (selected/)")
    _add_balance_args(p)
    p.set_defaults(run=_balance)

    p = stages.add_parser(
        "download", help="selected/ -> corpus/", description=DOWNLOAD_HELP, formatter_class=_RAW
    )
    p.add_argument("--selected", required=True, help="selected/ directory")
    p.add_argument("--out", required=True, help="output directory (corpus/)")
    _add_download_args(p)
    p.set_defaults(run=_download)

    p = stages.add_parser(
        "run", help="match -> balance -> download", description=RUN_HELP, formatter_class=_RAW
    )
    _add_match_args(p)
    p.add_argument("--out", required=True, help="working directory: OUT/{matched,selected,corpus}")
    _add_balance_args(p)
    _add_download_args(p)
    p.set_defaults(run=_run)

    p = sub.add_parser(
        "inspect", help="summarize any stage's output", description=INSPECT_HELP, formatter_class=_RAW
    )
    p.add_argument("path", help="a stage directory or a .parquet file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-n", type=int, default=5, help="sample rows to show (default: %(default)s)")
    p.add_argument("--queries", help="queries.parquet, to name the queries (default: looked for nearby)")
    p.set_defaults(run=_inspect)
