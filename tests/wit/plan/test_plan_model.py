"""The per-stage model on the repository's measured rates (bench/results)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import WitError
from wit.plan.build import build_plan
from wit.plan.config import load_plan_config
from wit.plan.rates import RESULTS_DIR, Results, dig, load_rates

CPU_STAGES = ("queries", "match", "balance", "download")


def _plan(name="b32-budget", checkpointing=None, **cluster):
    cfg = load_plan_config(name)
    cfg = replace(cfg, cluster=replace(cfg.cluster, node_start_s=0.0, **cluster),
                  train=replace(cfg.train, grad_checkpointing=checkpointing))
    return build_plan(cfg)[0]


def _busy(plan, stage):
    """Wall time less the stage's fixed overhead."""
    s = plan.stage(stage)
    overhead = next(f for f in s.figures if "overhead_s" in f.source).value
    return s.wall_s - overhead


def test_doubling_cpu_nodes_halves_cpu_bound_stages():
    small, large = _plan(cpu_nodes=8), _plan(cpu_nodes=16)
    for stage in ("match", "balance", "download"):
        assert _busy(small, stage) / _busy(large, stage) == pytest.approx(2.0, rel=0.05), stage
    for stage in ("balance", "download"):                 # the same work, spread wider
        assert small.stage(stage).core_hours == pytest.approx(large.stage(stage).core_hours, rel=1e-6)
    # match builds one automaton per actor: twice the actors, a little more work
    assert large.stage("match").core_hours > small.stage("match").core_hours


def test_doubling_gpu_nodes_about_halves_training():
    small, large = _plan(gpu_nodes=2, checkpointing=True), _plan(gpu_nodes=4, checkpointing=True)
    ratio = _busy(small, "train") / _busy(large, "train")
    assert 1.7 < ratio <= 2.0                    # the all-reduce does not shrink with more GPUs
    assert large.stage("train").gpu_hours == pytest.approx(small.stage("train").gpu_hours, rel=0.15)


def test_too_few_gpus_for_the_batch_turn_checkpointing_on():
    few, enough = _plan(gpu_nodes=2), _plan(gpu_nodes=4)    # ViT-B/32 at 32,768 needs ~20 GPUs without it
    assert few.training["checkpointing"] and not enough.training["checkpointing"]
    assert few.training["step"].flops_per_sample == pytest.approx(4 / 3 * enough.training["step"].flops_per_sample)


def test_forward_from_a_pool_agrees_with_backward_from_a_target():
    backward = _plan()
    cfg = load_plan_config("b32-budget")
    forward, _ = build_plan(replace(cfg, corpus=replace(cfg.corpus, pool_rows=round(backward.workload.pool_rows))))
    assert forward.workload.corpus == pytest.approx(cfg.corpus.target_pairs, rel=0.01)


def test_larger_model_costs_more_gpu_hours_and_memory():
    b32, l14 = _plan("b32-budget"), _plan("paper")
    assert l14.stage("train").gpu_hours > 5 * b32.stage("train").gpu_hours
    assert l14.workload.steps == b32.workload.steps == pytest.approx(32 * 400e6 / 32_768, abs=1)


@pytest.mark.parametrize("preset", ["paper", "plan-check"])
def test_every_measured_figure_traces_to_its_file_and_key(preset):
    plan = _plan(preset)
    results = Results(RESULTS_DIR)
    checked = 0
    for stage in plan.stages:
        for figure in stage.figures:
            if figure.assumed:
                continue
            name, key = figure.source.removeprefix("bench/results/").split(": ", 1)
            assert (RESULTS_DIR / name).is_file(), figure.source
            if " " not in key:                       # a plain key (derived figures name several)
                assert dig(results.load(name), key) == pytest.approx(figure.value), figure.source
                checked += 1
    assert checked >= 10


def test_local_presets_plan_with_this_machines_rates_and_the_pools_own_law():
    plan, rates = build_plan(load_plan_config("plan-check"))
    for stage in ("queries", "match", "balance", "download", "eval"):
        assert any("local_rates.json" in f.source for f in plan.stage(stage).figures), stage
    assert rates.download_image_size == 64 and rates.measured_law
    # the demo web's captions match a few dozen queries, not a Zipf tail over 20,000
    assert plan.workload.balance.queries < 200
    assert plan.workload.selected < 0.05 * plan.workload.matched
    cluster_plan, cluster_rates = build_plan(load_plan_config("paper"))
    assert cluster_rates.measured_law is None and cluster_rates.download_image_size == 256
    assert not any("local_rates" in f.source for s in cluster_plan.stages for f in s.figures)


def test_assumptions_are_printed_as_such():
    from wit.plan.report import format_plan

    plan, rates = build_plan(load_plan_config("paper"))
    text = format_plan(plan, rates)
    assumed = {f.source for s in plan.stages for f in s.figures if f.assumed}
    assert assumed and all(source in text for source in assumed)
    assert "Assumed (not measured" in text


def test_a_missing_results_file_says_which_bench_to_run(tmp_path):
    for name in ("queries.json", "match.json", "overheads.json"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(WitError) as err:
        load_rates(tmp_path)
    assert "python bench/" in str(err.value)


def test_a_results_file_without_the_key_is_an_error_not_a_zero(tmp_path):
    for path in RESULTS_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    data = json.loads((tmp_path / "download.json").read_text())
    del data["results"]["wit"]["images_per_s_per_core"]
    data["results"]["wit"]["new_key_from_another_bench"] = 1
    (tmp_path / "download.json").write_text(json.dumps(data))
    with pytest.raises(WitError, match="images_per_s_per_core"):
        load_rates(tmp_path)


def test_a_bad_plan_file_is_a_wit_error(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("preset: paper\ntrain: {modle: ViT-B/32}\n")
    with pytest.raises(WitError, match="modle"):
        load_plan_config(str(bad))
    with pytest.raises(WitError, match="no plan preset"):
        load_plan_config(str(tmp_path / "missing.yaml"))


def test_a_plan_file_overrides_its_preset(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"preset": "paper", "train": {"model": "ViT-B/16", "epochs": 16},
                                "cluster": {"config": "cluster/gcp.yaml"}}))
    cfg = load_plan_config(str(path))
    assert (cfg.train.model, cfg.train.epochs, cfg.train.global_batch) == ("ViT-B/16", 16, 32_768)
    plan = build_plan(cfg)[0]
    assert plan.cluster.gpu.instance == "a3-highgpu-8g"
    assert Path(cfg.cluster.config).name == "gcp.yaml"


def test_yaml_numbers_in_e_notation_are_numbers(tmp_path):
    path = tmp_path / "ten_x.yaml"
    path.write_text("preset: b32-budget\ncorpus: {target_pairs: 4e9, cap_per_query: 200_000}\n")
    cfg = load_plan_config(str(path))
    assert cfg.corpus.target_pairs == 4_000_000_000 and cfg.corpus.cap_per_query == 200_000
    path.write_text("corpus: {target_pairs: lots}\n")
    with pytest.raises(WitError, match="not a number"):
        load_plan_config(str(path))
