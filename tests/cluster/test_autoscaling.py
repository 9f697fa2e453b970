"""The Ray autoscaler scales a CPU worker type from 0 up for pending work and back to 0 when idle.

Same shape as cluster/*.yaml (a head with CPU 0, worker types with min_workers 0), run on one
machine by Ray's fake multi-node provider: "nodes" are extra raylets on this host, no cloud, no
docker. `ray.cluster_utils.AutoscalingCluster` exists in Ray 2.60 but reads
`fake_multi_node/example.yaml`, which the 2.60 wheel does not ship, and it calls `ray stop`
(kills every Ray on the machine); so the same config is written here and passed to our own
`ray start --head`. `external` + module is the same provider class without that defaults file.
"""
import json
import time

import pytest
from ray_head import RayHead

WORKER = "ray.worker.cpu"


def autoscaling_config(gcs_address: str) -> dict:
    return {
        "cluster_name": "wit-clip-fake",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.05,          # 3 s: scale-down inside the test's budget
        "provider": {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "gcs_address": gcs_address,
            "disable_node_updaters": True,        # no SSH setup for in-process "nodes"
            "disable_launch_config_check": True,
            "use_node_id_as_ip": True,            # all fake nodes share this host's IP
        },
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER: {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"not within {timeout_s} s: {what}")


def alive_workers(ray) -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"] and not n["Resources"].get("node:__internal_head__")]


@pytest.mark.slow
def test_cpu_workers_scale_up_for_pending_tasks_and_down_when_idle(tmp_path, monkeypatch, no_ray):
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    head = RayHead(num_cpus=0, env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    config = tmp_path / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config(head.address)))
    head.autoscaling_config = str(config)
    t0 = time.monotonic()
    with head:
        ray.init(address=head.address, log_to_driver=False)
        try:
            assert alive_workers(ray) == []
            assert ray.cluster_resources().get("CPU", 0) == 0       # the head does no work

            @ray.remote(num_cpus=1)
            def where(seconds: float) -> str:
                time.sleep(seconds)
                return ray.get_runtime_context().get_node_id()

            # Three one-CPU tasks: the autoscaler launches workers, capped at max_workers=2.
            refs = [where.remote(5) for _ in range(3)]
            wait_until(lambda: len(alive_workers(ray)) == 2, 60, "2 CPU workers up")
            most_alive = 2
            deadline = time.monotonic() + 60
            while ray.wait(refs, num_returns=3, timeout=0.5)[1] and time.monotonic() < deadline:
                most_alive = max(most_alive, len(alive_workers(ray)))
            nodes = set(ray.get(refs, timeout=1))
            print(f"scaled up and ran: {time.monotonic() - t0:.1f} s")
            head_id = next(n["NodeID"] for n in ray.nodes() if n["Resources"].get("node:__internal_head__"))
            assert head_id not in nodes                              # nothing ran on the head
            # A worker may already be idling out by now, so compare with every worker that lived.
            assert nodes <= {n["NodeID"] for n in ray.nodes() if n["NodeID"] != head_id}
            assert most_alive == 2                                   # never above max_workers

            wait_until(lambda: alive_workers(ray) == [], 45, "idle workers removed")
            print(f"scaled down: {time.monotonic() - t0:.1f} s")
            assert ray.cluster_resources().get("CPU", 0) == 0
        finally:
            ray.shutdown()
