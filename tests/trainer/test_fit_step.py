"""Accumulation keeps the contrastive batch whole (gradient cache, trainer/fit.py accumulate_gradients):
K micro-batches give the gradient of one big batch of K x B x world pairs. CPU, fp32; tolerances are
float32 summation-order noise (rtol 1e-4, atol 1e-6 on gradients whose entries are ~1e-3..1e-1)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainer.fit import _autocast_and_scaler, accumulate_gradients, train_step
from trainer.model import build_model
from trainer.optim import OptimConfig, build_optimizer

VOCAB = 300


def _batch(rows: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, VOCAB - 2, (rows, 77), generator=g)
    text[:, 5] = VOCAB - 1
    size = build_model("tiny", VOCAB).cfg.vision.image_size
    return {"image": torch.randint(0, 256, (rows, size, size, 3), dtype=torch.uint8, generator=g), "text": text}


def _split(batch: dict, parts: int) -> list[dict]:
    return [{k: v.chunk(parts)[i] for k, v in batch.items()} for i in range(parts)]


def _gradients(model, batches, rank=0, world=1) -> tuple[torch.Tensor, dict]:
    autocast, scaler = _autocast_and_scaler("fp32", torch.device("cpu"))
    model.zero_grad(set_to_none=True)
    clip = model.module if hasattr(model, "module") else model
    loss = accumulate_gradients(model, clip, batches, scaler, autocast, rank, world)
    return loss, {n: p.grad.clone() for n, p in clip.named_parameters()}


def _assert_same_gradients(ours: dict, big: dict) -> None:
    assert set(ours) == set(big)
    for name, grad in big.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_accumulated_micro_batches_give_the_big_batch_gradient():
    torch.manual_seed(0)
    model = build_model("tiny", VOCAB)
    batch = _batch(12, seed=1)
    big_loss, big = _gradients(model, [batch])
    loss, ours = _gradients(model, _split(batch, 3))
    assert loss.item() == pytest.approx(big_loss.item(), rel=1e-6)
    _assert_same_gradients(ours, big)
    assert big["logit_scale"].abs().item() > 0 and big["visual.proj"].abs().max() > 0
    # Without the cache (each micro-batch its own negatives) the gradient is another one.
    _, separate = _gradients(model, [_split(batch, 3)[0]])
    assert not torch.allclose(separate["visual.proj"], big["visual.proj"], rtol=1e-2, atol=1e-4)


def test_accumulated_step_trains_like_the_big_step():
    batch = _batch(8, seed=2)
    states = []
    for batches in ([batch], _split(batch, 2)):
        torch.manual_seed(0)
        model = build_model("tiny", VOCAB)
        opt, sched = build_optimizer(model, OptimConfig(warmup_steps=1, total_steps=10))
        autocast, scaler = _autocast_and_scaler("fp32", torch.device("cpu"))
        for _ in range(2):
            train_step(model, model, batches, opt, sched, scaler, autocast, rank=0, world=1)
        states.append(model.state_dict())
    for name, tensor in states[0].items():
        torch.testing.assert_close(states[1][name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def _ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(build_model("tiny", VOCAB))
    local = _split(_batch(16, seed=3), world)[rank]                      # rank-major, as the gather orders it
    loss, grads = _gradients(model, _split(local, 2), rank, world)      # 2 micro-batches of 4 per worker
    dist.all_reduce(loss)                 # each worker's loss covers its own rows: the mean is the batch's
    loss /= world
    if rank == 0:
        torch.save({"loss": loss, "grads": grads}, out)
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_workers_accumulate_the_global_batch_gradient(tmp_path):
    mp.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path / "rank0.pt")), nprocs=2)
    torch.manual_seed(0)
    big_loss, big = _gradients(build_model("tiny", VOCAB), [_batch(16, seed=3)])
    theirs = torch.load(tmp_path / "rank0.pt")
    assert theirs["loss"].item() == pytest.approx(big_loss.item(), rel=1e-5)
    _assert_same_gradients(theirs["grads"], big)
