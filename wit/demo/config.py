"""The demo's sizes: `wit demo`'s default and the smoke size the tests run (no heavy imports: the
planner's demo presets read them at every `wit` start)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoConfig:
    out: str = "demo_out"
    seed: int = 0
    pool_rows: int = 4_000  # "a few thousand" alt-text rows, a fifth of them bad in some way
    cap_per_query: int = 100  # the paper's 20,000 scaled to a pool of thousands
    image_size: int = 64  # shorter side of the downloaded images
    rows_per_download_shard: int = 1_000  # two shards or more: both CPUs download
    model: str = "tiny"
    train_steps: int = 300
    batch_size: int = 64  # per worker
    lr: float = 5e-4  # peak; cosine to zero after a 10% warmup (TrainConfig)
    num_workers: int = 2
    eval_images_per_class: int = 30


def smoke_config(out: str) -> DemoConfig:
    """The demo path at test size: every stage runs, in about a minute, and zero-shot beats chance.

    120 steps of 16 per worker (about 9 passes over the ~400 downloaded pairs) at lr 1e-3: the tiny
    CLIP sits near the contrastive loss's log(batch) plateau for its first tens of steps (12 steps at
    5e-4 stayed at 1.5x chance, 40 steps at 2e-3 at 2x; 5e-3 did not leave it), then learns the colour
    words: 92% top-1 at seed 0 on the demo's port (tests/wit/test_demo.py); on random ports, where each
    run's corpus differed, 47% to 88%. 8 eval images per class (64 in all) keep the estimate's noise
    well under the margin over the test's 3x chance.
    """
    return DemoConfig(out=out, pool_rows=600, cap_per_query=40, rows_per_download_shard=200, train_steps=120,
                      batch_size=16, lr=1e-3, eval_images_per_class=8)
