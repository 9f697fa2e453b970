"""The demo path end to end, at smoke size, as a cluster user runs it: `wit demo --smoke` submitted
with `ray job submit --working-dir` to a real local head with the dashboard's job server. Every stage
runs for real (Ray, img2dataset over a loopback server, Ray Train) inside the job, on the head's
cluster; every row is accounted for; the tiny CLIP learns; and a second job reuses finished stages.

One run carries both the demo's checks and the job path's (tests/cluster/test_job_submit.py ships a
working dir alone): the two were separate full runs, the suite's second- and third-longest."""

import hashlib
import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from ray_head import RayHead, submit_when_ready, wait_for_job

from wit.demo.config import smoke_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _selected_keys(out: Path) -> list[str]:
    parts = sorted(map(str, (out / "selected").glob("part-*.parquet")))
    return sorted(ds.dataset(parts, format="parquet").to_table(columns=["key"]).column("key").to_pylist())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def head(no_ray):                # the job's Ray is the head's: none of ours beside it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")   # as the head (see ray_head.py)
        with RayHead(num_cpus=2, dashboard=True) as h:
            from ray.job_submission import JobSubmissionClient

            yield JobSubmissionClient(h.dashboard_url)


def submit_demo(client, out: Path) -> tuple[dict, str]:
    """`ray job submit --working-dir . -- python -m wit.cli demo --smoke --out OUT`; the summary and
    the job's logs (what the user's terminal shows)."""
    from ray.job_submission import JobStatus

    job_id = submit_when_ready(
        client,
        timeout_s=60,
        entrypoint=f"python -m wit.cli demo --smoke --out {out}",
        runtime_env={"working_dir": str(REPO), "excludes": [".venv", "demo_out", ".git"],
                     "env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1"}},
    )
    status = wait_for_job(client, job_id, timeout_s=900)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert "Connecting to existing Ray cluster" in logs, "the job used the cluster, not a Ray of its own"
    return json.loads((out / "summary.json").read_text()), logs


@pytest.fixture(scope="module")
def demo(head, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary, logs = submit_demo(head, out)
    return out, summary, logs


def test_every_pool_row_is_accounted_for(demo):
    out, summary, _ = demo
    p = summary["pipeline"]
    assert p["pool_rows"] == 600
    assert p["matched"]["input_rows"] == p["pool_rows"]
    assert p["matched"]["output_rows"] + sum(p["matched"]["dropped"].values()) == p["pool_rows"]
    for reason in ("no_match", "invalid_url", "empty_text", "duplicate"):
        assert p["matched"]["dropped"].get(reason, 0) > 0, reason
    assert p["selected"]["output_rows"] + p["selected"]["dropped"].get("not_claimed", 0) == p["matched"]["output_rows"]
    counts = p["corpus"]["counts"]
    assert counts["downloaded"] + counts["failed"] == p["selected"]["output_rows"]
    assert counts["downloaded"] > 0.5 * p["selected"]["output_rows"]
    assert {"http_404", "http_5xx", "decode_error", "robots_disallowed"} <= set(p["corpus"]["failures"])


def test_corpus_shards_have_the_design_schema(demo):
    out, _, _ = demo
    table = ds.dataset(sorted(map(str, (out / "corpus").glob("part-*.parquet"))), format="parquet").to_table()
    assert {"key", "url", "caption", "query_ids", "jpg", "width", "height", "sha256"} <= set(table.column_names)
    first = table.slice(0, 1).to_pylist()[0]
    assert hashlib.sha256(first["jpg"]).hexdigest() == first["sha256"]
    assert min(first["width"], first["height"]) == 64


def test_training_and_zero_shot_ran(demo):
    out, summary, logs = demo
    t = summary["train"]
    cfg = smoke_config(str(out))
    assert t["steps"] == cfg.train_steps and Path(t["checkpoint"]).exists()
    z = summary["zeroshot"]["ensemble"]
    assert z["num_classes"] == 8 and z["n"] == 8 * cfg.eval_images_per_class and z["chance"] == pytest.approx(1 / 8)
    assert 0.0 <= z["top1"] <= z["top5"] <= 1.0
    # The model learned colour words from alt-texts. The smoke run (120 steps of 16 per worker, lr 1e-3,
    # 64 held-out images) on the demo's port (28700, so the same keys and corpus every run) measured
    # 2026-12-07: top-1 92.2% (7.4x chance), the same to the last digit of the loss in two runs. On random
    # ports it moved with the corpus: 46.9% to 87.5%. The old 12 steps at 5e-4 reached 18.8% (1.5x).
    assert z["top1"] >= 3 * z["chance"], z
    assert (out / "run" / "checkpoints" / "latest" / "model.pt").exists()
    # what the user's terminal shows at the end of the job
    assert "zero-shot" in logs and "x chance" in logs and "downloaded" in logs and str(out) in logs
    assert "--allow-network 127.0.0.0/8" in logs  # the demo says it opened loopback for its web


def test_rerun_reuses_stages_and_selects_the_same_keys(demo, head):
    out, first, _ = demo
    before = {name: _digest(out / name) for name in ("queries.parquet", "web/pool.parquet")}
    keys = _selected_keys(out)
    marker = (out / "selected" / "_SUCCESS.json").stat().st_mtime_ns
    second, _ = submit_demo(head, out)
    assert {name: _digest(out / name) for name in before} == before
    assert _selected_keys(out) == keys
    assert (out / "selected" / "_SUCCESS.json").stat().st_mtime_ns == marker, "balance was reused, not redone"
    assert second["pipeline"]["corpus"]["counts"] == first["pipeline"]["corpus"]["counts"]
    assert pq.read_table(out / "queries.parquet").num_rows == first["queries"]["total"]
