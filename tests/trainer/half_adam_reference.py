"""The test oracle for trainer/half_adam.py's multi-tensor step: HalfStateAdamW's update written as the
plain per-parameter loop it was before it was fused (same state layout, same fp32 arithmetic)."""

from __future__ import annotations

import math

import torch

from trainer.half_adam import _TOP, HalfStateAdamW, stochastic_round


def _decode(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale


def _encode(value: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> None:
    amax = value.abs().amax().float()
    scale.copy_(torch.where(amax > 0, amax / _TOP, torch.ones_like(amax)))
    q.copy_(value / scale)


class ReferenceHalfStateAdamW(HalfStateAdamW):
    """HalfStateAdamW stepping one parameter at a time."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self._init_state(p))
                state["step"] += 1
                g = p.grad.float()
                m = _decode(state["exp_avg"], state["exp_avg_scale"])
                r = _decode(state["exp_avg_sq_sqrt"], state["exp_avg_sq_sqrt_scale"])
                m.lerp_(g, 1 - beta1)                                           # m = b1 m + (1-b1) g
                v = r.square_().mul_(beta2).addcmul_(g, g, value=1 - beta2)     # v = b2 v + (1-b2) g^2
                r = v.sqrt_()
                _encode(m, state["exp_avg"], state["exp_avg_scale"])
                _encode(r, state["exp_avg_sq_sqrt"], state["exp_avg_sq_sqrt_scale"])

                t = state["step"]
                step_size = lr / (1 - beta1 ** t)
                denom = r.div_(math.sqrt(1 - beta2 ** t)).add_(eps)
                w = p if p.dtype == torch.float32 else p.float()
                w.mul_(1 - lr * wd)                                             # decoupled decay
                w.addcdiv_(m, denom, value=-step_size)
                if w is not p:
                    p.copy_(stochastic_round(w, p.dtype) if self.stochastic_rounding else w)
