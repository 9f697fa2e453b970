"""Training memory of ViT-B/32: (a) bytes per parameter held by weights + gradients + optimizer
states, fp32 vs fp16/bf16 Adam states (target <= 12 vs 16); (b) activation memory of one
forward+backward step with vs without gradient checkpointing (target >= 2.5x less).

Activation memory = peak during the step minus what was held before it (weights, zeroed grads,
optimizer states). CPU: peak RSS of a fresh subprocess per setting (VmHWM after resetting it,
glibc told to give big blocks back); GPU: torch.cuda.max_memory_allocated.

    python bench/memory.py                              # CPU, batch 16
    python bench/memory.py --device cuda --batch 256 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result                  # noqa: E402
from trainer.half_adam import state_bytes            # noqa: E402
from trainer.loss import clip_loss                   # noqa: E402
from trainer.model import build_model, count_parameters  # noqa: E402
from trainer.optim import OptimConfig, build_optimizer  # noqa: E402


def _batch(batch, device):
    images = torch.randn(batch, 3, 224, 224, device=device)
    text = torch.randint(0, 49_406, (batch, 77), device=device)
    text[:, 0], text[:, 30], text[:, 31:] = 49_406, 49_407, 0
    return images, text


def _forward_backward(model, images, text, precision, device):
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        img, txt, _ = model(images, text)
    clip_loss(img.float(), txt.float(), model.logit_scale).backward()


def bytes_per_param(state_dtype: str, device) -> float:
    model = build_model("ViT-B/32").to(device)
    opt, _ = build_optimizer(model, OptimConfig(state_dtype=state_dtype))
    _forward_backward(model, *_batch(2, device), "fp32", device)
    opt.step()
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    held += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    return (held + state_bytes(opt)) / count_parameters(model)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def activation_bytes(checkpointing: bool, batch: int, precision: str, device) -> int:
    model = build_model("ViT-B/32", grad_checkpointing=checkpointing).to(device)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    images, text = _batch(batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _forward_backward(model, images, text, precision, device)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    before = _status("VmRSS:")
    Path("/proc/self/clear_refs").write_text("5")     # reset the peak (VmHWM) to the current RSS
    _forward_backward(model, images, text, precision, device)
    return _status("VmHWM:") - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.child:                                      # one measurement in a fresh process
        print(json.dumps(activation_bytes(args.child == "on", args.batch, args.precision, device)))
        return
    figures = {"model": "ViT-B/32", "device": args.device, "batch": args.batch, "precision": args.precision}
    for state_dtype in ("fp32", "fp16", "bf16"):
        figures[f"bytes_per_param_{state_dtype}_states"] = round(bytes_per_param(state_dtype, device), 3)
    for setting in ("off", "on"):
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        cmd = [sys.executable, __file__, "--device", args.device, "--batch", str(args.batch),
               "--precision", args.precision, "--child", setting]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        figures[f"activation_mib_checkpointing_{setting}"] = round(int(out.strip().splitlines()[-1]) / 2 ** 20, 1)
    figures["activation_reduction_x"] = round(figures["activation_mib_checkpointing_off"]
                                              / figures["activation_mib_checkpointing_on"], 2)
    write_result(f"memory_{args.device}", figures, args.device, args.out_dir)


if __name__ == "__main__":
    main()
