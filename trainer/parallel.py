"""Data parallelism for `wit train`: DDP replicates the model on every worker, FSDP2 shards it.

DDP (Ray Train's `prepare_model`) keeps a whole replica per worker and all-reduces gradients. FSDP2
(`fully_shard` on every residual block, then on the root) keeps 1/world of each parameter, gradient
and Adam state per worker, all-gathers a block's weights just before the block runs and
reduce-scatters its gradients after: for towers whose replica plus fp32 AdamW (16 bytes a parameter;
ViT-L/14's 428M take 6.8 GB before activations) crowds one device. Both average gradients over the
workers, so from one seed they train the same weights up to summation order
(tests/trainer/test_fit_parallel.py).

`logit_scale` is a 0-dim parameter, which fully_shard refuses; FSDP leaves it replicated
(`ignored_params`) and `average_replicated_grads` averages its gradient as DDP would.

Checkpoints stay whole and in DDP's layout: every worker takes part in gathering the full model and
optimizer state to rank 0's CPU (`full_state`), rank 0 writes model.pt (OpenAI names) and
optimizer.pt (keyed by parameter index, as `optimizer.state_dict()`), and `load_full_state` puts them
back into the shards. Eval and resume read either run's checkpoints the same way.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule

from trainer.model import CLIP


def residual_blocks(clip: CLIP) -> list[nn.Module]:
    """The units FSDP shards one by one: ViT or ResNet blocks, then the text transformer's."""
    if clip.cfg.vision.is_vit:
        vision = list(clip.visual.transformer.resblocks)
    else:
        vision = [b for stage in (clip.visual.layer1, clip.visual.layer2, clip.visual.layer3, clip.visual.layer4)
                  for b in stage]
    return vision + list(clip.transformer.resblocks)


def wrap(clip: CLIP, parallel: str, device: torch.device) -> nn.Module:
    """The module a train step calls: DDP around `clip`, or `clip` itself sharded in place (FSDP2).
    Call inside Ray Train's process group; the optimizer is built on `clip` afterwards."""
    if parallel == "ddp":
        import ray.train.torch

        return ray.train.torch.prepare_model(clip)                     # device + DDP (gloo on CPU)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if device.type == "cuda":
        torch.cuda.set_device(device)                                   # FSDP2 streams use the current device
    clip.to(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in residual_blocks(clip):
        fully_shard(block, mesh=mesh)
    fully_shard(clip, mesh=mesh, ignored_params={clip.logit_scale})
    return clip


def gradient_sync(model: nn.Module, clip: CLIP, sync: bool):
    """Context for one micro-batch's forward and backward: gradients are reduced across workers only
    when `sync` (the last micro-batch of a step); before that they add up locally."""
    if isinstance(clip, FSDPModule):
        clip.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()
    return model.no_sync() if not sync and hasattr(model, "no_sync") else contextlib.nullcontext()


def average_replicated_grads(clip: CLIP) -> None:
    """FSDP does not reduce the gradients of the parameters it ignores: average logit_scale's here."""
    if isinstance(clip, FSDPModule) and clip.logit_scale.grad is not None:
        dist.all_reduce(clip.logit_scale.grad)
        clip.logit_scale.grad /= dist.get_world_size()


def local_param_bytes(clip: CLIP) -> int:
    """Bytes of parameters this worker holds: the whole model under DDP, about 1/world of it under FSDP."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).nbytes for p in clip.parameters())


def _names(clip: CLIP, optimizer) -> list[str]:
    """Parameter names in the optimizer's order: index i in `optimizer.state_dict()` is names[i]."""
    name = {id(p): n for n, p in clip.named_parameters()}
    return [name[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _rekey(optim_state: dict, keys: dict) -> dict:
    """An optimizer state dict with its parameter keys (index <-> name) mapped through `keys`."""
    return {"state": {keys[k]: v for k, v in optim_state["state"].items()},
            "param_groups": [{**g, "params": [keys[k] for k in g["params"]]} for g in optim_state["param_groups"]]}


def full_state(clip: CLIP, optimizer) -> tuple[dict, dict]:
    """(model state dict, optimizer state dict), whole, in DDP's layout. Under FSDP a collective:
    every worker calls it, rank 0 gets the tensors on its CPU and the others get empty dicts."""
    if not isinstance(clip, FSDPModule):
        return clip.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(clip, options=options)
    optim_state = get_optimizer_state_dict(clip, optimizer, options=options)   # keyed by parameter name
    if not optim_state:
        return model_state, optim_state
    return model_state, _rekey(optim_state, {n: i for i, n in enumerate(_names(clip, optimizer))})


def load_full_state(clip: CLIP, optimizer, model_state: dict, optim_state: dict) -> None:
    """Load whole state dicts (`full_state`'s) into `clip` and `optimizer`; under FSDP every worker
    calls it with the full dicts and keeps its shard."""
    if not isinstance(clip, FSDPModule):
        clip.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(clip, model_state, options=options)
    by_name = _rekey(optim_state, dict(enumerate(_names(clip, optimizer))))
    set_optimizer_state_dict(clip, optimizer, by_name, options=options)
