"""What every benchmark writes: bench/results/<name>.json with figures, machine, versions, date and command
(tests/test_bench_results.py checks every file has them)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from core.artifacts import versions

RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: str = "cpu") -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_result(name: str, figures: dict, device: str = "cpu", out_dir: str | None = None) -> Path:
    path = Path(out_dir or RESULTS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "figures": figures, "machine": machine(device), "versions": versions(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", *sys.argv])}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["figures"], indent=2))
    return path
