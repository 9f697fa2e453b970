import argparse
import json

import pytest

from trainer.cli import register
from trainer.metrics import forward_flops, summarize


def test_forward_flops_match_the_reference_figures():
    """DESIGN.md's reference: ViT-B/32 14.8, B/16 41.1 forward GFLOPs per sample."""
    assert forward_flops("ViT-B/32") / 1e9 == pytest.approx(14.8, abs=0.05)
    assert forward_flops("ViT-B/16") / 1e9 == pytest.approx(41.1, abs=0.05)


def _rows(n):
    return [{"step": s, "loss": 3 - s / n, "lr": 1e-3, "logit_scale": 14.3, "step_time_s": 0.5,
             "data_wait_s": 0.1 if s > 1 else 0.5, "samples_per_s": 64.0, "mfu": 0.1, "skipped_images": 2,
             "first_index": s} for s in range(1, n + 1)]


def test_summary_leaves_out_the_first_step():
    summary = summarize(_rows(20))
    assert summary["steps"] == 20 and summary["data_wait_fraction"] == pytest.approx(0.2)
    assert summary["skipped_images"] == 2 and summary["loss_last"] < summary["loss_first"]


def test_cli_plot_writes_a_png(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(30)))
    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["plot", str(tmp_path)])
    assert args.run(args) == 0
    png = (tmp_path / "metrics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
