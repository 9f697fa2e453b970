import os

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray Train's controller acts on its workers once per health-check interval (2 s by default): a fit
# waits up to a poll to start its loop and ~4 s after its last step to return. At test size that was
# ~5 s of each ~20 s fit (measured 2026-12-07, 2 cores: a 4-step fit 21.0 s -> 15.6 s at 0.2 s), and
# the suite runs some 25 fits. Set before any Ray starts, so Ray Train in this process, in the Ray
# heads the tests start and in the probe/bench subprocesses polls every 0.2 s; what it does is unchanged.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


def stop_ray() -> None:
    """Shut down this process's Ray, if any: before a fixture changes what new Ray workers inherit (s3's
    environment), and where a test needs no Ray of ours beside it (a check that Ray was not started, a
    Ray head or cluster of the test's own, a run that wants both cores)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with 2 CPUs. Kept from module to module (its start and shutdown were ~4 s of
    every module that used it) until a fixture stops it (stop_ray) or the session ends."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray


@pytest.fixture(scope="module")
def no_ray():
    """No Ray of this process running while the module's tests run."""
    stop_ray()


def pytest_sessionfinish(session, exitstatus):
    stop_ray()


S3_BUCKET = "wit-test"


@pytest.fixture(scope="module")
def s3():
    """A real S3 API on loopback (moto's server, its own thread) with an empty bucket; yields the
    bucket's URI. The environment points pyarrow at it (AWS_ENDPOINT_URL_S3 and dummy keys), and so
    every Ray worker started after this fixture: a test that also wants Ray asks for `s3` first."""
    import logging
    import socket

    import pyarrow.fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in failure reports

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata endpoint
    }
    saved = {key: os.environ.get(key) for key in env}
    stop_ray()                # workers already running would not see the endpoint: the next Ray starts after
    os.environ.update(env)
    admin = pyarrow.fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing", secret_key="testing",
        region="us-east-1", allow_bucket_creation=True,
    )
    admin.create_dir(S3_BUCKET)
    try:
        yield f"s3://{S3_BUCKET}"
    finally:
        stop_ray()            # its workers point at this server: no later module gets them
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
