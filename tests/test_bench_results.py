"""bench/results: every figure says which script wrote it, where, and under which versions; and the
copy `wit plan` ships (wit/plan/data, bench/publish_rates.py) is the current one."""

import json
import shlex
from pathlib import Path

import pytest

from bench.publish_rates import shipped

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _records(data: dict) -> list[dict]:
    """A results file is one run's record, or several under `runs` (bench/train.py appends)."""
    return data["runs"] if isinstance(data.get("runs"), list) else [data]


def _script(command: str) -> str | None:
    """The bench script a command line runs: `python [-m x] bench/NAME.py ...` (or an absolute path)."""
    for word in shlex.split(command):
        if word.endswith(".py") and "bench/" in word:
            return "bench/" + word.rsplit("bench/", 1)[1]
    return None


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_each_result_names_its_script_machine_and_versions(path):
    for record in _records(json.loads(path.read_text())):
        assert {"command", "machine", "versions"} <= set(record), f"{path.name}: {sorted(record)}"
        script = _script(record["command"])
        assert script and (ROOT / script).is_file(), f"{path.name}: {record['command']!r} names no bench script"
        assert isinstance(record["machine"], dict) and record["machine"], path.name
        # Records from before the benches wrote core.artifacts.versions() carry what their machine record held
        # (torch for the GPU and training runs; python for the match and queries benches, which never import it)
        versions = record["versions"]
        assert isinstance(versions, dict) and versions and all(isinstance(v, str) for v in versions.values()), path.name


@pytest.mark.parametrize("original,copy", shipped(), ids=lambda p: p.name if isinstance(p, Path) else "")
def test_the_shipped_copy_is_the_current_result(original, copy):
    assert copy.is_file(), f"{copy} missing: run `python bench/publish_rates.py`"
    assert copy.read_bytes() == original.read_bytes(), f"{copy} is stale: run `python bench/publish_rates.py`"
