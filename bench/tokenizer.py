"""Tokenizer throughput: captions/s on ONE core (RAYON_NUM_THREADS=1), end to end (clean + BPE +
SOS/EOS/padding into int64 [N, 77]). Target >= 50k captions/s per core.

Side by side, in the same process and on the same texts, the reference: the same tokenizer with
`tokenizers` doing SOS/EOS, truncation and padding in Rust (its TemplateProcessing and padding),
which is what `Tokenizer.encode_batch` did before building the rows in numpy.

    python bench/tokenizer.py [--repeat 20]
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"            # before `tokenizers` starts its thread pool

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tokenizers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result                  # noqa: E402
from trainer.tokenizer import clean, train_tokenizer  # noqa: E402

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
    reference = rust_rows(tok, 77)
    figures = {"vocab_size": tok.vocab_size, "threads": 1, "load_avg_at_start": os.getloadavg()}
    for name, texts in (("coco_captions", coco * 20), ("wikitext_sentences", wiki)):
        ours, ref = (lambda: tok.encode_batch(texts)), (lambda: reference(texts))
        assert (ours() == ref()).all(), "encode_batch differs from the Rust-built rows"
        best, best_ref = float("inf"), float("inf")
        for _ in range(args.repeat):        # alternated, so both see the same machine load
            best = min(best, cpu_seconds(ours))
            best_ref = min(best_ref, cpu_seconds(ref))
        figures[f"{name}_per_s"] = round(len(texts) / best)
        figures[f"{name}_n"] = len(texts)
        figures[f"{name}_reference_per_s"] = round(len(texts) / best_ref)
        figures[f"{name}_speedup"] = round(best_ref / best, 2)
    figures["load_avg_at_end"] = os.getloadavg()
    write_result("tokenizer", figures, out_dir=args.out_dir)


def cpu_seconds(fn) -> float:
    t = time.process_time()                 # CPU time: per-core throughput on a shared machine
    fn()
    return time.process_time() - t


def rust_rows(tok, context_length: int):
    """The reference encoder: `tokenizers` builds the whole SOS ... EOS 0 0 row in Rust."""
    bpe = tokenizers.Tokenizer.from_str(tok.bpe.to_str())    # with the SOS $A EOS template
    bpe.enable_truncation(context_length)
    bpe.enable_padding(length=context_length, pad_id=0)

    def encode(texts: list[str]) -> np.ndarray:
        encodings = bpe.encode_batch([clean(str(t)) for t in texts])
        return np.array([e.ids for e in encodings], dtype=np.int64).reshape(-1, context_length)

    return encode


if __name__ == "__main__":
    main()
