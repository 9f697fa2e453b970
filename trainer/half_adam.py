"""AdamW whose moments are stored in fp16/bf16, and stochastic rounding for half-precision weights.

The paper trained its largest models with "half-precision Adam statistics and half-precision
stochastically rounded text encoder weights". Storing the two moments in 2 bytes each instead of 4
takes model + gradients + optimizer from 16 to 12 bytes per fp32 parameter.

Why not simply `.half()` the states: the second moment v is a squared gradient. Gradients of
1e-5 give v ~ 1e-10, far below fp16's smallest subnormal (6e-8), so v rounds to 0 and the update
m / (sqrt(v) + eps) blows up. Two things keep every state representable:
  * we store r = sqrt(v), which spans half as many binary orders of magnitude as v does;
  * each stored tensor has its own fp32 scale, chosen at every step so that its largest entry
    sits at 2^15: fp16 then resolves entries down to 2^-39 of that largest one (bf16 down to
    2^-148), and never overflows.
The update itself runs in fp32 on the fly: states are decoded, updated, and re-encoded.
"""

from __future__ import annotations

import math

import torch

HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
STATE_DTYPES = {"fp32": torch.float32, **HALF_DTYPES}   # fp32 states: half weights, full-precision moments
_TOP = 2.0 ** 15                          # where a tensor's largest |entry| lands after scaling


def stochastic_round(x: torch.Tensor, dtype: torch.dtype, generator: torch.Generator | None = None) -> torch.Tensor:
    """fp32 `x` rounded to `dtype` up or down at random, with P(up) = distance to the lower
    neighbour / gap, so E[result] == x. Updates smaller than half a unit in the last place then
    still move a half-precision weight on average instead of vanishing in round-to-nearest."""
    nearest = x.to(dtype)
    toward = torch.where(nearest.float() > x, torch.full_like(nearest, -math.inf), torch.full_like(nearest, math.inf))
    other = torch.nextafter(nearest, toward)                 # the neighbour on x's other side
    lo = torch.minimum(nearest, other).float()
    hi = torch.maximum(nearest, other).float()
    gap = (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)
    p_up = ((x - lo) / gap).clamp_(0, 1)
    u = torch.rand(x.shape, device=x.device, generator=generator)
    out = torch.where(u < p_up, hi, lo).to(dtype)
    return torch.where(nearest.float() == x, nearest, out)   # exactly representable: keep it


