"""`wit pipeline match|balance|download|run` and `wit inspect`: their options and help, and the options ->
config builders. The handlers are in pipeline/commands.py, imported only when one runs."""

from __future__ import annotations

import argparse

from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig, PoolConfig
from core.commands import command

_RAW = argparse.RawDescriptionHelpFormatter

MATCH_HELP = """\
Keep the pool pairs whose alt text contains a query as whole words (Aho-Corasick on Ray Data).

inputs:  POOL...    Parquet/TSV/CSV/JSONL files or directories (local, or s3://, gs:// URIs, like every
                    path of every stage) with a URL column (url/URL) and a
                    text column (caption/TEXT/text/alt); other names via --url-col/--text-col.
                    Headerless TSV/CSV (Conceptual Captions' caption<TAB>url) is detected; its
                    columns are f0, f1, ... Common Crawl WARC (.warc.gz): every <img src alt> of
                    the HTML responses, with page_url (--keep page_url)
         --queries  queries.parquet from `wit queries build`
output:  --out DIR  part-*.parquet (key, url, text, query_ids list<int32>), stats.json (rows dropped
                    per reason: malformed_row, invalid_url, url_too_long, empty_text, text_too_long,
                    no_match, duplicate; duplicate_url_rows), _SUCCESS.json. A finished DIR with the
                    same inputs is reused.

example:
  wit pipeline match pool/*.parquet --queries queries.parquet --out work/matched
"""

BALANCE_HELP = """\
Select at most --cap pairs per query: a query with more claims the pairs with the smallest
hash(seed, key); a pair is kept when some query claims it. Independent of Ray's block layout.

input:   --matched DIR  output of `wit pipeline match`
output:  --out DIR      part-*.parquet (matched columns + claimed_by list<int32>),
                        query_stats.parquet (query_id, matched, claimed), stats.json (totals,
                        not_claimed), _SUCCESS.json

example:
  wit pipeline balance --matched work/matched --out work/selected --cap 20000 --seed 0
"""

DOWNLOAD_HELP = """\
Download the selected images with img2dataset, one Ray task per shard of rows; resumable.

input:   --selected DIR  output of `wit pipeline balance`
output:  --out DIR       part-*.parquet of about --part-target-mb each (key, url, caption, query_ids,
                         jpg, width, height, original_width, original_height, sha256),
                         failures/part-*.parquet (key, url, caption, status, error_message, reason:
                         http_404, http_4xx, http_429, http_5xx, timeout, connection_error,
                         redirect_loop, decode_error, too_small, too_large, blocked_address, bad_url,
                         robots_txt, tdmrep_header, tdmrep_json, robots_disallowed (X-Robots-Tag),
                         lost, other), manifest.json (counts per stage and reason, requests per kind,
                         parts with rows and sha256, the config), _SUCCESS.json. Interrupted (even
                         killed)? Rerun the same command: finished download shards are kept.

defaults, safe to run from a cloud account:
  address guard  every connection (first request and each redirect) is checked on the address it
                 connects to, after DNS: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
                 link-local (169.254/16 with the cloud metadata service, fe80::/10), multicast,
                 unspecified and reserved ranges are refused (reason blocked_address), and so are
                 URLs with user:pass@ and non-http(s) schemes (bad_url). Open a range explicitly
                 with --allow-network CIDR (repeatable), e.g. 127.0.0.0/8 for a web on this machine.
  opt-outs       robots.txt (our --user-agent-token group, else *; fetched once per host per shard
                 task; unreachable = allowed), TDMRep (tdm-reservation: 1 header,
                 /.well-known/tdmrep.json) and X-Robots-Tag noai/noimageai/noindex/noimageindex.
                 --ignore-robots-txt / --ignore-tdmrep turn one off; the manifest records it.
  manners        at most --max-per-host connections per host per shard task; a 429/503 with a
                 Retry-After of at most 10 s is waited out and tried once more; --retries retries
                 only transient failures (timeout, connection_error, http_5xx, http_429).
  --retry-failures  on a finished corpus: fetch again only the rows whose reason is transient,
                 into the same corpus (new parts, failures rewritten, manifest updated).

example:
  wit pipeline download --selected work/selected --out work/corpus --image-size 256
  wit pipeline download --selected work/selected --out work/corpus --retry-failures
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
  wit inspect work/corpus --html work/corpus.html     # then open work/corpus.html in a browser
  wit inspect work/corpus/failures
  wit inspect work/selected --queries queries.parquet --json
"""


def _add_match_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pool", nargs="+", help="pool files or directories")
    p.add_argument("--queries", required=True, help="queries.parquet")
    p.add_argument(
        "--format",
        "--pool-format",
        default="auto",
        help="pool format: auto|parquet|tsv|csv|jsonl|warc (default: auto)",
    )
    header = p.add_mutually_exclusive_group()
    header.add_argument(
        "--header", dest="header", action="store_true", default=None, help="TSV/CSV files have a header line"
    )
    header.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="TSV/CSV files have none (columns f0, f1, ...)",
    )
    p.add_argument("--url-col", help="pool URL column (default: url or URL)")
    p.add_argument("--text-col", help="pool text column (default: caption, TEXT, text or alt)")
    p.add_argument("--keep", nargs="*", default=[], help="pool columns to carry into matched/")
    p.add_argument("--max-text-chars", type=int, default=MatchConfig.max_text_chars)
    p.add_argument("--concurrency", type=int, help="at most this many matcher actors (default: one per CPU)")


