"""Runs that tests compare: a small exact config, and reading a finished `fit` result back."""

from __future__ import annotations

from typing import Any

import torch

from trainer.config import TrainConfig
from trainer.metrics import read_metrics


def exact_config(corpus: str, run_dir: str, steps: int, **overrides: Any) -> TrainConfig:
    """The tiny model, 2 workers x 8 rows, fp32 on CPU, a checkpoint every 2 steps: runs that end bit for
    bit equal when they should (resume, FSDP against DDP)."""
    return TrainConfig(**{"corpus_dir": corpus, "run_dir": run_dir, "model": "tiny", "batch_size": 8, "steps": steps,
                          "num_workers": 2, "warmup_steps": 2, "lr": 1e-3, "tokenizer_vocab_size": 400,
                          "checkpoint_every": 2, "log_every": 100, **overrides})


def final_weights(result: dict) -> dict[str, torch.Tensor]:
    """The state dict of the run's last checkpoint."""
    return torch.load(f"{result['checkpoint']}/model.pt", weights_only=True)


def metric_rows(result: dict) -> list[dict]:
    """One dict per optimizer step, from the run's metrics.jsonl."""
    return read_metrics(result["metrics_path"])


def assert_same_run(result: dict, ref: dict, steps: int) -> None:
    """`result` logged steps 1..steps with the data and losses of `ref`, and ends with its weights, bit for bit."""
    rows, ref_rows = metric_rows(result), metric_rows(ref)
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert [(r["first_index"], r["loss"]) for r in rows] == [(r["first_index"], r["loss"]) for r in ref_rows]
    for name, tensor in final_weights(ref).items():
        assert torch.equal(tensor, final_weights(result)[name]), name
