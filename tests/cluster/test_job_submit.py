"""`ray job submit` against a real local head with the dashboard's job server.

This is what `ray job submit --working-dir . -- wit ...` does on a cluster, minus the cloud: the
first test ships the working dir and checks the job sees the cluster; the second runs every stage
(`wit demo --smoke`: queries, match, balance, download, train, eval) as one submitted job.
"""
import json
import time
from pathlib import Path

import pytest
from ray_head import RayHead

REPO = Path(__file__).resolve().parents[2]

# Proves the job runs on this cluster and in the shipped working dir (pyproject.toml is there).
ENTRYPOINT = (
    "python -c \"import os, ray; ray.init(); "
    "print('resources', ray.cluster_resources()); "
    "print('working_dir_has_pyproject', os.path.exists('pyproject.toml'))\""
)


def wait_for_job(client, job_id: str, timeout_s: float):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_job_status(job_id)
        if status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s:\n{client.get_job_logs(job_id)}")


def submit_when_ready(client, timeout_s: float, **job) -> str:
    """`ray start` returns before the head's dashboard agent has registered with the job server;
    until it has, submissions fail with 'No available agent'. A CLI user sees the same race."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.slow
def test_job_submitted_with_working_dir_succeeds(monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")   # as the head (see ray_head.py)

    t0 = time.monotonic()
    with RayHead(num_cpus=2, dashboard=True) as head:
        print(f"ray start: {time.monotonic() - t0:.1f} s")
        client = JobSubmissionClient(head.dashboard_url)
        job_id = submit_when_ready(
            client,
            timeout_s=60,
            entrypoint=ENTRYPOINT,
            runtime_env={"working_dir": str(REPO), "excludes": [".venv", "demo_out", ".git"]},
        )
        print(f"submitted: {time.monotonic() - t0:.1f} s")
        status = wait_for_job(client, job_id, timeout_s=90)
        logs = client.get_job_logs(job_id)
        assert status == JobStatus.SUCCEEDED, logs
        assert "'CPU': 2.0" in logs, logs
        assert "working_dir_has_pyproject True" in logs, logs
        print(f"succeeded: {time.monotonic() - t0:.1f} s")
        assert [j.submission_id for j in client.list_jobs()] == [job_id]


@pytest.mark.slow
def test_every_stage_runs_as_a_submitted_job(monkeypatch, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = tmp_path / "demo"
    with RayHead(num_cpus=2, dashboard=True) as head:
        client = JobSubmissionClient(head.dashboard_url)
        job_id = submit_when_ready(
            client,
            timeout_s=60,
            # every stage, training 10 steps: that the tiny CLIP learns is tests/wit/test_demo.py's check
            entrypoint=f"python -m wit.cli demo --smoke --steps 10 --out {out}",
            runtime_env={"working_dir": str(REPO), "excludes": [".venv", "demo_out", ".git"],
                         "env_vars": {"NO_ALBUMENTATIONS_UPDATE": "1"}},
        )
        status = wait_for_job(client, job_id, timeout_s=600)
        logs = client.get_job_logs(job_id)
        assert status == JobStatus.SUCCEEDED, logs[-4000:]
        assert "Connecting to existing Ray cluster" in logs, "the job used the cluster, not a Ray of its own"
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["pipeline"]["corpus"]["counts"]
    assert counts["downloaded"] > 0 and counts["downloaded"] + counts["failed"] == counts["selected"]
    assert (out / "run" / "checkpoints" / "latest" / "model.pt").exists()
    assert summary["zeroshot"]["ensemble"]["num_classes"] == 8 and summary["train"]["steps"] == 10
    assert "zero-shot" in logs and "x chance" in logs
