"""Every artifact carries its provenance, and is written under a temporary name then renamed.

A reader never sees a half-written file: a stage that dies leaves `*.tmp-*` files behind, which
the next run ignores and overwrites. Parquet files get a `wit` key-value metadata entry holding the
stage, its config and the versions of the packages that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wit.config import to_dict

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


def _temp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def write_parquet(table: pa.Table, path: str | os.PathLike, record: dict[str, Any], **kwargs: Any) -> Path:
    """Write `table` with `record` in its key-value metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode()
    tmp = _temp_name(path)
    pq.write_table(table.replace_schema_metadata(meta), tmp, **kwargs)
    os.replace(tmp, path)
    return path


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def mark_done(directory: str | os.PathLike, record: dict[str, Any]) -> Path:
    """A stage's completion marker: written last, so its presence means the directory is complete."""
    return write_json(record, Path(directory) / "_SUCCESS.json")


def is_done(directory: str | os.PathLike) -> bool:
    return (Path(directory) / "_SUCCESS.json").exists()
