"""Ray's token authentication, as the cluster configs turn it on: the job API of a real local head
started like cluster/*.yaml starts it (RAY_AUTH_MODE=token) refuses requests without the token and
accepts `ray job submit` with it; and every cluster config turns it on, with the dashboard on
localhost (cloud) and a caching DNS resolver on the CPU nodes."""
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from ray_head import RAY, RayHead

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_cloud_configs_start_ray_with_token_auth_and_a_local_dashboard(name):
    config = load(name)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all(c.startswith("RAY_AUTH_MODE=token ray start") for c in starts if "ray start" in c)
    assert not any("dashboard-host" in c for c in starts)  # Ray's default: localhost only
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    cpu = config["available_node_types"]["cpu"]
    init = " ".join(cpu["initialization_commands"])
    assert "install -y unbound" in init and "nameserver 127.0.0.1" in init and "interface: 127.0.0.1" in init


@pytest.mark.parametrize("name, path", [("kuberay/raycluster.yaml", ()), ("kuberay/rayjob.yaml", ("rayClusterSpec",))])
def test_kuberay_manifests_turn_token_auth_on(name, path):
    spec = load(name)["spec"]
    for key in path:
        spec = spec[key]
    assert spec["authOptions"] == {"mode": "token"}


def get(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
def test_a_token_head_refuses_jobs_without_the_token(tmp_path):
    token = uuid.uuid4().hex
    with RayHead(num_cpus=1, dashboard=True, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}) as head:
        jobs = f"{head.dashboard_url}/api/jobs/"
        assert get(jobs, None) in (401, 403)
        assert get(jobs, "not-the-token") in (401, 403)
        assert get(jobs, token) == 200
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        # HOME without ~/.ray/auth_token: the client has only what the environment gives it.
        base.update(HOME=str(tmp_path), RAY_USAGE_STATS_ENABLED="0")
        submit = [RAY, "job", "submit", "--address", head.dashboard_url, "--no-wait", "--", "python", "-c", "print(1)"]
        refused = subprocess.run(submit, env={**base, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode != 0
        accepted = subprocess.run(submit, env={**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                                  capture_output=True, text=True, timeout=120)
        assert accepted.returncode == 0, accepted.stdout[-2000:] + accepted.stderr[-2000:]
        listed = subprocess.run([RAY, "job", "list", "--address", head.dashboard_url, "--log-style", "record"],
                                env={**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0 and "print(1)" in listed.stdout + listed.stderr
