"""The plan checked against reality: `wit plan demo-smoke` predicts the wall time of each stage of a
real `wit demo --smoke` run on this machine within 30% (±1 s for stages under 2 s).

The prediction stands on benchmark results only: per-core rates from the stage benches
(bench/results) and fixed overheads from bench/overheads.py, a separate run of the stages on much
smaller inputs, never on the run it predicts. This machine is shared (CI, other engineers' test runs)
and its speed at Ray start-up work moves 2-3x with the load, so the overhead bench runs here, just
before the demo, as its own process with its own Ray: both see the same machine.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from wit.demo.run import run_demo, smoke_config
from wit.plan import build_plan, load_plan_config
from wit.plan.check import RELATIVE_TOLERANCE, compare, comparison_table, demo_stage_seconds, total_error
from wit.plan.rates import RESULTS_DIR
from wit.plan.report import stage_seconds

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


# Beyond this many runnable tasks per core (1-minute load average), stage times swing by more than
# the tolerance from one minute to the next (2x seen at load 20 on 2 cores): no prediction can be
# checked to 30% then, so the test says so and skips instead of failing or passing by chance.
OVERLOADED_PER_CORE = 4.0


def _skip_if_overloaded(when: str) -> None:
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > OVERLOADED_PER_CORE * cores:
        pytest.skip(f"machine overloaded {when} (load {load:.1f} on {cores} cores): timings not comparable")


def test_plan_predicts_each_demo_stage_within_30_percent(tmp_path):
    _skip_if_overloaded("before the run")
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results)
    (results / "overheads.json").unlink(missing_ok=True)           # measured again below, not reused
    subprocess.run([sys.executable, str(ROOT / "bench" / "overheads.py"), "--out-dir", str(results)],
                   check=True, timeout=420, cwd=ROOT)
    if ray.is_initialized():
        ray.shutdown()                    # the demo starts its own Ray, as `wit demo` does
    try:
        summary = run_demo(smoke_config(str(tmp_path / "demo")))
    finally:
        ray.shutdown()

    plan, _ = build_plan(load_plan_config("demo-smoke"), results_dir=str(results))
    rows = compare(stage_seconds(plan), demo_stage_seconds(summary))
    report = comparison_table(rows) + f"\nload average {os.getloadavg()}"
    print(report)
    _skip_if_overloaded("during the run")
    assert {r.stage for r in rows} == {"queries", "match", "balance", "download", "train", "eval"}
    assert all(r.within_tolerance for r in rows), report
    assert abs(total_error(rows)) <= RELATIVE_TOLERANCE, report
