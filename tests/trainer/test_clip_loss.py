import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from trainer.loss import clip_loss, gather_features


def paper_loss(I_e: np.ndarray, T_e: np.ndarray, t: float) -> float:
    """Figure 3 of the CLIP paper, in numpy."""
    def cross_entropy(logits, labels, axis):
        logp = logits - np.log(np.exp(logits).sum(axis=axis, keepdims=True))
        return -np.take_along_axis(logp, labels[:, None] if axis == 1 else labels[None, :], axis=axis).mean()

    logits = np.dot(I_e, T_e.T) * np.exp(t)
    labels = np.arange(len(I_e))
    loss_i = cross_entropy(logits, labels, axis=1)
    loss_t = cross_entropy(logits, labels, axis=0)
    return (loss_i + loss_t) / 2


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_loss_matches_the_papers_pseudocode():
    rng = np.random.default_rng(0)
    for n, d, t in [(8, 16, np.log(1 / 0.07)), (33, 5, 0.0), (4, 64, np.log(100))]:
        I_e, T_e = _unit(rng, n, d), _unit(rng, n, d)
        ours = clip_loss(torch.from_numpy(I_e), torch.from_numpy(T_e), torch.tensor(t, dtype=torch.float64))
        assert abs(ours.item() - paper_loss(I_e, T_e, t)) <= 1e-6


def test_gather_is_identity_on_one_process():
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    gx, gy = gather_features(x, y)
    assert gx is x and gy is y


def _worker(rank, world, port, img, txt, scale, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    B = img.shape[0] // world
    local_img = img[rank * B:(rank + 1) * B].clone().requires_grad_(True)
    local_txt = txt[rank * B:(rank + 1) * B].clone().requires_grad_(True)
    log_scale = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    loss = clip_loss(local_img, local_txt, log_scale, rank=rank, world_size=world)
    loss.backward()
    out.put((rank, loss.item(), local_img.grad, local_txt.grad, log_scale.grad))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_match_one_process_on_the_concatenated_batch():
    world, B, E, scale = 2, 5, 8, float(np.log(1 / 0.07))
    rng = np.random.default_rng(1)
    img, txt = torch.from_numpy(_unit(rng, world * B, E)), torch.from_numpy(_unit(rng, world * B, E))

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, img, txt, scale, out)) for r in range(world)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in range(world))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    full_img, full_txt = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    full_scale = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    full = clip_loss(full_img, full_txt, full_scale)
    full.backward()

    # The global loss is the mean of the workers' local losses; each worker's feature gradient is
    # world * (the global gradient) until DDP averages over workers.
    assert np.mean([r[1] for r in results]) == pytest.approx(full.item(), abs=1e-10)
    for rank, _, g_img, g_txt, _ in results:
        rows = slice(rank * B, (rank + 1) * B)
        torch.testing.assert_close(g_img / world, full_img.grad[rows], atol=1e-10, rtol=0)
        torch.testing.assert_close(g_txt / world, full_txt.grad[rows], atol=1e-10, rtol=0)
    assert np.mean([r[4].item() for r in results]) == pytest.approx(full_scale.grad.item(), abs=1e-10)
