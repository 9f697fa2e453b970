"""A run dir at a cloud URI: what lives where when `wit train --run-dir s3://...`.

Ray Train writes its checkpoints to the storage path itself (`run_dir/ray` by default, a URI when
run_dir is one; the pyarrow filesystem from core.storage is handed to RunConfig), so a resume needs
only the bucket. Files that are appended to while training runs (rank 0's live metrics.jsonl, which
the driver's progress bar reads) cannot be appended to an object, so they go to a node-local mirror
(`local_run_dir`), and `publish` uploads the finished run (tokenizer, metrics, checkpoints/latest)
before the run's `_SUCCESS.json` is written to the URI. For a local run dir every function here is
the identity or does nothing: local runs behave as they always did.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from core import storage
from core.errors import WitError

MIRRORED = ("tokenizer.json", "metrics.jsonl", "metrics.csv")
LATEST = ("checkpoints", "latest")
EVAL_FILES = ("model.pt", "train_state.json", "tokenizer.json")  # what load_checkpoint reads


def local_run_dir(run_dir: str) -> Path:
    """Where this node writes the run's live files: run_dir itself, or a node-local mirror of a URI."""
    return storage.scratch_dir(run_dir, "run") if storage.is_uri(run_dir) else Path(run_dir)


def ray_storage(storage_path: str) -> dict[str, Any]:
    """RunConfig arguments for a storage path: a local dir as it is, a URI with our filesystem (the same
    endpoint and credentials as every other stage, pickled to the workers with the config)."""
    if not storage.is_uri(storage_path):
        return {"storage_path": storage_path}
    storage.makedirs(storage_path)            # a missing bucket fails before any worker starts
    fs, path = storage.resolve(storage_path)
    return {"storage_path": path, "storage_filesystem": fs}


def pull(run_dir: str, local: Path, name: str) -> None:
    """Fetch run_dir/name into the local mirror when it is missing there (a resume on another machine)."""
    remote = storage.join(run_dir, name)
    if storage.is_uri(run_dir) and not (local / name).exists() and storage.is_file(remote):
        local.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(storage.read_bytes(remote))


def push(local: Path, run_dir: str, name: str) -> None:
    """Upload local/name to a URI run dir (nothing to do for a local one)."""
    if storage.is_uri(run_dir) and (local / name).is_file():
        storage.write_bytes(storage.join(run_dir, name), (local / name).read_bytes())


def publish(local: Path, run_dir: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Upload a finished run from its local mirror to a URI run dir; returns the summary with its paths
    pointing at the URI. A local run dir is returned as it is."""
    if not storage.is_uri(run_dir):
        return summary
    for name in MIRRORED:
        push(local, run_dir, name)
    latest = storage.join(run_dir, *LATEST)
    storage.remove_tree(latest)               # a previous run's files must not survive next to ours
    storage.copy_tree(local.joinpath(*LATEST), latest)
    return {key: _on_uri(value, local, run_dir) for key, value in summary.items()}


def _on_uri(value: Any, local: Path, run_dir: str) -> Any:
    """A path inside the local mirror -> the same path under the URI run dir; anything else as it is."""
    if not isinstance(value, str) or not (value == str(local) or value.startswith(f"{local}/")):
        return value
    rest = value[len(str(local)):].strip("/")
    return storage.join(run_dir, *rest.split("/")) if rest else run_dir


def local_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir (or a run dir) as a local directory: a URI's model, state and tokenizer are
    downloaded once per node to scratch (its latest checkpoint when it is a run dir), keyed by the
    model's size and upload time so a newer checkpoint at the same URI is fetched again; a local path
    is returned as it is."""
    if not storage.is_uri(path):
        return Path(path)
    for candidate in (str(path), storage.join(str(path), *LATEST)):
        model = storage.join(candidate, "model.pt")
        if storage.is_file(model):
            local = storage.scratch_dir(f"{candidate}@{storage.stat(model)}", "checkpoint")
            if not local.is_dir():
                _download(candidate, local)
            return local
    raise WitError(f"no checkpoint at {path}", hint="pass a checkpoint dir (with model.pt) or a run dir")


def _download(checkpoint: str, local: Path) -> None:
    # Eval actors on one node may fetch at once: each writes its own temporary dir, the first rename wins.
    tmp = local.with_name(f"{local.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    for name in EVAL_FILES:
        (tmp / name).write_bytes(storage.read_bytes(storage.join(checkpoint, name)))
    try:
        tmp.rename(local)
    except OSError:                           # another process renamed its copy first
        shutil.rmtree(tmp, ignore_errors=True)
