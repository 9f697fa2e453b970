"""core.stage.reuse_or_run: a finished stage made from the same config and inputs is reused; anything
else is cleared and redone, and the marker appears only after the work, locally and on S3."""

from dataclasses import dataclass

import pytest

from core import storage
from core.artifacts import is_done, read_json
from core.stage import StageRun, finished, reuse_or_run


@dataclass(frozen=True)
class CountConfig:
    cap_per_query: int = 3


class Work:
    """A stage body that writes one part and remembers how often it ran and what it saw."""

    def __init__(self, out_dir: str, fail: bool = False):
        self.out_dir, self.fail, self.calls, self.saw_marker = out_dir, fail, 0, []

    def __call__(self, record: dict) -> dict:
        self.calls += 1
        self.saw_marker.append(is_done(self.out_dir))
        storage.write_text(storage.join(self.out_dir, "part-00000.txt"), str(record["config"]))
        if self.fail:
            raise RuntimeError("killed mid-stage")
        return {"output_rows": 7}


def _clear(out_dir: str) -> None:
    for path in storage.glob(out_dir, "part-*"):
        storage.remove(path)


@pytest.fixture(params=["local", "s3"])
def out_dir(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "balanced")
    return storage.join(request.getfixturevalue("s3"), f"stage-{tmp_path.name}")


def test_same_config_and_inputs_reuse_the_recorded_result(out_dir):
    run = StageRun("balance", out_dir, CountConfig(), {"matched": [{"path": "m/part-0", "bytes": 10}]})
    work = Work(out_dir)
    assert reuse_or_run(run, work, _clear) == {"output_rows": 7}
    assert reuse_or_run(run, work, _clear) == {"output_rows": 7}
    assert work.calls == 1
    marker = read_json(storage.join(out_dir, "_SUCCESS.json"))
    assert marker["stage"] == "balance" and marker["config"] == {"cap_per_query": 3}
    assert marker["inputs"] == run.inputs and "versions" in marker


def test_other_config_or_inputs_clear_and_rerun_with_no_marker_during_the_work(out_dir):
    first = StageRun("balance", out_dir, CountConfig(), {"matched": [{"bytes": 10}]})
    reuse_or_run(first, Work(out_dir), _clear)
    storage.write_text(storage.join(out_dir, "part-00099.txt"), "left by the earlier run")
    for changed in (StageRun("balance", out_dir, CountConfig(cap_per_query=4), first.inputs),
                    StageRun("balance", out_dir, CountConfig(cap_per_query=4), {"matched": [{"bytes": 11}]})):
        work = Work(out_dir)
        reuse_or_run(changed, work, _clear)
        assert work.calls == 1 and work.saw_marker == [False]
        assert read_json(storage.join(out_dir, "_SUCCESS.json"))["inputs"] == changed.inputs
    assert storage.glob(out_dir, "part-*") == [storage.join(out_dir, "part-00000.txt")]


def test_an_interrupted_stage_leaves_no_marker_and_is_redone(out_dir):
    run = StageRun("download", out_dir, CountConfig(), {}, result_key="stats")
    reuse_or_run(run, Work(out_dir), _clear)
    changed = StageRun("download", out_dir, CountConfig(cap_per_query=9), {})
    with pytest.raises(RuntimeError):
        reuse_or_run(changed, Work(out_dir, fail=True), clear=None)
    assert not is_done(out_dir), "the old marker must not survive a rewrite that died"
    assert finished(changed) is None
    work = Work(out_dir)
    reuse_or_run(changed, work)
    assert work.calls == 1 and finished(changed)["stats"] == {"output_rows": 7}
