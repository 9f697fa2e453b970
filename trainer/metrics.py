"""What a training run reports: FLOPs and MFU from the model config, the metrics files, a progress
bar on the driver, and `wit plot` (loss and throughput as a PNG).

MFU = achieved model FLOP/s / the device's peak. Model FLOPs are counted, not timed: the forward
FLOPs of one sample (matmuls and convolutions, 2 per multiply-add, counted once on the meta
device, so no memory and no compute) times 3 for forward + backward (x4 with gradient
checkpointing, which recomputes the forward; MFU keeps 3: recomputation is not useful work).
"""

from __future__ import annotations

import csv
import functools
import json
import threading
import time
from pathlib import Path

import torch

from trainer.model import build_model
from core import storage
from core.errors import WitError

METRICS_FILE = "metrics.jsonl"

# Dense peak TFLOP/s per GPU (vendor figures, no sparsity) for bf16/fp16 and for plain fp32.
GPU_PEAK_TFLOPS = {"H100": (989.0, 67.0), "H200": (989.0, 67.0), "A100": (312.0, 19.5),
                   "L4": (121.0, 30.3), "A10": (125.0, 31.2), "V100": (125.0, 15.7)}


@functools.lru_cache(maxsize=16)
def forward_flops(model: str, vocab_size: int | None = None) -> float:
    """Forward FLOPs of one (image, caption) pair for a named config: ViT-B/32 = 14.8e9."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        clip = build_model(model, vocab_size)
        size = clip.cfg.vision.image_size
        images, text = torch.empty(1, 3, size, size), torch.zeros(1, clip.cfg.text.context_length, dtype=torch.long)
        with FlopCounterMode(display=False) as counter:
            clip(images, text)
    return float(counter.get_total_flops())


def peak_flops(device: torch.device, precision: str) -> float:
    """The device's peak FLOP/s: the vendor's dense figure for known GPUs; on CPU (or an unknown GPU)
    the rate of a large fp32 matmul measured here, which makes CPU MFU "fraction of matmul speed"."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for gpu, (half, full) in GPU_PEAK_TFLOPS.items():
            if gpu in name:
                return (full if precision == "fp32" else half) * 1e12
    n = 1024
    a = torch.randn(n, n, device=device)
    a @ a
    tick = time.perf_counter()
    for _ in range(4):
        a @ a
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 4 * 2 * n ** 3 / (time.perf_counter() - tick)


def train_flops(model: str, vocab_size: int | None, samples: int) -> float:
    """Model FLOPs of a training step over `samples` pairs: forward + backward = 3 x forward (activation
    recomputation under gradient checkpointing is not counted: it is not useful work)."""
    return 3 * forward_flops(model, vocab_size) * samples


def mfu(model: str, vocab_size: int | None, samples_per_s: float, peak: float) -> float:
    """The one MFU definition (trainer and bench): useful model FLOP/s over the peak FLOP/s."""
    return train_flops(model, vocab_size, 1) * samples_per_s / peak


def metrics_text(rows: list[dict]) -> str:
    """metrics.jsonl's content: one JSON object per optimizer step."""
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_metrics(rows: list[dict], run_dir: Path) -> tuple[Path, Path]:
    """metrics.jsonl and metrics.csv (same rows) in the run dir."""
    jsonl, table = run_dir / METRICS_FILE, run_dir / "metrics.csv"
    jsonl.write_text(metrics_text(rows))
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    return jsonl, table


def read_metrics(where: str | Path) -> list[dict]:
    """The rows of a metrics.jsonl: `where` is the file, or a run or checkpoint dir holding one; a local
    path or a bucket URI. Nothing there: []. A line still being written (the live file) is left out."""
    path = where if str(where).endswith(".jsonl") else storage.join(where, METRICS_FILE)
    if not storage.is_file(path):
        return []
    rows = []
    for line in filter(str.strip, storage.read_text(path).splitlines()):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break                         # the live file's last line, half written: the rows before are whole
    return rows


def summarize(rows: list[dict]) -> dict:
    """Run-level figures: losses, and throughput means that leave out the first step (start-up)."""
    steady = rows[1:] or rows
    mean = lambda key: sum(r[key] for r in steady) / len(steady)          # noqa: E731
    return {"steps": len(rows), "loss_first": rows[0]["loss"],
            "loss_last": sum(r["loss"] for r in rows[-10:]) / len(rows[-10:]),    # mean of the last 10
            "samples_per_s": mean("samples_per_s"), "mfu": mean("mfu"),
            "data_wait_fraction": sum(r["data_wait_s"] for r in steady) / sum(r["step_time_s"] for r in steady),
            "skipped_images": rows[-1]["skipped_images"]}


class Progress(threading.Thread):
    """A progress bar on the driver, fed by rank 0's live metrics.jsonl (the driver is blocked in fit)."""

    def __init__(self, path: Path, total: int, start: int = 0):
        super().__init__(daemon=True)
        self.path, self.total, self.start_step, self.done = path, total, start, threading.Event()

    def run(self) -> None:
        from tqdm import tqdm

        with tqdm(total=self.total, initial=self.start_step, desc="train", unit="step", dynamic_ncols=True) as bar:
            while not self.done.wait(1.0):
                rows = read_metrics(self.path)
                if rows and rows[-1]["step"] != bar.n:
                    bar.n = rows[-1]["step"]
                    bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}", sps=f"{rows[-1]['samples_per_s']:.0f}",
                                    wait=f"{rows[-1]['data_wait_s'] / rows[-1]['step_time_s']:.0%}")
                    bar.refresh()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def plot(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """RUN/metrics.jsonl -> a PNG: loss (and logit scale) and throughput (samples/s, data wait) per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise WitError(f"no metrics.jsonl in {run_dir}", hint="pass a `wit train` run dir")
    out = Path(out) if out else Path(run_dir) / "metrics.png"
    steps = [r["step"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(steps, [r["loss"] for r in rows], label="loss")
    top.set_ylabel("contrastive loss")
    scale = top.twinx()
    scale.plot(steps, [r["logit_scale"] for r in rows], color="gray", linestyle=":", label="logit scale")
    scale.set_ylabel("logit scale")
    top.set_title(f"{Path(run_dir).name}: {len(rows)} steps")
    bottom.plot(steps, [r["samples_per_s"] for r in rows], label="samples/s")
    bottom.set_ylabel("samples/s")
    bottom.set_xlabel("step")
    wait = bottom.twinx()
    wait.plot(steps, [r["data_wait_s"] / r["step_time_s"] for r in rows], color="tab:red", alpha=0.6)
    wait.set_ylabel("data-wait fraction", color="tab:red")
    wait.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
