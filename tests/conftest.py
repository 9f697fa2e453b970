import os

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with 2 CPUs, shared by the tests of one module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


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
    os.environ.update(env)
    admin = pyarrow.fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing", secret_key="testing",
        region="us-east-1", allow_bucket_creation=True,
    )
    admin.create_dir(S3_BUCKET)
    try:
        yield f"s3://{S3_BUCKET}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
