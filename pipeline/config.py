"""Configs of the pipeline stages: frozen, typed, with defaults that mean something.

They cross Ray boundaries as plain dicts (core.config.to_dict / from_dict) and are recorded in every
artifact, so a rerun with the same config can reuse finished work.
"""

from __future__ import annotations

from dataclasses import dataclass

POOL_FORMATS = ("auto", "parquet", "tsv", "csv", "jsonl", "warc")
# Column names tried, in order, when PoolConfig leaves url_col / text_col unset.
URL_COLUMNS = ("url", "URL", "image_url")
TEXT_COLUMNS = ("caption", "TEXT", "text", "alt", "alt_text")


@dataclass(frozen=True)
class PoolConfig:
    format: str = "auto"  # "auto" picks by file extension (.parquet, .tsv, .csv, .jsonl/.json, .warc[.gz])
    url_col: str | None = None  # None: the first of URL_COLUMNS present in the file
    text_col: str | None = None  # None: the first of TEXT_COLUMNS present in the file
    # TSV/CSV: None = a file whose first line holds an http(s) URL has no header (columns f0, f1, ...)
    header: bool | None = None
    keep_columns: tuple[str, ...] = ()  # pool columns carried through to matched/ (e.g. "page_url")


@dataclass(frozen=True)
class MatchConfig:
    pool: PoolConfig = PoolConfig()
    max_text_chars: int = 1000  # alt texts longer than this are page dumps, not captions
    max_url_chars: int = 2048  # the practical URL limit of browsers and CDNs
    # matched/ is range-partitioned by key, one range per this many bytes of pool text (url, text and
    # kept columns, uncompressed): a merge task sorts at most a range's matched rows, whatever the pool size
    range_target_bytes: int = 128 * 2**20
    concurrency: int | None = None  # at most this many MatchQueries actors; None: one per CPU of the cluster
    batch_size: int = 4096      # rows an actor matches at once, at least
    # A batch stages one file per key range it has rows in; batches grow with the ranges so that a staged
    # file holds about this many rows (many tiny files made the merge, not the matching, the cost at 10M rows)
    staged_rows_per_range: int = 4096
    max_batch_rows: int = 65_536     # an actor's batch stays a few MB of text


@dataclass(frozen=True)
class BalanceConfig:
    cap_per_query: int = 20_000  # the paper's WIT cap
    seed: int = 0  # which pairs a head query claims; a different seed draws a different sample
    # selected/ is range-partitioned by key like matched/, one range per this many bytes of matched rows
    # (uncompressed, from the Parquet footers): a merge task sorts at most a range, whatever the corpus
    range_target_bytes: int = 128 * 2**20
    read_blocks: int | None = None  # Ray Data override_num_blocks; the selection never depends on it
    concurrency: int | None = None  # tasks per pass at once; None: Ray's default. Never changes the output


@dataclass(frozen=True)
class DownloadConfig:
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # "keep_ratio": shorter side -> image_size; "no": keep as is
    resize_only_if_bigger: bool = False
    encode_quality: int = 95  # JPEG quality of the stored (re-encoded) image
    timeout_s: int = 10  # per request (connect, and each read)
    retries: int = 0  # extra attempts per URL after a transient failure (timeout, connection, 5xx, 429)
    thread_count: int = 32  # download threads per shard task (network-bound, not CPU-bound)
    user_agent_token: str = "wit-clip"  # named in the User-Agent and honoured in X-Robots-Tag
    # img2dataset's default: refuse images whose X-Robots-Tag forbids AI use or indexing.
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    min_image_size: int = 0  # smaller side in pixels, before resizing
    # Pixels of the fetched image. 100 MP keeps real camera photos (Wikimedia has many of 20-60 MP;
    # they are decoded, ~3 bytes/pixel, and resized) and refuses bigger ones as too_large. None: no
    # limit (JSON has no infinity); OpenCV still refuses to decode past 2**30 pixels (decode_error).
    max_image_area: float | None = 100_000_000
    max_aspect_ratio: float | None = None
    # Where a download may connect (pipeline.netguard): loopback, private, link-local (cloud metadata),
    # multicast, unspecified and reserved addresses are refused unless a CIDR here opens them.
    allow_networks: tuple[str, ...] = ()  # e.g. ("127.0.0.0/8",) for a web on this machine
    resolver: str | None = None  # "module:function" (host, port) -> addresses; None: the OS resolver
    respect_robots_txt: bool = True  # robots.txt per origin: our token's group, else `*`
    respect_tdmrep: bool = True  # W3C TDMRep: `tdm-reservation: 1` header, /.well-known/tdmrep.json
    optout_timeout_s: float = 3.0  # robots.txt / tdmrep.json; unreachable means no opt-out
    max_connections_per_host: int = 4  # per shard task: a small site is not hit by 32 threads at once
    max_retry_after_s: float = 10.0  # a 429/503 asking for a shorter pause is waited out and tried again
    rows_per_input_shard: int = 10_000  # one Ray task per shard of selected rows
    part_target_bytes: int = 256 * 2**20  # corpus parts are cut at about this many bytes


RESIZE_MODES = ("keep_ratio", "no", "center_crop", "border")