class _Scaled:
    """Encode/decode one state tensor as (half tensor, fp32 scale): value = q * scale."""

    @staticmethod
    def encode(value: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> None:
        amax = value.abs().amax().float()
        scale.copy_(torch.where(amax > 0, amax / _TOP, torch.ones_like(amax)))
        q.copy_(value / scale)

    @staticmethod
    def decode(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return q.float() * scale


def _encode_all(values: list[torch.Tensor], q: list[torch.Tensor], scale: list[torch.Tensor]) -> None:
    """_Scaled.encode for a list of tensors: each gets its own scale (its largest |entry| at 2^15)."""
    amax = torch.stack(torch._foreach_norm(values, math.inf)).float()
    new = torch.where(amax > 0, amax / _TOP, torch.ones_like(amax))
    torch._foreach_copy_(scale, list(new.unbind()))
    torch._foreach_copy_(q, torch._foreach_div(values, new.tolist()))


class HalfStateAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay) with fp16/bf16 moments (or fp32 ones, when only some weights
    are half); the arithmetic is fp32.

    Parameters may themselves be fp16/bf16 (e.g. the text encoder, as in the paper): the update
    is computed in fp32 and written back with stochastic rounding when `stochastic_rounding`.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, state_dtype: str = "fp16", stochastic_rounding: bool = True):
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be one of {sorted(STATE_DTYPES)}, not {state_dtype!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.state_dtype = STATE_DTYPES[state_dtype]
        self.stochastic_rounding = stochastic_rounding

    def _init_state(self, p: torch.Tensor) -> dict:
        zeros = dict(dtype=self.state_dtype, device=p.device)
        one = dict(dtype=torch.float32, device=p.device)
        return {"step": 0, "exp_avg": torch.zeros(p.shape, **zeros), "exp_avg_scale": torch.ones((), **one),
                "exp_avg_sq_sqrt": torch.zeros(p.shape, **zeros), "exp_avg_sq_sqrt_scale": torch.ones((), **one)}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(params, group)
        return loss

    def _update(self, params: list[torch.Tensor], group: dict) -> None:
        """One AdamW step for all of a group's parameters at once: multi-tensor (torch._foreach_*) ops,
        each one kernel launch per op on CUDA instead of one per parameter, and one stochastic rounding
        over all half weights of a dtype. Per element the arithmetic is the per-parameter loop's
        (tests/trainer/half_adam_reference.py, the oracle: equal bit for bit without rounding)."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state.update(self._init_state(p))
            state["step"] += 1
        grads = [p.grad.float() for p in params]
        m_q, r_q = [s["exp_avg"] for s in states], [s["exp_avg_sq_sqrt"] for s in states]
        m_scale, r_scale = [s["exp_avg_scale"] for s in states], [s["exp_avg_sq_sqrt_scale"] for s in states]
        scales = torch.stack(m_scale + r_scale).tolist()          # one host sync: foreach takes scalar lists
        m = torch._foreach_mul([q.float() for q in m_q], scales[:len(params)])                       # decode
        r = torch._foreach_mul([q.float() for q in r_q], scales[len(params):])
        torch._foreach_lerp_(m, grads, 1 - beta1)                               # m = b1 m + (1-b1) g
        torch._foreach_mul_(r, r)                                               # v = r^2
        torch._foreach_mul_(r, beta2)
        torch._foreach_addcmul_(r, grads, grads, value=1 - beta2)               # v = b2 v + (1-b2) g^2
        torch._foreach_sqrt_(r)                                                 # r = sqrt(v)
        _encode_all(m, m_q, m_scale)
        _encode_all(r, r_q, r_scale)

        steps = [s["step"] for s in states]
        torch._foreach_div_(r, [math.sqrt(1 - beta2 ** t) for t in steps])    # denominator
        torch._foreach_add_(r, eps)
        weights = [p if p.dtype == torch.float32 else p.float() for p in params]
        torch._foreach_mul_(weights, 1 - lr * wd)                               # decoupled decay
        torch._foreach_addcdiv_(weights, m, r, [-lr / (1 - beta1 ** t) for t in steps])
        half = [(p, w) for p, w in zip(params, weights) if w is not p]
        for dtype in {p.dtype for p, _ in half}:
            pairs = [(p, w) for p, w in half if p.dtype == dtype]
            flat = torch.cat([w.reshape(-1) for _, w in pairs])
            flat = stochastic_round(flat, dtype) if self.stochastic_rounding else flat.to(dtype)
            torch._foreach_copy_([p for p, _ in pairs], [x.view_as(p) for x, (p, _) in
                                                         zip(flat.split([p.numel() for p, _ in pairs]), pairs)])

    def load_state_dict(self, state_dict: dict) -> None:
        """torch casts loaded floating states to the parameter's dtype (a bf16 weight's fp32 scale would
        come back rounded to bf16, and resuming would not be exact); put back the saved tensors as saved."""
        super().load_state_dict(state_dict)
        params = [p for group in self.param_groups for p in group["params"]]
        saved = [i for group in state_dict["param_groups"] for i in group["params"]]
        for p, i in zip(params, saved):
            for key, value in state_dict["state"].get(i, {}).items():
                if torch.is_tensor(value):
                    self.state[p][key] = value.to(p.device, copy=True)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state tensors (moments, scales, step counters)."""
    return sum(v.numel() * v.element_size() for s in optimizer.state.values()
               for v in s.values() if torch.is_tensor(v))
