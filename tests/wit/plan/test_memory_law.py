"""Per-process memory in the plan stands on bench/scale.py's measurements (wit.plan.memory_law)."""

import json
import shutil
from dataclasses import replace

import pytest

from wit.plan.build import build_plan
from wit.plan.config import load_plan_config
from wit.plan.memory_law import MIB, MemoryLaw, memory_laws
from wit.plan.model import plan as make_plan
from wit.plan.rates import RESULTS_DIR, load_rates

PIPELINE = ("match", "balance", "download")


def _law(mib, rows=(1e6, 1e7)):
    return MemoryLaw("balance", "driver", rows, mib, "test")


def test_a_bounded_process_keeps_its_largest_peak_and_a_growing_one_is_extrapolated():
    assert _law((300.0, 380.0)).bytes_at(1e9) == 380.0 * MIB               # x1.27: bounded
    growing = _law((300.0, 3000.0))                                          # x10: grows with the rows
    assert growing.bytes_at(1e7) == 3000.0 * MIB
    assert growing.bytes_at(1.9e7) == pytest.approx(5700.0 * MIB)           # 300 MiB per 1M rows on
    assert growing.bytes_at(1e5) == 3000.0 * MIB                             # never below a measurement


def test_laws_come_from_the_smallest_and_largest_size_measured():
    per_size = {str(n): {"balance": {"rows": n, "driver_peak_rss_mib": mib, "largest_worker_peak_rss_mib": 2 * mib}}
                for n, mib in ((4_000_000, 320.0), (1_000_000, 300.0), (10_000_000, 330.0))}
    laws = memory_laws({"figures": {"per_size": per_size}}, "scale.json")
    assert set(laws) == {("balance", "driver"), ("balance", "largest worker")}
    assert laws["balance", "driver"].rows == (1_000_000, 10_000_000)
    assert laws["balance", "largest worker"].mib == (600.0, 660.0)


def test_the_paper_plan_fits_every_pipeline_process_on_its_node():
    plan, _ = build_plan(load_plan_config("paper"))
    head, cpu = plan.cluster.head, plan.cluster.cpu
    assert head is not None and head.memory_gib > 0
    for name in PIPELINE:
        stage = plan.stage(name)
        assert 0 < stage.driver_bytes <= head.memory_gib * 2**30, name
        assert 0 < stage.peak_worker_bytes <= cpu.memory_gib * 2**30 / cpu.cpus, name
        assert "memory" not in stage.bottleneck, (name, stage.bottleneck)


def test_a_driver_that_grows_with_the_corpus_is_named_as_the_bottleneck(tmp_path):
    """The same plan over results in which balance's driver grew 10x from 1M to 10M rows."""
    shutil.copytree(RESULTS_DIR, tmp_path, dirs_exist_ok=True)
    scale = json.loads((tmp_path / "scale.json").read_text())
    sizes = sorted(scale["figures"]["per_size"], key=int)
    small, large = scale["figures"]["per_size"][sizes[0]], scale["figures"]["per_size"][sizes[-1]]
    large["balance"] = dict(large["balance"], driver_peak_rss_mib=10 * small["balance"]["driver_peak_rss_mib"])
    (tmp_path / "scale.json").write_text(json.dumps(scale))
    cfg = load_plan_config("paper")
    grown, _ = build_plan(cfg, results_dir=str(tmp_path))
    assert grown.stage("balance").bottleneck.startswith("driver memory")
    rates = load_rates(tmp_path, gpu="H100")
    assert not rates.memory_laws["balance", "driver"].bounded
    assert make_plan(cfg, replace(rates, memory_laws={}), grown.cluster).stage("balance").driver_bytes == 0
