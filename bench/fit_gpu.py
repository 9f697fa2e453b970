"""`wit train`'s Ray path on one GPU: DDP with bf16 text weights vs FSDP2, compiled, ViT-B/32.

Through trainer.fit.fit (1 Ray Train GPU worker) on a 2,048-row generated shapes corpus of 256 px
JPEGs, batch 512, bf16 autocast; writes bench/results/<--name>.json (default fit_gpu) with each
configuration's samples/s, MFU, data-wait share and first/last loss.

    python bench/fit_gpu.py [--steps 24] [--name fit_gpu_h200] [--out-dir DIR] [--cpu-smoke]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.common import write_result  # noqa: E402
from bench.shapes_corpus import write_corpus  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.fit import fit  # noqa: E402
from trainer.metrics import read_metrics  # noqa: E402

RUNS = {"ddp_bf16_text": {"parallel": "ddp", "text_dtype": "bf16"}, "fsdp": {"parallel": "fsdp"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--name", default="fit_gpu", help="results file name (e.g. fit_gpu_h200 for an H200)")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--cpu-smoke", action="store_true", help="the tiny model on CPU: checks the script, not a GPU")
    args = ap.parse_args()
    gpu = not args.cpu_smoke
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", 2048, size=256, shards=8)
        for name, extra in RUNS.items():
            tick = time.time()
            cfg = TrainConfig(corpus_dir=str(corpus), run_dir=f"{tmp}/{name}", model="ViT-B/32" if gpu else "tiny",
                              batch_size=512 if gpu else 16, steps=args.steps, num_workers=1, use_gpu=gpu,
                              precision="bf16", warmup_steps=2, log_every=1000, tokenizer_vocab_size=49_152, **extra)
            try:
                r = fit(cfg)
                rows = read_metrics(r["metrics_path"])
                results[name] = {k: r.get(k) for k in ("samples_per_s", "mfu", "data_wait_fraction", "steps")}
                results[name].update(first_loss=rows[0]["loss"], last_loss=rows[-1]["loss"], wall_s=time.time() - tick)
            except Exception as e:  # noqa: BLE001 - report and go on to the next configuration
                results[name] = {"error": repr(e)[:2000]}
            print(name, results[name], flush=True)
    write_result(args.name, results, device="cuda" if gpu else "cpu", out_dir=args.out_dir)


if __name__ == "__main__":
    main()
