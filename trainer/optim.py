"""AdamW with decoupled weight decay on weight matrices only, a cosine schedule with linear warmup,
optional gradient clipping, Adam moments storable in fp16/bf16 (trainer/half_adam.py), and the
paper's half-precision text encoder weights, updated with stochastic rounding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trainer.config import STATE_DTYPE_NAMES, WEIGHT_DTYPE_NAMES
from trainer.half_adam import HalfStateAdamW
from core.errors import WitError

STATE_DTYPES = STATE_DTYPE_NAMES
WEIGHT_DTYPES = dict(zip(WEIGHT_DTYPE_NAMES, (torch.float32, torch.float16, torch.bfloat16)))
# The text encoder, as the paper stores it in half precision: everything between token ids and the
# text embedding. The vision tower and logit_scale (one shared, clamped scalar) stay fp32.
TEXT_TOWER = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-4                      # the paper's ViT-B/32 peak learning rate
    weight_decay: float = 0.2             # the paper's value (decoupled, as in AdamW)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 2_000
    total_steps: int = 10_000
    state_dtype: str = "fp32"             # Adam moments: fp32 (16 bytes/param in all) or fp16/bf16 (12)
    grad_clip_norm: float | None = None   # clip the global gradient norm to this; None = no clipping
    stochastic_rounding: bool = True      # for fp16/bf16 parameters (the paper's half text encoder)
    fused: bool | None = None             # fp32 states: one fused CUDA kernel per step; None = when on CUDA

    def __post_init__(self) -> None:
        if self.state_dtype not in STATE_DTYPES:
            raise WitError(f"state_dtype={self.state_dtype!r} is unknown", hint=f"one of {STATE_DTYPES}")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise WitError(f"grad_clip_norm={self.grad_clip_norm} must be > 0", hint="or None for no clipping")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise WitError(f"total_steps={self.total_steps}, warmup_steps={self.warmup_steps} are invalid",
                           hint="total_steps >= 1 and warmup_steps >= 0")


def decays(name: str, param: nn.Parameter) -> bool:
    """Weight decay applies to weight matrices and conv kernels; gains, biases, embeddings (token,
    positional, class) and the logit scale are left free."""
    return param.ndim >= 2 and "embedding" not in name


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if decays(name, param) else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def store_text_tower(model: nn.Module, dtype: str) -> list[str]:
    """Keep the text encoder's weights (TEXT_TOWER) in `dtype` (fp32 | fp16 | bf16); returns their names.

    Half weights halve the tower's weight and gradient bytes; the optimizer keeps fp32 arithmetic and
    writes them back with stochastic rounding (build_optimizer picks HalfStateAdamW when any weight is
    half). Without autocast the text forward then runs in `dtype` too; under autocast, as autocast says.
    """
    names = [n for n, _ in model.named_parameters() if n.startswith(TEXT_TOWER)]
    with torch.no_grad():
        for name in names:
            param = model.get_parameter(name)
            param.data = param.data.to(WEIGHT_DTYPES[dtype])
    return names


def cosine_with_warmup(warmup_steps: int, total_steps: int):
    """LR multiplier for step s: linear from 1/warmup up to 1, then a half cosine down to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def build_optimizer(model: nn.Module, cfg: OptimConfig):
    """(AdamW, LambdaLR); call scheduler.step() once after every optimizer step. Half moments or half
    weights (store_text_tower) take HalfStateAdamW: fp32 math, stochastic rounding into half weights.

    Clipping runs inside `optimizer.step()` (a step pre-hook), so under `GradScaler` it sees the
    unscaled gradients (`scaler.step` unscales first) and a skipped fp16 step clips nothing.
    """
    groups = param_groups(model, cfg.weight_decay)
    half_weights = any(p.dtype != torch.float32 for g in groups for p in g["params"])
    if cfg.state_dtype == "fp32" and not half_weights:
        # The fused kernel updates every tensor in one launch instead of a dozen per parameter list;
        # on a B/32 step that launch overhead is a visible share of the GPU time.
        fused = cfg.fused if cfg.fused is not None else all(p.is_cuda for g in groups for p in g["params"])
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
    else:
        optimizer = HalfStateAdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                   state_dtype=cfg.state_dtype, stochastic_rounding=cfg.stochastic_rounding)
    if cfg.grad_clip_norm is not None:
        params = [p for g in groups for p in g["params"]]

        def clip(opt, args, kwargs) -> None:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.register_step_pre_hook(clip)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(cfg.warmup_steps, cfg.total_steps))
    return optimizer, scheduler
