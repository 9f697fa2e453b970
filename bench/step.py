"""One CLIP training step, ours vs open_clip's, on the same batch, side by side in one run.

Throughput in samples/s and MFU, as trainer/metrics.py defines it (the one definition: FLOPs counted
from the model config, ViT-B/32: 14.8 forward GFLOPs per sample, x3 for a training step; peak: the
vendor's dense figure on known GPUs, a measured fp32 matmul on CPU). Without open_clip, the reference
is a naive step: our model with the math (non-fused) attention kernel.

    python bench/step.py                                  # CPU, batch 8, fp32
    python bench/step.py --device cuda --batch 256 --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result                    # noqa: E402
from trainer.loss import clip_loss                     # noqa: E402
from trainer.metrics import mfu, peak_flops             # noqa: E402
from trainer.model import build_model                  # noqa: E402
from trainer.optim import OptimConfig, build_optimizer  # noqa: E402

OPEN_CLIP_NAMES = {"ViT-B/32": "ViT-B-32-quickgelu", "ViT-B/16": "ViT-B-16-quickgelu", "ViT-L/14": "ViT-L-14-quickgelu"}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(model, optimizer, precision, device, math_attention=False):
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step(images, text):
        ctx = torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH) if math_attention else _null()
        with ctx, torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            img, txt, _ = model(images, text)
        loss = clip_loss(img.float(), txt.float(), model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def contenders(args, device):
    ours = build_model(args.model).to(device)
    out = {"ours": make_step(ours, build_optimizer(ours, OptimConfig(state_dtype=args.state_dtype))[0],
                             args.precision, device)}
    try:
        import open_clip
        ref = open_clip.create_model(OPEN_CLIP_NAMES[args.model], pretrained=None).to(device)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
        out["open_clip"] = make_step(ref, ref_opt, args.precision, device)
    except ImportError as e:
        print(f"open_clip unavailable ({e}); reference = our model with math attention, fp32 states")
        naive = build_model(args.model).to(device)
        out["naive_math_attention"] = make_step(naive, build_optimizer(naive, OptimConfig())[0],
                                                args.precision, device, math_attention=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B/32", choices=sorted(OPEN_CLIP_NAMES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--state-dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, 224, 224, device=device)
    text = torch.randint(0, 49_406, (args.batch, 77), device=device)
    text[:, 0], text[:, 30], text[:, 31:] = 49_406, 49_407, 0
    steps = contenders(args, device)
    for step in steps.values():                       # warm-up: allocator, kernels, optimizer state
        for _ in range(2):
            step(images, text)
    sync(device)
    rates = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step(images, text)
            sync(device)
            rates[name].append(args.batch * args.steps / (time.perf_counter() - t))
    peak = peak_flops(device, args.precision)
    figures = {"model": args.model, "device": args.device, "batch": args.batch, "precision": args.precision,
               "state_dtype": args.state_dtype, "peak_tflops": round(peak / 1e12, 1)}
    for name, r in rates.items():
        sps = statistics.median(r)
        figures[f"{name}_samples_per_s"] = round(sps, 2)
        figures[f"{name}_mfu"] = round(mfu(args.model, None, sps, peak), 4)
    ref = [n for n in rates if n != "ours"][0]
    figures["reference"] = ref
    figures["speedup_vs_reference"] = round(figures["ours_samples_per_s"] / figures[f"{ref}_samples_per_s"], 3)
    write_result(f"step_{args.device}", figures, args.device, args.out_dir)


if __name__ == "__main__":
    main()
