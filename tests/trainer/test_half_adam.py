import math

import pytest
import torch

from trainer.half_adam import HalfStateAdamW, state_bytes, stochastic_round


def _run(optimizer_cls, grads, **kwargs):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(64, 32))
    opt = optimizer_cls([w], lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.2, **kwargs)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach(), opt


@pytest.mark.parametrize("state_dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("grad_scale", [1e-6, 1.0, 1e3])
def test_half_states_follow_fp32_adamw_even_for_tiny_gradients(state_dtype, grad_scale):
    # grad 1e-6 -> v ~ 1e-12, which is 0 in plain fp16 (smallest subnormal 6e-8): a naive fp16
    # second moment would divide m by eps alone and blow the update up by orders of magnitude.
    assert torch.tensor(1e-12).half().item() == 0.0
    gen = torch.Generator().manual_seed(1)
    grads = [grad_scale * torch.randn(64, 32, generator=gen) * torch.logspace(-3, 0, 32) for _ in range(30)]
    ref, _ = _run(torch.optim.AdamW, grads)
    ours, opt = _run(HalfStateAdamW, grads, state_dtype=state_dtype)
    start, _ = _run(torch.optim.AdamW, [])
    moved = (ref - start).abs()
    assert moved.mean() > 1e-3                                   # the steps did something
    tol = 2e-3 if state_dtype == "fp16" else 2e-2                # of the distance moved
    assert ((ours - ref).abs() / moved.clamp_min(1e-6)).median() < tol
    assert ((ours - ref).abs()).max() < 0.05 * moved.max()
    state = opt.state[next(iter(opt.state))]
    assert state["exp_avg"].dtype == state["exp_avg_sq_sqrt"].dtype == {"fp16": torch.float16,
                                                                        "bf16": torch.bfloat16}[state_dtype]


def test_state_is_four_bytes_per_parameter():
    _, opt = _run(HalfStateAdamW, [torch.randn(64, 32)], state_dtype="fp16")
    _, ref = _run(torch.optim.AdamW, [torch.randn(64, 32)])
    n = 64 * 32
    assert state_bytes(opt) <= 4 * n + 64                        # two 2-byte moments (+ scales)
    assert state_bytes(ref) >= 8 * n                              # two 4-byte moments


def test_state_dict_round_trip_keeps_half_states_and_the_trajectory():
    gen = torch.Generator().manual_seed(2)
    grads = [torch.randn(64, 32, generator=gen) for _ in range(6)]
    straight, _ = _run(HalfStateAdamW, grads, state_dtype="fp16")
    w, opt = _run(HalfStateAdamW, grads[:3], state_dtype="fp16")
    w = torch.nn.Parameter(w.clone())
    resumed = HalfStateAdamW([w], lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.2, state_dtype="fp16")
    resumed.load_state_dict(opt.state_dict())
    assert resumed.state[w]["exp_avg"].dtype == torch.float16
    for g in grads[3:]:
        w.grad = g.clone()
        resumed.step()
    torch.testing.assert_close(w.detach(), straight, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stochastic_rounding_is_unbiased_and_keeps_tiny_updates(dtype):
    gen = torch.Generator().manual_seed(3)
    x = torch.full((200_000,), 1.0 + 0.3 * torch.finfo(dtype).eps)   # 0.3 of the way to the next value
    rounded = stochastic_round(x, dtype, gen)
    assert set(rounded.float().unique().tolist()) == {1.0, 1.0 + torch.finfo(dtype).eps}
    assert rounded.float().mean().item() == pytest.approx(x[0].item(), abs=2e-3 * torch.finfo(dtype).eps * 10)
    exact = torch.tensor([0.5, -2.0, 3.0])
    assert torch.equal(stochastic_round(exact, dtype, gen).float(), exact)

    # 200 updates of +1e-4 onto a weight of 1.0: below half an ulp, so round-to-nearest never moves.
    nearest = stochastic = torch.ones(1000, dtype=dtype)
    for _ in range(200):
        nearest = (nearest.float() + 1e-4).to(dtype)
        stochastic = stochastic_round(stochastic.float() + 1e-4, dtype, gen)
    if dtype == torch.bfloat16:
        assert torch.all(nearest == 1.0)
    assert stochastic.float().mean().item() == pytest.approx(1.02, abs=2e-3)


def test_half_parameters_train_with_fp32_math():
    torch.manual_seed(0)
    target = torch.randn(16, 8)
    w = torch.nn.Parameter(torch.zeros(16, 8, dtype=torch.bfloat16))
    opt = HalfStateAdamW([w], lr=3e-2, betas=(0.9, 0.98), state_dtype="bf16")
    for _ in range(300):
        opt.zero_grad()
        ((w.float() - target) ** 2).sum().backward()
        opt.step()
    assert w.dtype == torch.bfloat16
    assert (w.float() - target).abs().max() < 0.05           # bf16 spacing near 2 is 0.0156


# ---------------------------------------------------------------------------------------------
# The multi-tensor step against the per-parameter loop (tests/trainer/half_adam_reference.py)


def _params(seed: int, dtypes=(torch.float32, torch.bfloat16, torch.float32, torch.float16)) -> list:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(16, 8), (33,), (4, 4, 3), ()]
    return [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.1).to(d)) for s, d in zip(shapes, dtypes)]


