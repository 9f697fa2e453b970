import torch

from trainer.fit import _autocast_and_scaler, train_step
from trainer.model import build_model
from trainer.optim import OptimConfig, build_optimizer


def _step(batches):
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=300)
    opt, sched = build_optimizer(model, OptimConfig(warmup_steps=1, total_steps=10))
    autocast, scaler = _autocast_and_scaler("fp32", torch.device("cpu"))
    loss = train_step(model, model, batches, opt, sched, scaler, autocast, rank=0, world=1)
    return loss, model.state_dict()


def test_accumulation_averages_micro_batch_gradients():
    """Two micro-batches whose gradients are averaged: the same batch twice steps like the batch once.
    (Negatives stay within a micro-batch: accumulation is not a larger contrastive batch.)"""
    g = torch.Generator().manual_seed(1)
    text = torch.randint(0, 298, (4, 77), generator=g)
    text[:, 5] = 299
    batch = {"image": torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=g), "text": text}
    loss_one, once = _step(batch)
    loss_two, twice = _step([batch, batch])
    assert torch.allclose(loss_one, loss_two)
    for name, tensor in once.items():
        torch.testing.assert_close(tensor, twice[name], rtol=1e-5, atol=1e-6, msg=name)
