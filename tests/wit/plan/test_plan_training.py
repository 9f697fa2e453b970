"""Training memory, GPUs needed and step time, against parameter counts and the measured figures."""

import math

import pytest
import torch

from trainer.model import build_model, count_parameters
from wit.plan.rates import Figure
from wit.plan.training import (
    USABLE_GPU_MEMORY, MemoryRates, gpu_memory, gpus_needed, model_facts, similarity_bytes, step_time,
)

MIB = 2**20
RATES = MemoryRates(
    bytes_per_param={"fp32": Figure(16.0, "B/param", "test"), "fp16": Figure(12.0, "B/param", "test")},
    activation_per_sample={False: Figure(40 * MIB, "B", "test"), True: Figure(7 * MIB, "B", "test")},
    measured_model="ViT-B/32",
)


def test_b32_states_are_parameters_times_bytes_per_param():
    with torch.device("meta"):
        params = count_parameters(build_model("ViT-B/32"))
    facts = model_facts("ViT-B/32")
    assert facts.params == params
    for dtype, per_param in (("fp32", 16), ("fp16", 12)):
        memory = gpu_memory(facts, RATES, 256, 1, checkpointing=False, state_dtype=dtype)
        assert memory.states_bytes == params * per_param


def test_measured_model_at_its_batch_reproduces_the_measured_activations():
    facts = model_facts("ViT-B/32")
    for ckpt in (False, True):
        memory = gpu_memory(facts, RATES, 256, 1, ckpt, "fp16")
        assert memory.activation_bytes == pytest.approx(256 * RATES.activation_per_sample[ckpt].value)


def test_bigger_towers_need_more_activation_memory():
    small, large = model_facts("ViT-B/32"), model_facts("ViT-L/14")
    assert large.elements_all > 3 * small.elements_all
    assert large.forward_flops / small.forward_flops == pytest.approx(175.3 / 14.8, rel=0.05)


@pytest.mark.parametrize("model", ["ViT-B/32", "ViT-L/14"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_gpus_needed_is_the_fewest_that_fit(model, ckpt):
    facts = model_facts(model)
    usable = 80 * 2**30 * USABLE_GPU_MEMORY
    g = gpus_needed(facts, RATES, 32_768, 80, ckpt, "fp16")
    assert gpu_memory(facts, RATES, 32_768, g, ckpt, "fp16").total_bytes <= usable
    assert g == 1 or gpu_memory(facts, RATES, 32_768, g - 1, ckpt, "fp16").total_bytes > usable


def test_checkpointing_and_half_states_need_fewer_gpus():
    facts = model_facts("ViT-L/14")
    need = {(c, d): gpus_needed(facts, RATES, 32_768, 80, c, d) for c in (False, True) for d in ("fp32", "fp16")}
    assert need[(True, "fp16")] < need[(False, "fp16")]
    assert need[(True, "fp16")] <= need[(True, "fp32")]


def test_a_model_too_big_for_one_sample_per_gpu_is_none():
    assert gpus_needed(model_facts("ViT-L/14"), RATES, 32_768, 0.5, False, "fp32") is None


def test_similarity_matrix_is_local_rows_by_global_batch():
    assert similarity_bytes(32_768, 1_024, 512) == 2 * 32_768 * 512 * 4 + 4 * 1_024 * 32_768 * 4


def test_step_time_halves_with_twice_the_gpus_and_checkpointing_costs_a_third_more():
    facts = model_facts("ViT-B/32")
    one = step_time(facts, 32_768, 32, 2e14, False, math.inf)
    two = step_time(facts, 32_768, 64, 2e14, False, math.inf)
    assert two.compute_s == pytest.approx(one.compute_s / 2)
    assert step_time(facts, 32_768, 32, 2e14, True, math.inf).compute_s == pytest.approx(one.compute_s * 4 / 3)
    assert one.compute_s == pytest.approx(32_768 * 3 * facts.forward_flops / (32 * 2e14))
