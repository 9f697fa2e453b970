"""The eval configs, one frozen dataclass per eval, apart from the evals themselves.

They live here, without torch, so that `wit eval`'s parser (trainer/eval/cli.py) takes its defaults
from them at every `wit` start; the batch and in-process sizes every eval shares live once, in
`EmbedConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL_MAX_ROWS = 512      # at most this many rows: embed in-process (no actor start-up, no model shipping)
BUNDLED = ("cifar10", "cifar100", "imagenet")     # templates/<name>.json: the paper's classes and prompts


@dataclass(frozen=True)
class EmbedConfig:
    checkpoint: str               # a checkpoint dir, or a run dir (its checkpoints/latest)
    batch_size: int = 64
    local_max_rows: int = LOCAL_MAX_ROWS   # -1: always Ray Data
    actors: int | None = None     # Ray Data actor pool size; None: one per GPU, or 1 on CPU
    progress: bool = True


@dataclass(frozen=True)
class ZeroShotConfig:
    checkpoint: str                       # a checkpoint dir, or a run dir (its checkpoints/latest)
    images: str                           # image-folder tree, *.parquet (image + label) or CIFAR batches
    classes_json: str | None = None       # {"classes": [...] or {label: name}, "templates": [...]}, or BUNDLED
    batch_size: int = EmbedConfig.batch_size
    templates: str = "ensemble"           # ensemble | single ("a photo of a {}.") | both (side by side)
    split: str = "test"                   # CIFAR batches: train | test
    local_max_rows: int = EmbedConfig.local_max_rows  # inputs this small are embedded in-process, larger via Ray Data
    actors: int | None = None


@dataclass(frozen=True)
class RetrievalConfig:
    checkpoint: str
    captions: str                         # captions.jsonl, a COCO captions_*.json, or *.parquet
    images: str | None = None             # image root (default: next to the captions file)
    batch_size: int = EmbedConfig.batch_size
    local_max_rows: int = EmbedConfig.local_max_rows
    actors: int | None = None


@dataclass(frozen=True)
class LinearProbeConfig:
    checkpoint: str
    train: str                            # image-folder tree, *.parquet or CIFAR batches (split train)
    test: str                             # same formats (CIFAR: split test); the same classes as train
    val: str | None = None                # default: val_fraction of train, drawn with seed
    val_fraction: float = 0.2
    seed: int = 0
    max_iter: int = 1000
    batch_size: int = EmbedConfig.batch_size
    local_max_rows: int = EmbedConfig.local_max_rows
    actors: int | None = None