def _add_balance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cap", type=int, default=BalanceConfig.cap_per_query, help="pairs per query (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=BalanceConfig.seed)
    p.add_argument(
        "--read-blocks", type=int, help="Ray Data blocks to read matched/ as (never changes the output)"
    )


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
    p.add_argument(
        "--max-image-area",
        type=float,
        default=d.max_image_area,
        help="refuse images with more pixels, as too_large; 0: no limit (default: %(default).0f)",
    )
    p.add_argument(
        "--encode-quality", type=int, default=d.encode_quality, help="JPEG quality of stored images"
    )
    p.add_argument(
        "--part-target-mb",
        type=float,
        default=d.part_target_bytes / 2**20,
        help="corpus parts are cut at about this size (default: %(default)s)",
    )
    p.add_argument(
        "--user-agent-token",
        default=d.user_agent_token,
        help="named in the User-Agent; the robots.txt group and X-Robots-Tag token we obey (default: %(default)s)",
    )
    p.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="open an address range the guard refuses by default (repeatable), e.g. 127.0.0.0/8 for a "
        "web on this machine, 10.1.0.0/16 for an internal mirror",
    )
    p.add_argument(
        "--ignore-robots-txt",
        action="store_true",
        help="do not fetch or obey robots.txt (recorded in the manifest's config)",
    )
    p.add_argument(
        "--ignore-tdmrep",
        action="store_true",
        help="do not obey TDMRep reservations (recorded in the manifest's config)",
    )
    p.add_argument(
        "--max-per-host",
        type=int,
        default=d.max_connections_per_host,
        help="connections at once to one host, per shard task (default: %(default)s)",
    )


def match_config(a: argparse.Namespace) -> MatchConfig:
    pool = PoolConfig(
        format=a.format, url_col=a.url_col, text_col=a.text_col, header=a.header, keep_columns=tuple(a.keep)
    )
    return MatchConfig(pool=pool, max_text_chars=a.max_text_chars, concurrency=a.concurrency)


def balance_config(a: argparse.Namespace) -> BalanceConfig:
    return BalanceConfig(cap_per_query=a.cap, seed=a.seed, read_blocks=a.read_blocks)


def download_config(a: argparse.Namespace) -> DownloadConfig:
    return DownloadConfig(
        image_size=a.image_size,
        resize_mode=a.resize_mode,
        timeout_s=a.timeout,
        retries=a.retries,
        thread_count=a.threads,
        rows_per_input_shard=a.rows_per_shard,
        min_image_size=a.min_image_size,
        max_image_area=a.max_image_area or None,
        encode_quality=a.encode_quality,
        part_target_bytes=max(1, int(a.part_target_mb * 2**20)),
        user_agent_token=a.user_agent_token,
        allow_networks=tuple(a.allow_network),
        respect_robots_txt=not a.ignore_robots_txt,
        respect_tdmrep=not a.ignore_tdmrep,
        max_connections_per_host=a.max_per_host,
    )


def register(sub: argparse._SubParsersAction) -> None:
    pipeline = sub.add_parser("pipeline", help="pool -> matched -> selected -> corpus", formatter_class=_RAW)
    stages = pipeline.add_subparsers(dest="stage", metavar="STAGE", required=True)

    p = stages.add_parser(
        "match", help="pool + queries -> matched/", description=MATCH_HELP, formatter_class=_RAW
    )
    _add_match_args(p)
    p.add_argument("--out", required=True, help="output directory (matched/)")
    p.set_defaults(run=command("pipeline.commands", "run_match"))

    p = stages.add_parser(
        "balance", help="matched/ -> selected/", description=BALANCE_HELP, formatter_class=_RAW
    )
    p.add_argument("--matched", required=True, help="matched/ directory")
    p.add_argument("--out", required=True, help="output directory (selected/)")
    _add_balance_args(p)
    p.set_defaults(run=command("pipeline.commands", "run_balance"))

    p = stages.add_parser(
        "download", help="selected/ -> corpus/", description=DOWNLOAD_HELP, formatter_class=_RAW
    )
    p.add_argument("--selected", required=True, help="selected/ directory")
    p.add_argument("--out", required=True, help="output directory (corpus/)")
    _add_download_args(p)
    p.add_argument(
        "--retry-failures",
        action="store_true",
        help="on a finished corpus: fetch again only the rows that failed for a transient reason",
    )
    p.set_defaults(run=command("pipeline.commands", "run_download"))

    p = stages.add_parser(
        "run", help="match -> balance -> download", description=RUN_HELP, formatter_class=_RAW
    )
    _add_match_args(p)
    p.add_argument("--out", required=True, help="working directory: OUT/{matched,selected,corpus}")
    _add_balance_args(p)
    _add_download_args(p)
    p.set_defaults(run=command("pipeline.commands", "run_pipeline"))

    p = sub.add_parser(
        "inspect", help="summarize any stage's output", description=INSPECT_HELP, formatter_class=_RAW
    )
    p.add_argument("path", help="a stage directory or a .parquet file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-n", type=int, default=5, help="sample rows to show (default: %(default)s)")
    p.add_argument("--queries", help="queries.parquet, to name the queries (default: looked for nearby)")
    p.add_argument("--html", metavar="OUT", help="also write a contact sheet (thumbnails, captions, queries)")
    p.add_argument(
        "--sheet-rows", type=int, default=60, help="rows on the contact sheet (default: %(default)s)"
    )
    p.set_defaults(run=command("pipeline.commands", "run_inspect"))
