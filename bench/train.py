"""Training throughput and MFU: one train step on in-memory data vs `wit train` fed by Ray Data.

    python bench/train.py [--model ViT-B/32] [--batch 8] [--steps 6] [--out bench/results/train.json]
    python bench/train.py --gpu --no-ray --vocab 49152 --batch 256 --steps 30 --precision bf16 --compile  # one GPU
    python bench/train.py --gpu --paths synthetic --text-dtype bf16 --state-dtype bf16   # fused half update
    python bench/train.py --gpu --paths synthetic --model ViT-L/14 --grad-checkpointing --state-dtype fp16 \
        --precision bf16 --batch 128                                      # ViT-L/14 with checkpointing
    python bench/train.py --gpu --paths decode,gpu_decode --batch 256     # JPEG decode: CPU pool vs the GPU

Paths:
  synthetic   trainer.fit.train_step on random uint8 images and token ids already on the device:
              the model's ceiling on this machine (no data stage, no DDP, no Ray)
  decode      trainer.data.step_batch (JPEG decode, random square crop, resize, tokenize) in a pool of
              processes, one per core left: images/s the CPUs of this machine can feed
  gpu_decode  the same steps with decoding on the device: the data stage's share (header, crop box,
              tokenize) in the same pool, and trainer.data.device_images (nvJPEG batch decode, crop,
              resize) on the device; with --gpu only (on CPU it times torchvision's CPU decode)
  ray         trainer.fit.fit with 1 worker on a generated JPEG corpus (Ray Data ingest): samples/s,
              MFU and the data-wait fraction (time in next(batch) / step time), first step left out
              (--no-ray skips it; Ray need not be installed for the other two)

MFU: trainer/metrics.py mfu (3 x forward FLOPs per sample counted from the config x samples/s / peak;
peak: vendor dense bf16/fp32 figure for known GPUs, a measured fp32 1024^3 matmul rate on CPU).
--text-dtype/--state-dtype time the half text weights and half Adam states (HalfStateAdamW's multi-
tensor step); --grad-checkpointing recomputes activations (ViT-L/14 on one GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from trainer.data import corpus_parts, device_images, read_captions, step_batch  # noqa: E402
from trainer.fit import _autocast_and_scaler, train_step  # noqa: E402
from trainer.metrics import mfu, peak_flops  # noqa: E402
from trainer.model import build_model, model_config  # noqa: E402
from trainer.optim import OptimConfig, build_optimizer, store_text_tower  # noqa: E402
from trainer.tokenizer import train_tokenizer  # noqa: E402
from core.artifacts import versions  # noqa: E402

VOCAB = 49_152


def synthetic(model_name: str, batch: int, steps: int, precision: str, device: torch.device,
              compile_model: bool, vocab: int = VOCAB, text_dtype: str = "fp32", state_dtype: str = "fp32",
              grad_checkpointing: bool = False) -> dict:
    """`vocab`: the tokenizer's, as in the Ray path (the token embedding's AdamW update is not free on CPU)."""
    torch.manual_seed(0)
    model = build_model(model_name, vocab, grad_checkpointing).to(device)
    store_text_tower(model, text_dtype)
    optimizer, scheduler = build_optimizer(model, OptimConfig(warmup_steps=10, total_steps=10_000,
                                                              state_dtype=state_dtype))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast, scaler = _autocast_and_scaler(precision, device)
    step_model = torch.compile(model) if compile_model else model
    size = model.cfg.vision.image_size
    text = torch.randint(1, vocab - 1, (batch, 77), device=device)
    text[:, 20] = vocab - 1                                             # <end_of_text>
    data = {"image": torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=device), "text": text}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warmup = 5 if compile_model else 3 if device.type == "cuda" else 1
    for _ in range(warmup):
        train_step(step_model, model, data, optimizer, scheduler, scaler, autocast, 0, 1)
    sync()
    tick = time.perf_counter()
    for _ in range(steps):
        train_step(step_model, model, data, optimizer, scheduler, scaler, autocast, 0, 1)
    sync()
    seconds = (time.perf_counter() - tick) / steps
    peak = peak_flops(device, precision)
    return {"samples_per_s": batch / seconds, "step_s": seconds, "mfu": mfu(model_name, vocab, batch / seconds, peak),
            "peak_tflops": peak / 1e12, "text_dtype": text_dtype, "state_dtype": state_dtype,
            "grad_checkpointing": grad_checkpointing,
            "memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def _decode(args) -> float:
    step, kwargs = args
    tick = time.perf_counter()
    step_batch(step, **kwargs)
    return time.perf_counter() - tick


def decode(corpus: Path, tokenizer: str, image_size: int, batch: int, processes: int, on_device: bool = False) -> dict:
    kwargs = {"shards": corpus_parts(corpus), "batch_size": batch, "world": 1, "rank": 0, "seed": 0,
              "tokenizer": tokenizer, "image_size": image_size, "on_device": on_device}
    steps = max(2 * processes, 4)
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_decode, [(s, kwargs) for s in range(processes)]))   # warm: imports, shard cache
        tick = time.perf_counter()
        list(pool.map(_decode, [(s, kwargs) for s in range(steps)]))
    seconds = time.perf_counter() - tick
    return {"images_per_s": steps * batch / seconds, "processes": processes,
            "images_per_s_per_process": steps * batch / seconds / processes}


def gpu_decode(corpus: Path, tokenizer: str, image_size: int, batch: int, processes: int, device: torch.device,
               steps: int) -> dict:
    """Decode on the device: the data stage's remaining CPU share, and the device's own rate."""
    stage = decode(corpus, tokenizer, image_size, batch, processes, on_device=True)
    kwargs = {"shards": corpus_parts(corpus), "batch_size": batch, "world": 1, "rank": 0, "seed": 0,
              "tokenizer": tokenizer, "image_size": image_size, "on_device": True}
    raws = [step_batch(s, **kwargs) for s in range(max(2, steps))]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    device_images(raws[0]["jpg"], raws[0]["box"], image_size, device)          # warm: nvJPEG handles
    sync()
    tick = time.perf_counter()
    for raw in raws:
        device_images(raw["jpg"], raw["box"], image_size, device)
    sync()
    seconds = time.perf_counter() - tick
    return {"stage_images_per_s": stage["images_per_s"], "processes": processes, "device": str(device),
            "device_images_per_s": len(raws) * batch / seconds}


def ray_fit(corpus: Path, tokenizer: str, model_name: str, batch: int, steps: int, precision: str,
            gpu: bool, run_dir: Path, gpu_decode: bool | None = None) -> dict:
    from trainer.config import TrainConfig
    from trainer.fit import fit

    cfg = TrainConfig(corpus_dir=str(corpus), run_dir=str(run_dir), model=model_name, batch_size=batch, steps=steps,
                      num_workers=1, use_gpu=gpu, precision=precision, tokenizer_path=tokenizer, log_every=1000,
                      warmup_steps=1, gpu_decode=gpu_decode)
    result = fit(cfg)
    return {k: result[k] for k in ("samples_per_s", "mfu", "data_wait_fraction", "steps")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B/32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model) (synthetic)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data path")
    parser.add_argument("--paths", default="synthetic,decode,ray",
                        help="comma-separated subset of synthetic,decode,gpu_decode,ray (--no-ray drops ray)")
    parser.add_argument("--text-dtype", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="synthetic: text tower weights (half: stochastically rounded, fused update)")
    parser.add_argument("--state-dtype", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="synthetic: Adam moments")
    parser.add_argument("--grad-checkpointing", action="store_true", help="synthetic: recompute activations")
    parser.add_argument("--gpu-decode", action="store_true", help="ray path: decode JPEGs on the GPU")
    parser.add_argument("--corpus-rows", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=None,
                        help="synthetic path's vocabulary (default: the bench tokenizer's, as the Ray path; "
                        "49152 for a real run's token embedding)")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    device = torch.device("cuda" if args.gpu else "cpu")

    from bench.shapes_corpus import write_corpus

    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", args.corpus_rows, size=320, shards=4)  # 320x320 JPEGs
        bpe = train_tokenizer(read_captions(corpus), VOCAB)
        tokenizer = str(bpe.save(Path(tmp) / "tokenizer.json"))
        paths = set(args.paths.split(",")) - ({"ray"} if args.no_ray else set())
        for name, compiled in ([("synthetic", False)] + [("synthetic_compiled", True)] * args.compile) * (
                "synthetic" in paths):
            figures[name] = synthetic(args.model, args.batch, args.steps, args.precision, device, compiled,
                                      args.vocab or bpe.vocab_size, args.text_dtype, args.state_dtype,
                                      args.grad_checkpointing)
            print(name, figures[name], flush=True)
        image_size = model_config(args.model).vision.image_size
        if "decode" in paths:
            figures["decode"] = decode(corpus, tokenizer, image_size, args.batch, max(1, (os.cpu_count() or 2) - 1))
            print("decode", figures["decode"], flush=True)
        if "gpu_decode" in paths:
            figures["gpu_decode"] = gpu_decode(corpus, tokenizer, image_size, args.batch,
                                               max(1, (os.cpu_count() or 2) - 1), device, args.steps)
            print("gpu_decode", figures["gpu_decode"], flush=True)
        if "ray" in paths:
            figures["ray"] = ray_fit(corpus, tokenizer, args.model, args.batch, args.steps, args.precision,
                                     args.gpu, Path(tmp) / "run", args.gpu_decode or None)
            print("ray", figures["ray"], flush=True)
    fastest = max((figures[k]["samples_per_s"] for k in ("synthetic", "synthetic_compiled") if k in figures),
                  default=None)
    if "decode" in figures and fastest:
        figures["decode_feeds_synthetic"] = figures["decode"]["images_per_s"] / fastest

    record = {"bench": "train", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": "python " + " ".join(sys.argv), "model": args.model, "batch": args.batch,
              "steps": args.steps, "precision": args.precision, "text_dtype": args.text_dtype,
              "state_dtype": args.state_dtype, "grad_checkpointing": args.grad_checkpointing,
              "gpu_decode": args.gpu_decode,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "device": torch.cuda.get_device_name() if args.gpu else platform.processor() or "cpu"},
              "versions": versions(), "figures": figures}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    runs = previous.get("runs", [])
    setting = ("model", "batch", "precision", "text_dtype", "state_dtype", "grad_checkpointing", "gpu_decode")
    same = lambda r: [r.get("machine", {}).get("device")] + [r.get(k) for k in setting] == [  # noqa: E731
        record["machine"]["device"]] + [record[k] for k in setting]
    runs = [r for r in runs if not same(r)] + [record]                  # one record per device x setting
    out.write_text(json.dumps({**previous, "runs": runs}, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
