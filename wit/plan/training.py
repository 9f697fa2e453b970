"""Training on paper: memory per GPU, GPUs needed to hold the contrastive batch, and step time.

Per GPU at local batch b = B / G (DDP: every GPU holds the whole model):
  model states   params x bytes/param (weights + grads + 2 Adam states; 16 fp32, 12 with fp16 states),
                 measured by bench/memory.py
  activations    b x activation bytes per sample; measured for ViT-B/32 (bench/memory.py, with and
                 without gradient checkpointing) and scaled to other towers by the elements their
                 modules output per sample (checkpointing off: every module; on: block outputs only,
                 which is what checkpointing keeps) - a stated assumption
  similarity     the gathered features [B, E] (image and text) and this worker's logits [b, B], twice
                 (image->text and text->image) and their gradients
Step time = B x FLOPs per sample (3x forward; 4x with checkpointing, trainer/metrics.py) / (G x the
achieved FLOP/s per GPU measured by bench/step.py or bench/train.py), plus the gradient all-reduce.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from trainer.metrics import forward_flops
from trainer.model import Bottleneck, MultiheadSelfAttention, ResidualAttentionBlock, build_model, count_parameters
from wit.plan.rates import Figure, assumption

USABLE_GPU_MEMORY = 0.9                   # CUDA context, allocator fragmentation and NCCL buffers take the rest


@dataclass(frozen=True)
class ModelFacts:
    name: str
    params: int
    forward_flops: float                  # one (image, caption) pair
    embed_dim: int
    elements_all: float                   # module outputs per sample, forward
    elements_blocks: float                # residual-block outputs per sample (what checkpointing keeps)


@functools.lru_cache(maxsize=32)
def model_facts(name: str) -> ModelFacts:
    """Parameter count, FLOPs and activation proxies of a named config, counted on the meta device."""
    with torch.device("meta"):
        clip = build_model(name)
        totals = {"all": 0, "blocks": 0}

        def hook(module, _inputs, output):
            elements = sum(t.numel() for t in (output if isinstance(output, tuple) else (output,))
                           if isinstance(t, torch.Tensor))
            if isinstance(module, (ResidualAttentionBlock, Bottleneck)):
                totals["blocks"] += elements
            if not list(module.children()) or isinstance(module, MultiheadSelfAttention):
                totals["all"] += elements

        handles = [m.register_forward_hook(hook) for m in clip.modules()]
        size = clip.cfg.vision.image_size
        clip(torch.empty(1, 3, size, size), torch.zeros(1, clip.cfg.text.context_length, dtype=torch.long))
        for handle in handles:
            handle.remove()
    return ModelFacts(name, count_parameters(clip), forward_flops(name), clip.cfg.embed_dim,
                      float(totals["all"]), float(totals["blocks"]))


@dataclass(frozen=True)
class MemoryRates:
    bytes_per_param: dict[str, Figure]            # by state dtype: "fp32", "fp16"
    activation_per_sample: dict[bool, Figure]     # by checkpointing; bytes per sample for `measured_model`
    measured_model: str


@dataclass(frozen=True)
class GpuMemory:
    model: str
    grad_checkpointing: bool
    state_dtype: str
    local_batch: int
    states_bytes: float
    activation_bytes: float
    similarity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.states_bytes + self.activation_bytes + self.similarity_bytes


def activation_per_sample(facts: ModelFacts, rates: MemoryRates, checkpointing: bool) -> float:
    measured = model_facts(rates.measured_model)
    proxy = (lambda f: f.elements_blocks) if checkpointing else (lambda f: f.elements_all)
    return rates.activation_per_sample[checkpointing].value * proxy(facts) / proxy(measured)


def similarity_bytes(global_batch: int, local_batch: int, embed_dim: int) -> float:
    gathered = 2 * global_batch * embed_dim * 4                       # image + text features, fp32
    logits = 2 * 2 * local_batch * global_batch * 4                   # [b, B] both ways, + their gradients
    return float(gathered + logits)


def gpu_memory(facts: ModelFacts, rates: MemoryRates, global_batch: int, gpus: int,
               checkpointing: bool, state_dtype: str) -> GpuMemory:
    local = math.ceil(global_batch / gpus)
    return GpuMemory(facts.name, checkpointing, state_dtype, local,
                     states_bytes=facts.params * rates.bytes_per_param[state_dtype].value,
                     activation_bytes=local * activation_per_sample(facts, rates, checkpointing),
                     similarity_bytes=similarity_bytes(global_batch, local, facts.embed_dim))


def gpus_needed(facts: ModelFacts, rates: MemoryRates, global_batch: int, gpu_memory_gib: float,
                checkpointing: bool, state_dtype: str) -> int | None:
    """The fewest GPUs whose memory holds the global batch in one step (None: not even one sample each)."""
    usable = gpu_memory_gib * 2**30 * USABLE_GPU_MEMORY
    if gpu_memory(facts, rates, global_batch, global_batch, checkpointing, state_dtype).total_bytes > usable:
        return None
    low, high = 1, global_batch                                       # memory falls as GPUs grow
    while low < high:
        mid = (low + high) // 2
        if gpu_memory(facts, rates, global_batch, mid, checkpointing, state_dtype).total_bytes <= usable:
            high = mid
        else:
            low = mid + 1
    return low


@dataclass(frozen=True)
class StepTime:
    compute_s: float
    allreduce_s: float
    flops_per_sample: float

    @property
    def seconds(self) -> float:
        return self.compute_s + self.allreduce_s


def step_time(facts: ModelFacts, global_batch: int, gpus: int, achieved_flops: float, checkpointing: bool,
              allreduce_bytes_per_s: float) -> StepTime:
    """Compute at the measured FLOP/s, plus a ring all-reduce of fp32 gradients not overlapped with it
    (an upper bound: DDP overlaps buckets with the backward pass)."""
    per_sample = facts.forward_flops * (4 if checkpointing else 3)
    compute = global_batch * per_sample / (gpus * achieved_flops)
    ring = 2 * (gpus - 1) / gpus * facts.params * 4 if gpus > 1 else 0.0
    return StepTime(compute, ring / allreduce_bytes_per_s if ring else 0.0, per_sample)


INTRA_NODE = assumption(450e9, "bytes/s per GPU", "NVLink 4 within an H100 node (900 GB/s both ways)")


def allreduce_bandwidth(gpus: int, gpus_per_node: int, interconnect_gbps: float) -> Figure:
    if gpus <= gpus_per_node:
        return INTRA_NODE
    per_gpu = interconnect_gbps / 8 * 1e9 / max(gpus_per_node, 1)
    return assumption(per_gpu, "bytes/s per GPU", f"node interconnect {interconnect_gbps:g} Gb/s shared by "
                      f"{gpus_per_node} GPUs (instance spec)")
