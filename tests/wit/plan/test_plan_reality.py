"""The plan checked against reality: `wit plan plan-check` predicts the wall time of each stage of a
real run on this machine within 30%, and the pairs each stage passes on.

The run (bench/probe.py at wit.plan.config.PLAN_CHECK) is the demo's path — queries from a Wikipedia
dump, a loopback web matched, balanced and downloaded with img2dataset, the tiny CLIP trained on 2 Ray
Train workers, zero-shot eval — at sizes where every stage outlasts its start-up (10-40 s each
here), so that 30% is more than the stage's run-to-run jitter.

The prediction stands on benchmark results only, never on the run it predicts, and the run is over
data those results never saw: the web it crawls (bench/probe.py: UNSEEN_WEB) draws its captions and
images from another seed than the web bench/local_rates.py measured, and has another mix of dead
links, broken images, bad URLs and junk alt-texts, which the plan is not told. So the matched,
selected and downloaded pairs are predicted from shares and a query law measured elsewhere, and a
plan that got them wrong fails here. The times: this machine's per-item costs on the demo's data
(bench/results/local_rates.json, measured at other, larger sizes), each stage's fixed cost from
bench/overheads.py on near-empty inputs (one run), rerun here just before the run (the machine is shared and
start-up work moves 2-3x with the load), each run in its own process with its own Ray, as the
checked run has; it also times a fixed CPU job, and the per-item costs are scaled by how much faster
or slower that job runs now than when they were measured. WIT_PLAN_CHECK_KEEP=DIR keeps the results
and the run for bench/scaling.py.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import RESULTS
from bench.probe import UNSEEN_WEB, run_fresh
from wit.demo.web import BAD_ROW_SHARES
from wit.plan.build import build_plan
from wit.plan.config import load_plan_config
from wit.plan.check import (
    RELATIVE_TOLERANCE, compare, comparison_table, demo_stage_seconds, pair_counts, pairs_table,
)
from wit.plan.report import stage_seconds

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]

# Beyond this many runnable tasks per core (1-minute load average), stage times swing by more than
# the tolerance from one minute to the next (2x seen at load 20 on 2 cores): no prediction can be
# checked to 30% then. Decided before any work runs; a run that starts is judged, whatever the load
# does meanwhile (the scaled CPU reference absorbs a steady change, not a burst).
OVERLOADED_PER_CORE = 4.0


@pytest.fixture
def quiet_machine():
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > OVERLOADED_PER_CORE * cores:
        pytest.skip(f"machine overloaded (load {load:.1f} on {cores} cores): stage times not comparable to 30%")


def test_the_checked_web_is_not_the_measured_one():
    """What makes the pair check a prediction: another seed and another failure mix than local_rates.json's."""
    assert UNSEEN_WEB.seed != 0 and UNSEEN_WEB.bad_row_shares != BAD_ROW_SHARES


def test_plan_predicts_each_stage_and_its_pairs_within_30_percent(quiet_machine, no_ray, tmp_path, monkeypatch):
    # no_ray: the two runs below start their own Ray, and want both cores
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")                # for the Ray of each process below
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    (results / "overheads.json").unlink(missing_ok=True)           # measured again below, not reused
    # One near-empty run, not the bench's default fastest of two: the run it predicts is one draw of
    # each start-up too, and the second run was a quarter of this test's time (~75 s on 2 cores).
    subprocess.run([sys.executable, str(ROOT / "bench" / "overheads.py"), "--repeats", "1", "--out-dir", str(results)],
                   check=True, timeout=600, cwd=ROOT)
    run = run_fresh("plan-check", tmp_path)

    plan, _ = build_plan(load_plan_config("plan-check"), results_dir=str(results))
    rows = compare(stage_seconds(plan), demo_stage_seconds(run))
    pairs = pair_counts(plan, run)
    report = comparison_table(rows) + "\n\n" + pairs_table(pairs) + f"\n\nload average {os.getloadavg()}"
    print(report)
    if os.environ.get("WIT_PLAN_CHECK_KEEP"):           # for bench/scaling.py --check-run/--check-results
        keep = Path(os.environ["WIT_PLAN_CHECK_KEEP"])
        shutil.copytree(results, keep / "results", dirs_exist_ok=True)
        shutil.copy(tmp_path / "plan-check.json", keep / "run.json")
    assert {r.stage for r in rows} == {"queries", "match", "balance", "download", "train", "eval"}
    assert all(r.within_tolerance for r in rows), report
    assert all(abs(p - m) <= RELATIVE_TOLERANCE * m for p, m in pairs.values()), report
