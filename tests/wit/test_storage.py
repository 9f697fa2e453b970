"""core.storage and core.artifacts on a local disk and on a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.fs
import pytest

from core import storage
from core.artifacts import is_done, mark_done, read_json, read_provenance, write_json, write_parquet
from wit.cli import main
from core.errors import WitError

TABLE = pa.table({"key": ["b", "a"], "n": [2, 1]})


def test_paths_keep_their_form():
    assert storage.join("s3://bucket/a/", "b", "c.parquet") == "s3://bucket/a/b/c.parquet"
    assert storage.parent("s3://bucket/a/b") == "s3://bucket/a"
    assert storage.name("gs://bucket/a/part-00001.parquet") == "part-00001.parquet"
    assert storage.join("work/x", "matched") == os.path.join(
        "work", "x", "matched"
    )  # relative stays relative
    assert not storage.is_uri("file:///tmp/x") and storage.is_uri("S3://bucket/x")
    assert storage.resolve("file:///tmp/x")[1] == "/tmp/x"


def test_local_writes_are_renamed_into_place(tmp_path):
    out = tmp_path / "stage"
    assert write_parquet(TABLE, out / "part-00000.parquet", {"stage": "t"}) == out / "part-00000.parquet"
    write_json({"rows": 2}, out / "stats.json")
    assert not is_done(out)
    mark_done(out, {"stage": "t"})
    assert is_done(out) and read_json(out / "stats.json") == {"rows": 2}
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS.json", "part-00000.parquet", "stats.json"]
    assert storage.glob(str(out), "part-*.parquet") == [str(out / "part-00000.parquet")]


def test_artifacts_round_trip_on_s3(s3):
    stage = f"{s3}/round-trip/matched"
    part = storage.join(stage, "part-00000.parquet")
    assert write_parquet(TABLE, part, {"stage": "match", "config": {"cap": 3}}) == part
    assert read_provenance(part)["config"] == {"cap": 3}
    assert storage.read_table(part).to_pydict() == TABLE.to_pydict()
    assert storage.num_rows(part) == 2
    write_json({"rows": 2}, storage.join(stage, "stats.json"))
    assert not is_done(stage)  # complete only once the marker is written
    mark_done(stage, {"stage": "match"})
    assert is_done(stage) and read_json(storage.join(stage, "stats.json")) == {"rows": 2}
    # Object stores are written at the final key: nothing temporary is left behind.
    names = [storage.name(p) for p, _ in storage.listdir(stage)]
    assert names == ["_SUCCESS.json", "part-00000.parquet", "stats.json"]
    assert storage.glob(stage, "part-*.parquet") == [part]
    assert storage.is_dir(stage) and not storage.is_file(stage) and storage.size(part) > 0


def test_trees_copy_between_disk_and_bucket(s3, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01")
    storage.copy_tree(src, f"{s3}/tree")
    assert sorted(storage.walk_files(f"{s3}/tree")) == [(f"{s3}/tree/a.txt", 5), (f"{s3}/tree/sub/b.bin", 2)]
    storage.copy_tree(f"{s3}/tree", tmp_path / "back")
    assert (tmp_path / "back" / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    storage.remove_tree(f"{s3}/tree")
    assert not storage.exists(f"{s3}/tree/a.txt")


def test_bad_uris_say_what_to_do(s3):
    with pytest.raises(WitError, match="unknown storage scheme ftp://") as err:
        storage.resolve("ftp://host/x")
    assert "s3://bucket" in err.value.hint
    with pytest.raises(WitError, match="names no bucket"):
        storage.resolve("s3://")
    with pytest.raises(WitError, match="does not exist") as err:
        storage.makedirs("s3://no-such-bucket/out")
    assert "aws s3 mb s3://no-such-bucket" in err.value.hint
    with pytest.raises(WitError, match="options are not supported"):
        storage.resolve(f"{s3}/x?region=eu-west-1")


def test_cli_reports_storage_errors_as_bad_input(s3, tmp_path, capsys):
    assert main(["queries", "build", "--demo", "--no-ray", "--out", "s3://no-such-bucket/q.parquet"]) == 2
    assert "bucket s3://no-such-bucket does not exist" in capsys.readouterr().err
    assert main(["inspect", "gopher://x/y"]) == 2
    assert "unknown storage scheme" in capsys.readouterr().err


def test_endpoint_comes_from_the_environment(s3, monkeypatch):
    fs, path = storage.resolve(f"{s3}/x")
    assert isinstance(fs, pyarrow.fs.S3FileSystem) and path == f"{s3[5:]}/x"
    write_json({"ok": 1}, f"{s3}/env.json")
    # Pointing the environment elsewhere gives a new client, not the cached one (which would still work).
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(OSError):
        read_json(f"{s3}/env.json")
    monkeypatch.undo()
    assert read_json(f"{s3}/env.json") == {"ok": 1}


def test_scratch_is_per_uri_and_node_local():
    a, b = storage.scratch_dir("s3://b/run1", "run"), storage.scratch_dir("s3://b/run2", "run")
    assert a != b and a == storage.scratch_dir("s3://b/run1", "run")
    assert Path(a).is_absolute()
