"""Every artifact carries its provenance, and is written under a temporary name then renamed.

A reader never sees a half-written file: a stage that dies leaves `*.tmp-*` files behind, which
the next run ignores and overwrites. Parquet files get a `wit` key-value metadata entry holding the
stage, its config and the versions of the packages that produced it. Every function takes a local
path or a cloud URI (core.storage); on an object store the final key is written in one PUT instead
of renamed, and `_SUCCESS.json`, written last, still says a directory is complete.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core import storage
from core.config import to_dict

METADATA_KEY = b"wit"
_PACKAGES = ("wit-clip", "ray", "torch", "pyarrow", "polars", "img2dataset", "pyahocorasick", "tokenizers")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def provenance(stage: str, config: Any = None, **extra: Any) -> dict[str, Any]:
    """What produced an artifact: stage name, config, package versions, and stage-specific facts."""
    record = {"stage": stage, "created_unix": int(time.time()), "versions": versions()}
    if config is not None:
        record["config"] = config if isinstance(config, dict) else to_dict(config)
    record.update(extra)
    return record


def write_parquet(
    table: pa.Table, path: str | os.PathLike, record: dict[str, Any], **kwargs: Any
) -> str | Path:
    """Write `table` with `record` in its key-value metadata, atomically; returns `path` (a Path if local)."""
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode()
    with storage.atomic_output(path) as (fs, target):
        pq.write_table(table.replace_schema_metadata(meta), target, filesystem=fs, **kwargs)
    return _returned(path)


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    with storage.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_json(obj: Any, path: str | os.PathLike) -> str | Path:
    storage.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return _returned(path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(storage.read_text(path))


def _returned(path: str | os.PathLike) -> str | Path:
    # Local callers get a Path, as before; a URI stays a string (a Path would collapse its '//').
    return str(path) if storage.is_uri(path) else Path(path)


def mark_done(directory: str | os.PathLike, record: dict[str, Any]) -> str | Path:
    """A stage's completion marker: written last, so its presence means the directory is complete."""
    return write_json(record, storage.join(directory, "_SUCCESS.json"))


def is_done(directory: str | os.PathLike) -> bool:
    return storage.is_file(storage.join(directory, "_SUCCESS.json"))
