"""Reading a finished `fit` result back, for tests that compare runs."""

from __future__ import annotations

import json

import torch


def final_weights(result: dict) -> dict[str, torch.Tensor]:
    """The state dict of the run's last checkpoint."""
    return torch.load(f"{result['checkpoint']}/model.pt", weights_only=True)


def metric_rows(result: dict) -> list[dict]:
    """One dict per optimizer step, from the run's metrics.jsonl."""
    return [json.loads(line) for line in open(result["metrics_path"])]
