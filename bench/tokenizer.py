"""Tokenizer throughput: captions/s on ONE core (RAYON_NUM_THREADS=1), end to end (clean + BPE +
SOS/EOS/padding into int64 [N, 77]). Target >= 50k captions/s per core.

    python bench/tokenizer.py [--repeat 20]
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"            # before `tokenizers` starts its thread pool

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result                  # noqa: E402
from trainer.tokenizer import train_tokenizer        # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--vocab-size", type=int, default=49_152)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    wiki = (DATA / "wikitext_sentences.txt").read_text().splitlines()
    coco = (DATA / "coco_captions.txt").read_text().splitlines()
    tok = train_tokenizer(wiki + coco, args.vocab_size)
    figures = {"vocab_size": tok.vocab_size, "threads": 1}
    for name, texts in (("coco_captions", coco * 20), ("wikitext_sentences", wiki)):
        tok.encode_batch(texts[:1000])
        best = float("inf")
        for _ in range(args.repeat):
            t = time.process_time()         # CPU time: per-core throughput on a shared machine
            tok.encode_batch(texts)
            best = min(best, time.process_time() - t)
        figures[f"{name}_per_s"] = round(len(texts) / best)
        figures[f"{name}_n"] = len(texts)
    write_result("tokenizer", figures, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
