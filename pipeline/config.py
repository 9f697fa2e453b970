"""Configs of the pipeline stages: frozen, typed, with defaults that mean something.

They cross Ray boundaries as plain dicts (wit.config.to_dict / from_dict) and are recorded in every
artifact, so a rerun with the same config can reuse finished work.
"""

from __future__ import annotations

from dataclasses import dataclass

POOL_FORMATS = ("auto", "parquet", "tsv", "csv", "jsonl")
# Column names tried, in order, when PoolConfig leaves url_col / text_col unset.
URL_COLUMNS = ("url", "URL", "image_url")
TEXT_COLUMNS = ("caption", "TEXT", "text", "alt", "alt_text")


@dataclass(frozen=True)
class PoolConfig:
    format: str = "auto"  # "auto" picks by file extension (.parquet, .tsv, .csv, .jsonl/.json)
    url_col: str | None = None  # None: the first of URL_COLUMNS present in the file
    text_col: str | None = None  # None: the first of TEXT_COLUMNS present in the file
    keep_columns: tuple[str, ...] = ()  # pool columns carried through to matched/ (e.g. "page_url")


@dataclass(frozen=True)
class MatchConfig:
    pool: PoolConfig = PoolConfig()
    max_text_chars: int = 1000  # alt texts longer than this are page dumps, not captions
    max_url_chars: int = 2048  # the practical URL limit of browsers and CDNs
    output_shards: int = 16  # matched/ is range-partitioned by key into at most this many files
    concurrency: int | None = None  # MatchQueries actors; None: one per CPU of the Ray cluster
    batch_size: int = 4096


@dataclass(frozen=True)
class BalanceConfig:
    cap_per_query: int = 20_000  # the paper's WIT cap
    seed: int = 0  # which pairs a head query claims; a different seed draws a different sample
    output_shards: int = 16
    read_blocks: int | None = None  # Ray Data override_num_blocks; the selection never depends on it


@dataclass(frozen=True)
class DownloadConfig:
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # "keep_ratio": shorter side -> image_size; "no": keep as is
    resize_only_if_bigger: bool = False
    encode_quality: int = 95
    timeout_s: int = 10
    retries: int = 0
    thread_count: int = 32  # download threads per shard task (network-bound, not CPU-bound)
    processes_count: int = 1  # img2dataset processes per shard task; Ray spreads the shards
    user_agent_token: str = "wit-clip"  # named in the User-Agent and honoured in X-Robots-Tag
    # img2dataset's default: refuse images whose X-Robots-Tag forbids AI use or indexing.
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    min_image_size: int = 0  # smaller side in pixels, before resizing
    max_image_area: float | None = None  # None: no limit (JSON has no infinity)
    max_aspect_ratio: float | None = None
    rows_per_input_shard: int = 10_000  # one Ray task and one corpus part per shard


RESIZE_MODES = ("keep_ratio", "no", "center_crop", "border")
