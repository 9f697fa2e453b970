"""The shared pieces every stage relies on: configs across boundaries, atomic artifacts, loopback."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pyarrow as pa
import pytest

from core.artifacts import is_done, mark_done, provenance, read_provenance, write_json, write_parquet
from core.config import from_dict, to_dict
from core.loopback import LoopbackServer, Response


@dataclass(frozen=True)
class Inner:
    cap_per_query: int = 20_000
    seed: int = 0


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    paths: tuple[str, ...] = ("a", "b")
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None


def test_config_round_trip_rebuilds_nested_frozen_types():
    cfg = Outer(paths=("p",), inner=Inner(cap_per_query=5), maybe=3)
    data = json.loads(json.dumps(to_dict(cfg)))  # what crosses a Ray boundary
    back = from_dict(Outer, data)
    assert back == cfg
    assert isinstance(back.inner, Inner) and isinstance(back.paths, tuple)


def test_config_rejects_unknown_fields():
    with pytest.raises(TypeError, match="no field"):
        from_dict(Inner, {"cap_per_query": 1, "cap": 2})


def test_parquet_artifact_carries_config_and_versions(tmp_path):
    path = write_parquet(pa.table({"a": [1, 2]}), tmp_path / "x.parquet", provenance("unit", Inner(seed=7)))
    record = read_provenance(path)
    assert record["stage"] == "unit"
    assert record["config"] == {"cap_per_query": 20_000, "seed": 7}
    assert "pyarrow" in record["versions"] and "torch" in record["versions"]
    assert not list(tmp_path.glob("*.tmp-*")), "temporary files are renamed away"


def test_completion_marker(tmp_path):
    assert not is_done(tmp_path)
    mark_done(tmp_path, {"rows": 3})
    assert is_done(tmp_path)
    write_json({"b": 1}, tmp_path / "sub" / "s.json")
    assert json.loads((tmp_path / "sub" / "s.json").read_text()) == {"b": 1}


def test_loopback_server_serves_routes_and_bounds_requests():
    def app(path: str) -> Response:
        return Response(200, b"hello", "text/plain", {"X-Robots-Tag": "noai"}) if path == "/ok" else Response(404)

    with LoopbackServer(app, max_requests=2) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/ok", timeout=5) as resp:
            assert resp.read() == b"hello" and resp.headers["X-Robots-Tag"] == "noai"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/nope", timeout=5)
        assert err.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as err:  # the third request is over budget
            urllib.request.urlopen(server.url + "/ok", timeout=5)
        assert err.value.code == 503
        assert server.requests == 3
        assert server.hits == {"/ok": 2, "/nope": 1}
