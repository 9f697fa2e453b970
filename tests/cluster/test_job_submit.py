"""`ray job submit` against a real local head with the dashboard's job server.

This is what `ray job submit --working-dir . -- wit ...` does on a cluster, minus the cloud: the
test ships the working dir and checks the job sees the cluster. Every stage as one submitted job
(`wit demo --smoke`: queries, match, balance, download, train, eval) is tests/wit/test_demo.py.
"""
import time
from pathlib import Path

import pytest
from ray_head import RayHead, submit_when_ready, wait_for_job

REPO = Path(__file__).resolve().parents[2]

# Proves the job runs on this cluster and in the shipped working dir (pyproject.toml is there).
ENTRYPOINT = (
    "python -c \"import os, ray; ray.init(); "
    "print('resources', ray.cluster_resources()); "
    "print('working_dir_has_pyproject', os.path.exists('pyproject.toml'))\""
)


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
