"""core.validate's checks that the bad-input matrix reaches only through the CLI: where the SDK would
find credentials without the network, and outputs under a file."""

import pytest

from core import validate
from core.errors import WitError

AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    for name in AWS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def test_s3_without_credentials_fails_and_each_source_of_them_passes(bare_env, monkeypatch):
    with pytest.raises(WitError, match="no AWS credentials"):
        validate.check_credentials("s3://bucket/x")
    validate.check_credentials("relative/local/path")                     # local paths need nothing
    for setting in ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, {"AWS_PROFILE": "p"},
                    {"AWS_EC2_METADATA_DISABLED": "false"}):               # an instance role may answer
        with monkeypatch.context() as m:
            for key, value in setting.items():
                m.setenv(key, value)
            validate.check_credentials("s3://bucket/x")
    (bare_env / "credentials").write_text("[default]\n")
    validate.check_credentials("s3://bucket/x")


def test_only_key_id_is_not_credentials(bare_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    with pytest.raises(WitError, match="no AWS credentials"):
        validate.check_credentials("s3://bucket/x")


def test_unknown_scheme_and_missing_google_key_file(monkeypatch, tmp_path):
    with pytest.raises(WitError, match="unknown storage scheme"):
        validate.check_credentials("gopher://x/y")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    with pytest.raises(WitError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        validate.check_credentials("gs://bucket/x")


def test_output_under_a_file_or_of_the_wrong_kind(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WitError, match="which is a file"):
        validate.check_output(tmp_path / "f" / "sub" / "out", "--out")
    with pytest.raises(WitError, match="a directory is needed"):
        validate.check_output(tmp_path / "f", "--out")
    with pytest.raises(WitError, match="a file path is needed"):
        validate.check_output(tmp_path, "--out", directory=False)
    validate.check_output(tmp_path / "new" / "deeper", "--out")          # will be created: fine
    assert not (tmp_path / "new").exists()


def test_numbers_name_their_option():
    validate.check_at_least({"--cap": None, "--seed": 0}, 0)                # None: not given
    with pytest.raises(WitError, match="--cap must be at least 1, not 0"):
        validate.check_at_least({"--cap": 0}, 1)
    with pytest.raises(WitError, match="--pairs must be above 0"):
        validate.check_positive({"--pairs": -5.0})
