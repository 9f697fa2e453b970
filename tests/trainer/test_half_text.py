"""The paper's half-precision text encoder: weights stored in bf16, updated in fp32 and stochastically
rounded back; it trains like fp32, and a checkpoint of it resumes exactly (one process, CPU)."""

import pytest
import torch

from test_clip_optim import _separable_losses
from trainer import checkpoint
from trainer.config import TrainConfig
from trainer.fit import _autocast_and_scaler, train_step
from trainer.half_adam import HalfStateAdamW
from trainer.model import build_model
from trainer.optim import OptimConfig, build_optimizer, store_text_tower
from core.errors import WitError

TEXT = {"token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection"}


def _model(text_dtype, steps=10, lr=1e-3):
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=300)
    store_text_tower(model, text_dtype)
    opt, sched = build_optimizer(model, OptimConfig(lr=lr, warmup_steps=2, total_steps=steps))
    return model, opt, sched


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        text = torch.randint(0, 298, (4, 77), generator=g)
        text[:, 5] = 299
        yield {"image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=g), "text": text}


def test_only_the_text_tower_is_half_and_it_moves():
    model, opt, sched = _model("bf16")
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    half = {n for n, d in dtypes.items() if d == torch.bfloat16}
    assert TEXT <= half and all(n.startswith("transformer.") for n in half - TEXT)
    assert {n for n in dtypes if n.startswith("transformer.")} <= half          # every text block
    assert not any(n.startswith("visual.") for n in half) and dtypes["logit_scale"] == torch.float32
    assert isinstance(opt, HalfStateAdamW) and opt.state_dtype == torch.float32  # fp32 moments, rounded weights
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    autocast, scaler = _autocast_and_scaler("fp32", torch.device("cpu"))
    for batch in _batches(2):
        assert torch.isfinite(train_step(model, model, batch, opt, sched, scaler, autocast, rank=0, world=1))
    for name, p in model.named_parameters():
        assert p.dtype == dtypes[name], name                                    # the step keeps bf16 bf16
    assert not torch.equal(before["transformer.resblocks.0.mlp.c_fc.weight"],
                           model.transformer.resblocks[0].mlp.c_fc.weight)


def _train_tiny(text_dtype, steps=100):
    model, opt, sched = _model(text_dtype, steps, lr=2e-3)
    return _separable_losses(model, opt, sched, steps)


@pytest.mark.slow
def test_bf16_text_weights_train_as_well_as_fp32():
    """Final loss (mean of the last 20 of 100 steps) within 2% of fp32's. bf16 keeps 8 significant bits, a
    relative error of 2^-9 per rounding; stochastic rounding makes each rounding unbiased, so the
    errors average out over steps instead of accumulating one way, and the run tracks fp32 to well
    within the step-to-step noise of the loss (measured: 1e-4 relative); 2% is the bound the issue
    sets for half optimizer states, kept here for the same kind of change."""
    fp32, bf16 = _train_tiny("fp32"), _train_tiny("bf16")
    final32, final16 = sum(fp32[-20:]) / 20, sum(bf16[-20:]) / 20
    assert final32 < 0.6 * fp32[0]                                              # it learned
    assert abs(final16 - final32) <= 0.02 * final32, (final16, final32)


def test_checkpoint_of_bf16_text_resumes_exactly(tmp_path):
    """3 steps, save, restore into fresh objects, 3 more == 6 straight steps, bit for bit: the weights
    stay bf16 in model.pt, the fp32 moments and scales come back fp32 (torch would cast them to the
    weight's bf16), and the RNG that drives stochastic rounding is restored."""
    cfg = TrainConfig(corpus_dir="c", run_dir="r", text_dtype="bf16")
    autocast, scaler = _autocast_and_scaler("fp32", torch.device("cpu"))
    straight, opt, sched = _model("bf16")
    for batch in _batches(6):
        train_step(straight, straight, batch, opt, sched, scaler, autocast, rank=0, world=1)

    model, opt, sched = _model("bf16")
    batches = list(_batches(6))
    for batch in batches[:3]:
        train_step(model, model, batch, opt, sched, scaler, autocast, rank=0, world=1)
    checkpoint.save(tmp_path, clip=model, optimizer=opt, scheduler=sched, scaler=scaler, step=3, micro_step=3,
                    cfg=cfg, tokenizer_json="{}", metrics=[])
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["transformer.resblocks.0.attn.in_proj_weight"].dtype == torch.bfloat16
    assert saved["text_projection"].dtype == torch.bfloat16 and saved["visual.proj"].dtype == torch.float32

    resumed, opt, sched = _model("bf16")
    checkpoint.restore(tmp_path, clip=resumed, optimizer=opt, scheduler=sched, scaler=scaler)
    state = opt.state[resumed.text_projection]
    assert state["exp_avg"].dtype == state["exp_avg_scale"].dtype == torch.float32
    for batch in batches[3:]:
        train_step(resumed, resumed, batch, opt, sched, scaler, autocast, rank=0, world=1)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_unsupported_combinations_say_why():
    with pytest.raises(WitError, match="GradScaler"):
        TrainConfig(corpus_dir="c", run_dir="r", text_dtype="fp16", precision="fp16")
    with pytest.raises(WitError, match="shards"):
        TrainConfig(corpus_dir="c", run_dir="r", text_dtype="bf16", parallel="fsdp")
    with pytest.raises(WitError, match="unknown"):
        TrainConfig(corpus_dir="c", run_dir="r", parallel="zero3")
