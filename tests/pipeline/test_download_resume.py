"""Kill `wit pipeline download` mid-way (SIGKILL), rerun it: only the unfinished shards are fetched
again, and the corpus equals an uninterrupted run's (same keys, same image bytes)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.pipeline.helpers import image_bytes
from tests.pipeline.test_download import make_selected
from core.loopback import LoopbackServer, Response

ROWS, ROWS_PER_SHARD = 20, 4  # 5 download shards
DELAY_S = 0.4  # per image, one download thread per shard: a shard takes ~2 s


def slow_image(path: str) -> Response:
    n = int(path.strip("/").split(".")[0])
    return Response(200, image_bytes(64 + n, 48, color=(n * 12 % 256, 80, 160)), "image/jpeg", delay_s=DELAY_S)


def download_cmd(selected: Path, corpus: Path) -> list[str]:
    return [
        sys.executable, "-m", "wit.cli", "pipeline", "download",
        "--selected", str(selected), "--out", str(corpus),
        "--rows-per-shard", str(ROWS_PER_SHARD), "--threads", "1", "--image-size", "32", "--timeout", "5",
        "--part-target-mb", "0.002",  # ~2 kB parts: several of them
        "--allow-network", "127.0.0.0/8",
    ]  # fmt: skip


def run_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(Path.cwd()))
    return env


def corpus_rows(corpus: Path) -> list[tuple[str, str]]:
    table = pa.concat_tables(
        [pq.read_table(p, columns=["key", "sha256"]) for p in sorted(glob.glob(f"{corpus}/part-*.parquet"))]
    )
    return list(zip(table["key"].to_pylist(), table["sha256"].to_pylist()))


def session_processes(sid: int) -> list[int]:
    """Processes still in session `sid` (Linux /proc; empty elsewhere)."""
    alive = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields after "(comm)": state, ppid, pgrp, session
            alive.append(int(Path(stat).parent.name))
    return alive


def wait_quiet(server: LoopbackServer, seconds: float = 2.0, limit_s: float = 30.0) -> None:
    """Until no request has arrived for `seconds`: nothing of the killed run is still fetching."""
    deadline = time.time() + limit_s
    last, since = sum(server.hits.values()), time.time()
    while time.time() < deadline:
        time.sleep(0.2)
        now = sum(server.hits.values())
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= seconds:
            return
    raise AssertionError("requests kept coming after the kill")


@pytest.mark.slow
def test_killed_download_resumes_only_unfinished_shards(tmp_path):
    with LoopbackServer(slow_image, max_requests=200) as server:
        make_selected(tmp_path / "selected", server.url, [f"/{i}.jpg" for i in range(ROWS)])
        selected = pq.read_table(tmp_path / "selected" / "part-00000.parquet")  # key order = shard order
        shard_paths = [
            {u.removeprefix(server.url) for u in selected["url"].to_pylist()[s : s + ROWS_PER_SHARD]}
            for s in range(0, ROWS, ROWS_PER_SHARD)
        ]
        corpus = tmp_path / "corpus"
        first = subprocess.Popen(
            download_cmd(tmp_path / "selected", corpus),
            env=run_env(),
            start_new_session=True,  # its own process group: the kill reaches Ray's processes too
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 120
            while not glob.glob(f"{corpus}/_shards/*.json") and time.time() < deadline:
                assert first.poll() is None, "the download ended before it could be killed"
                time.sleep(0.05)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        for _ in range(50):  # the driver, Ray's processes and its workers: all gone
            if not session_processes(first.pid):
                break
            time.sleep(0.1)
        assert not session_processes(first.pid)
        wait_quiet(server)
        finished = {int(Path(p).stem) for p in glob.glob(f"{corpus}/_shards/*.json")}
        assert 1 <= len(finished) < len(shard_paths)
        assert not (corpus / "_SUCCESS.json").exists()
        before = Counter(server.hits)

        rerun = subprocess.run(
            download_cmd(tmp_path / "selected", corpus), env=run_env(), capture_output=True
        )
        assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
        fetched = Counter(server.hits)
        fetched.subtract(before)
        unfinished = set().union(*(p for s, p in enumerate(shard_paths) if s not in finished))
        policies = {"/robots.txt", "/.well-known/tdmrep.json"}  # once per shard task
        assert {p for p, n in fetched.items() if n and p not in policies} == unfinished  # only those rows
        assert all(fetched[p] == 1 for p in unfinished)
        assert all(fetched[p] == len(shard_paths) - len(finished) for p in policies)

        reference = tmp_path / "reference"
        once = subprocess.run(
            download_cmd(tmp_path / "selected", reference), env=run_env(), capture_output=True
        )
        assert once.returncode == 0, once.stderr.decode()[-3000:]
    resumed = corpus_rows(corpus)
    assert len(resumed) == ROWS and len(glob.glob(f"{corpus}/part-*.parquet")) > 1
    assert resumed == corpus_rows(reference)  # same keys, same order, same JPEG bytes (sha256)
