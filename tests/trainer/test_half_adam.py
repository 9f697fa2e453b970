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
