"""`wit train`'s Ray path on one GPU: DDP with bf16 text weights vs FSDP2, compiled, ViT-B/32.

    python bench/fit_gpu.py [STEPS]          # OUT=dir for the JSON; CPU_SMOKE=1 runs the tiny model on CPU
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests", "trainer")]
from shapes_corpus import write_corpus  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.fit import fit  # noqa: E402
from trainer.metrics import read_metrics  # noqa: E402

out = Path(os.environ.get("OUT", "bench/results"))
results = {}
with tempfile.TemporaryDirectory() as tmp:
    corpus = write_corpus(Path(tmp) / "corpus", 2048, size=256, shards=8)
    runs = {"ddp_bf16_text": dict(parallel="ddp", text_dtype="bf16"),
            "fsdp": dict(parallel="fsdp")}
    for name, extra in runs.items():
        tick = time.time()
        gpu = os.environ.get("CPU_SMOKE") is None
        cfg = TrainConfig(corpus_dir=str(corpus), run_dir=f"{tmp}/{name}", model="ViT-B/32" if gpu else "tiny",
                          batch_size=512 if gpu else 16,
                          steps=int(sys.argv[1]) if len(sys.argv) > 1 else 24, num_workers=1, use_gpu=gpu,
                          precision="bf16", warmup_steps=2, log_every=1000, tokenizer_vocab_size=49_152, **extra)
        try:
            r = fit(cfg)
            rows = read_metrics(r["metrics_path"])
            results[name] = {k: r.get(k) for k in ("samples_per_s", "mfu", "data_wait_fraction", "steps")}
            results[name].update(first_loss=rows[0]["loss"], last_loss=rows[-1]["loss"], wall_s=time.time() - tick)
        except Exception as e:  # noqa: BLE001 - report and go on to the next configuration
            results[name] = {"error": repr(e)[:2000]}
        print(name, results[name], flush=True)
        (out / "gpu_fit.json").write_text(json.dumps(results, indent=2))
