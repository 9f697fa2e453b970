import pytest

from trainer.model import build_model
from trainer.optim import OptimConfig, build_optimizer, cosine_with_warmup, param_groups
from wit.errors import WitError


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


def test_fp16_optimizer_states_are_not_there_yet():
    with pytest.raises(WitError, match="state_dtype"):
        OptimConfig(state_dtype="fp16")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_clamps_the_logit_scale(precision):
    import math

    import torch

    from trainer.fit import _autocast_and_scaler, train_step

    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=300)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(200))             # beyond the paper's cap of 100
    opt, sched = build_optimizer(model, OptimConfig(warmup_steps=1, total_steps=10))
    autocast, scaler = _autocast_and_scaler(precision, torch.device("cpu"))
    text = torch.randint(0, 298, (4, 77))
    text[:, 5] = 299
    batch = {"image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8), "text": text}
    loss = train_step(model, model, batch, opt, sched, scaler, autocast, rank=0, world=1)
    assert torch.isfinite(loss)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
