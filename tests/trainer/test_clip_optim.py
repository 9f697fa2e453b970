import pytest
import torch

from trainer.half_adam import HalfStateAdamW
from trainer.loss import clip_loss
from trainer.model import build_model
from trainer.optim import OptimConfig, build_optimizer, cosine_with_warmup, param_groups
from core.errors import WitError


def test_weight_decay_only_on_weight_matrices():
    model = build_model("tiny", vocab_size=300)
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    free = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert {"text_projection", "visual.proj", "visual.conv1.weight",
            "transformer.resblocks.0.attn.in_proj_weight", "transformer.resblocks.0.mlp.c_fc.weight"} <= decayed
    assert {"logit_scale", "token_embedding.weight", "positional_embedding", "visual.positional_embedding",
            "visual.class_embedding", "ln_final.weight", "ln_final.bias",
            "transformer.resblocks.0.attn.in_proj_bias", "transformer.resblocks.0.mlp.c_fc.bias"} <= free
    assert len(decayed) + len(free) == len(names)


def test_cosine_schedule_with_linear_warmup():
    f = cosine_with_warmup(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    model = build_model("tiny", vocab_size=300)
    opt, sched = build_optimizer(model, OptimConfig(lr=1e-3, warmup_steps=4, total_steps=20))
    assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_state_dtype_is_checked_and_picks_the_optimizer():
    with pytest.raises(WitError, match="state_dtype"):
        OptimConfig(state_dtype="fp8")
    with pytest.raises(WitError, match="grad_clip_norm"):
        OptimConfig(grad_clip_norm=0.0)
    model = build_model("tiny", vocab_size=300)
    assert isinstance(build_optimizer(model, OptimConfig(state_dtype="bf16"))[0], HalfStateAdamW)
    assert isinstance(build_optimizer(model, OptimConfig())[0], torch.optim.AdamW)


@pytest.mark.parametrize("state_dtype", ["fp32", "fp16"])
def test_gradient_clipping_runs_inside_the_step(state_dtype):
    model = build_model("tiny", vocab_size=300)
    opt, _ = build_optimizer(model, OptimConfig(grad_clip_norm=0.5, state_dtype=state_dtype))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm.item() == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("precision,state_dtype", [("fp32", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")])
def test_train_step_clamps_the_logit_scale(precision, state_dtype):
    import math

    from trainer.fit import _autocast_and_scaler, train_step

    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=300)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(200))             # beyond the paper's cap of 100
    opt, sched = build_optimizer(model, OptimConfig(warmup_steps=1, total_steps=10, state_dtype=state_dtype))
    autocast, scaler = _autocast_and_scaler(precision, torch.device("cpu"))
    text = torch.randint(0, 298, (4, 77))
    text[:, 5] = 299
    batch = {"image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8), "text": text}
    loss = train_step(model, model, batch, opt, sched, scaler, autocast, rank=0, world=1)
    assert torch.isfinite(loss)
    assert model.logit_scale.item() == pytest.approx(math.log(100))


def _separable_batches(steps, batch=16, classes=4, vocab=300, seed=0):
    """Images: a fixed random pattern per class plus noise; captions: a fixed token string per
    class. Batches repeat classes, so the contrastive loss has a floor well above 0."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, 3, 32, 32, generator=gen)
    words = torch.randint(0, vocab - 2, (classes, 6), generator=gen)
    for _ in range(steps):
        y = torch.randint(0, classes, (batch,), generator=gen)
        images = patterns[y] + 0.5 * torch.randn(batch, 3, 32, 32, generator=gen)
        text = torch.zeros(batch, 77, dtype=torch.long)
        text[:, 0], text[:, 1:7], text[:, 7] = vocab - 2, words[y], vocab - 1
        yield images, text


def _train_tiny(state_dtype, steps=300):
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=300)
    opt, sched = build_optimizer(model, OptimConfig(lr=2e-3, warmup_steps=30, total_steps=steps,
                                                    state_dtype=state_dtype))
    return _separable_losses(model, opt, sched, steps)


def _separable_losses(model, opt, sched, steps):
    """The loss of each of `steps` plain optimizer steps on _separable_batches (features in fp32)."""
    losses = []
    for images, text in _separable_batches(steps):
        image_features, text_features, _ = model(images, text)
        loss = clip_loss(image_features.float(), text_features.float(), model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow
def test_fp16_optimizer_states_train_as_well_as_fp32():
    fp32, fp16 = _train_tiny("fp32"), _train_tiny("fp16")
    final32, final16 = sum(fp32[-30:]) / 30, sum(fp16[-30:]) / 30
    assert final32 < 0.6 * fp32[0]                          # it learned
    assert abs(final16 - final32) <= 0.02 * final32, (final16, final32)
