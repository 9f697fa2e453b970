"""Real failures for resume tests, injected from outside the product: a `fit` driver started as its own
process and SIGKILLed once a checkpoint exists, and a Ray Train worker process SIGKILLed by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainer.config import TrainConfig
from core import storage
from core.config import to_dict

ROOT = Path(__file__).resolve().parents[2]
_DRIVER = ("import json, sys; from trainer.config import TrainConfig; from trainer.fit import fit; "
           "from core.config import from_dict; fit(from_dict(TrainConfig, json.loads(sys.argv[1])))")


def start_driver(cfg: TrainConfig, ray_address: str, log: Path) -> subprocess.Popen:
    """`fit(cfg)` in its own process (session) attached to the test's Ray, as `wit train` would run."""
    env = {**os.environ, "RAY_ADDRESS": ray_address, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", _DRIVER, json.dumps(to_dict(cfg))], env=env, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def checkpoints(storage_path: str) -> list[str]:
    """The checkpoint dirs under a run's storage path (local or URI) that Ray Train has registered in its
    snapshot (checkpoint_manager_snapshot.json): the ones a resume can start from."""
    found = []
    for attempt in storage.glob(storage_path, "attempt-*", dirs=True) if storage.is_dir(storage_path) else []:
        snapshot = storage.join(attempt, "checkpoint_manager_snapshot.json")
        if not storage.is_file(snapshot):
            continue                      # nothing registered yet
        registered = storage.read_text(snapshot)
        found += [c for c in storage.glob(attempt, "checkpoint_*", dirs=True) if storage.name(c) in registered]
    return sorted(found)


def wait_for_checkpoint(storage_path: str, alive=lambda: True, timeout_s: float = 300) -> str:
    """The first checkpoint to appear under storage_path; fails if `alive()` turns False first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := checkpoints(storage_path):
            return found[0]
        assert alive(), "the run ended before writing a checkpoint"
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint under {storage_path} after {timeout_s} s")


def kill_driver(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's whole process session (as a lost head node would); Ray then ends its job."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue                  # the process ended while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def train_worker_pids() -> list[int]:
    """Pids of Ray Train worker processes descending from this process (the Ray that ray.init started
    here), never another user's or session's: found by their process title `ray::RayTrainWorker...`."""
    children, found, todo = _children(), [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                title = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::RayTrainWorker"):
                found.append(pid)
    return found