def _trajectory(optimizer_cls, state_dtype: str, rounding: bool, steps: int = 5, seed: int = 3):
    params = _params(seed)
    opt = optimizer_cls([{"params": params[:2], "weight_decay": 0.2}, {"params": params[2:], "weight_decay": 0.0}],
                        lr=1e-2, betas=(0.9, 0.98), eps=1e-6, state_dtype=state_dtype, stochastic_rounding=rounding)
    gen = torch.Generator().manual_seed(seed + 1)
    for i in range(steps):
        for j, p in enumerate(params):
            skip = i == 1 and j == 0                       # a parameter without a gradient in one step
            p.grad = None if skip else (torch.randn(p.shape, generator=gen) * 10.0 ** -j).to(p.dtype)
        opt.step()
    return params, opt


@pytest.mark.parametrize("state_dtype", ["fp32", "fp16", "bf16"])
def test_fused_step_equals_the_per_parameter_loop_bit_for_bit(state_dtype):
    from half_adam_reference import ReferenceHalfStateAdamW

    ours, opt = _trajectory(HalfStateAdamW, state_dtype, rounding=False)
    ref, ref_opt = _trajectory(ReferenceHalfStateAdamW, state_dtype, rounding=False)
    for p, q in zip(ours, ref):
        assert p.dtype == q.dtype and torch.equal(p, q)
        for key, value in ref_opt.state[q].items():
            assert torch.equal(torch.as_tensor(opt.state[p][key]), torch.as_tensor(value)), key


def test_fused_rounding_lands_on_a_neighbour_of_the_loops_fp32_update():
    """One step with stochastic rounding: both write one of the two half values around the same fp32
    result (their random draws differ), so they differ by at most one gap between neighbours."""
    from half_adam_reference import ReferenceHalfStateAdamW

    ours, _ = _trajectory(HalfStateAdamW, "bf16", rounding=True, steps=1)
    ref, _ = _trajectory(ReferenceHalfStateAdamW, "bf16", rounding=True, steps=1)
    for p, q in zip(ours, ref):
        if p.dtype != torch.float32:
            gap = (torch.nextafter(q, torch.full_like(q, math.inf)).float() - q.float()).abs()
            gap = torch.maximum(gap, (q.float() - torch.nextafter(q, torch.full_like(q, -math.inf)).float()).abs())
            assert ((p.float() - q.float()).abs() <= gap).all()
        else:
            assert torch.equal(p, q)


def test_mean_of_stochastically_rounded_updates_is_the_fp32_update():
    """20,000 copies of one bf16 weight take the same step, smaller than half a bf16 gap: rounding to
    nearest would leave them all unchanged; the fused step's rounding moves them so that their mean is
    the fp32 update, within 5 standard errors of the two-point rounding distribution."""
    n = 20_000
    half = torch.nn.Parameter(torch.ones(n, dtype=torch.bfloat16))
    full = torch.nn.Parameter(torch.ones(n))
    for p in (half, full):
        opt = HalfStateAdamW([p], lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0, state_dtype="fp32")
        p.grad = torch.ones(n, dtype=p.dtype)
        opt.step()
    target = full[0].item()                                         # 1 - 1e-3: the fp32 update
    lo, hi = torch.tensor(target).to(torch.bfloat16).float().item(), 1.0
    lo = lo if lo < target else torch.nextafter(torch.tensor(target, dtype=torch.bfloat16),
                                                 torch.tensor(0.0, dtype=torch.bfloat16)).float().item()
    assert lo < target < hi and torch.tensor(target).to(torch.bfloat16).item() == 1.0   # nearest: no move
    p_hi = (target - lo) / (hi - lo)
    stderr = (hi - lo) * math.sqrt(p_hi * (1 - p_hi) / n)
    assert set(half.float().unique().tolist()) == {lo, hi}
    assert abs(half.float().mean().item() - target) < 5 * stderr
