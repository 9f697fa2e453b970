"""AdamW with decoupled weight decay on weight matrices only, and a cosine schedule with linear warmup."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wit.errors import WitError


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-4                      # the paper's ViT-B/32 peak learning rate
    weight_decay: float = 0.2             # the paper's value (decoupled, as in AdamW)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 2_000
    total_steps: int = 10_000
    state_dtype: str = "fp32"             # Adam moments' dtype; fp16/bf16 states are planned

    def __post_init__(self) -> None:
        if self.state_dtype != "fp32":
            raise WitError(f"state_dtype={self.state_dtype!r} is not supported yet",
                           hint="use state_dtype='fp32' (fp16/bf16 optimizer states are planned)")
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


def cosine_with_warmup(warmup_steps: int, total_steps: int):
    """LR multiplier for step s: linear from 1/warmup up to 1, then a half cosine down to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def build_optimizer(model: nn.Module, cfg: OptimConfig):
    """(AdamW, LambdaLR); call scheduler.step() once after every optimizer step."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  betas=tuple(cfg.betas), eps=cfg.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(cfg.warmup_steps, cfg.total_steps))
    return optimizer, scheduler
