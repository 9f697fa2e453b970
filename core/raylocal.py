"""Starting Ray on a laptop or attaching to a cluster, in one place."""

from __future__ import annotations

import os

import ray


def ensure_ray(num_cpus: int | None = None) -> None:
    """Attach to RAY_ADDRESS (a cluster job) when set, else start a local Ray sized to this machine.

    A Ray started by the caller (a test fixture, a notebook) is reused as it is.
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
