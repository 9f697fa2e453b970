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
    num_workers: int = 2
    eval_images_per_class: int = 30


def smoke_config(out: str) -> DemoConfig:
    """The demo path at test size: every stage runs, in about a minute."""
    return DemoConfig(out=out, pool_rows=600, cap_per_query=40, rows_per_download_shard=200, train_steps=12,
                      batch_size=16, eval_images_per_class=4)
