"""`wit train`, `wit plot`, `wit eval ...`, `wit tokenizer train`, `wit models`: their options and help.
The handlers are in trainer/commands.py (eval's in trainer/eval/commands.py), imported only when one runs."""

from __future__ import annotations

import argparse

from trainer.eval.cli import register as register_eval
from trainer.config import PARALLEL, PRECISIONS, STATE_DTYPE_NAMES, WEIGHT_DTYPE_NAMES, TrainConfig
from core.commands import command
from core.options import Option, add_config_options

RAW = argparse.RawDescriptionHelpFormatter

# `wit train`'s options: one per TrainConfig field, its type and default from the field
# (core.options), so a default lives only in TrainConfig. TRAIN_FIXED fields keep their default.
TRAIN_FIXED = frozenset({"betas", "eps",              # the paper's Adam constants
                         "log_every",                   # reporting cadence
                         "placement_strategy"})        # set by --spread
TRAIN_OPTIONS = {
    "corpus_dir": Option("corpus dir with *.parquet shards (failures/ is ignored)", flag="--corpus"),
    "run_dir": Option("where checkpoints, metrics and the tokenizer go"),
    "model": Option("a named config (see `wit models`)"),
    "steps": Option("optimizer steps (default: --epochs passes)", minimum=1),
    "epochs": Option("passes over the corpus when --steps is not given", minimum=1),
    "batch_size": Option("per worker; the contrastive batch is x workers", minimum=2),
    "accumulation": Option("micro-batches per optimizer step", minimum=1),
    "num_workers": Option("Ray Train workers (DDP or FSDP processes)", flag="--workers", minimum=1),
    "lr": Option("peak learning rate (cosine after linear warmup)", minimum=0),
    "weight_decay": Option("AdamW's decoupled weight decay (weights only)", minimum=0),
    "warmup_steps": Option("default: 10%% of the steps, at most 2000", minimum=0),
    "precision": Option("autocast dtype; fp16 adds a GradScaler", choices=PRECISIONS),
    "grad_checkpointing": Option("recompute activations per block"),
    "state_dtype": Option("Adam moments: fp16/bf16 take 12 instead of 16 bytes a parameter in all",
                          choices=STATE_DTYPE_NAMES),
    "text_dtype": Option("store the text encoder's weights (embeddings, blocks, ln_final, text_projection) in "
                         "this dtype, updated in fp32 and stochastically rounded back, as the paper did; DDP only",
                         choices=WEIGHT_DTYPE_NAMES),
    "parallel": Option("ddp: a model replica per worker; fsdp: parameters, gradients and Adam states sharded over "
                       "the workers (FSDP2, for towers that crowd one device; fp32 states and text weights, "
                       "--precision fp32 or bf16)", choices=PARALLEL),
    "compile": Option("torch.compile the model (default: on with --gpu, off on CPU)"),
    "gpu_decode": Option("decode, crop and resize JPEGs on the worker's GPU (nvjpeg; default: on with --gpu)"),
    "use_gpu": Option("one GPU per worker", flag="--gpu"),
    "data_cpus": Option("CPUs for Ray Data decoding (default: 1 on CPU runs; on GPU runs what workers leave)",
                        minimum=0),
    "cpus_per_worker": Option("default: what --data-cpus leaves", minimum=0),
    "seed": Option("seed of the model init and the data order", minimum=0),
    "checkpoint_every": Option("steps between checkpoints; 0 = at the end", minimum=0),
    "storage_path": Option("checkpoint storage: a dir or URI (default RUN_DIR/ray)"),
    "max_failures": Option("worker deaths survived by restarting", minimum=0),
    "tokenizer_path": Option("a tokenizer.json (`wit tokenizer train`, from captions or OpenAI's merges); "
                             "default: train a BPE on the captions", flag="--tokenizer"),
    "tokenizer_vocab_size": Option("when training the tokenizer", flag="--vocab-size", minimum=258),
}


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_plot(subparsers)
    register_eval(subparsers)           # trainer/eval/cli.py: zeroshot, retrieval, linear-probe
    _register_tokenizer(subparsers)
    models = subparsers.add_parser("models", help="list the named CLIP configs and their sizes",
                                   description="The named model configs (trainer/model.py MODELS) with "
                                   "parameter counts (total, vision tower, text tower).")
    models.set_defaults(run=command("trainer.commands", "run_models"))


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train CLIP on a corpus with Ray Train", formatter_class=RAW,
        description="Train CLIP on a corpus directory (`wit pipeline download` output, *.parquet shards).\n\n"
        "Writes RUN_DIR/checkpoints/latest/ (model.pt with OpenAI parameter names, optimizer, tokenizer),\n"
        "RUN_DIR/metrics.jsonl (one line per step) and RUN_DIR/tokenizer.json (when --tokenizer is not given).\n"
        "Smoke run on a laptop: wit train --corpus DIR --run-dir RUN --model tiny --steps 50",
    )
    add_config_options(p, TrainConfig, TRAIN_OPTIONS, skip=TRAIN_FIXED)
    p.add_argument("--spread", action="store_true", help="place the workers on different nodes")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in RUN_DIR from its last checkpoint (same options)")
    p.set_defaults(run=command("trainer.commands", "run_train"))


def _register_tokenizer(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train the byte-level BPE tokenizer")
    sub = p.add_subparsers(dest="tokenizer_command", metavar="TOKENIZER", required=True)
    t = sub.add_parser("train", help="learn a lowercased byte-level BPE from captions, or load OpenAI's",
                       description="Learn a BPE from a text file (one caption per line) or a corpus dir, or "
                       "build OpenAI CLIP's tokenizer from its merges file; write a tokenizer.json for "
                       "`wit train --tokenizer`.")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--captions", help="a text file, one caption per line, or a corpus dir")
    source.add_argument("--openai-merges", metavar="FILE",
                        help="an OpenAI-format merges file (bpe_simple_vocab_16e6.txt[.gz]): OpenAI's ids, "
                        "49,408 with the full file; --vocab-size does not apply")
    t.add_argument("--out", required=True, help="tokenizer.json to write")
    t.add_argument("--vocab-size", type=int, default=TrainConfig.tokenizer_vocab_size,
                   help="ids in the learned BPE (default: %(default)s)")
    t.set_defaults(run=command("trainer.commands", "run_tokenizer_train"))


def _register_plot(subparsers) -> None:
    p = subparsers.add_parser("plot", help="plot a run's loss and throughput to a PNG",
                              description="RUN/metrics.jsonl -> PNG: loss and logit scale, samples/s and "
                              "data-wait fraction per step.")
    p.add_argument("run_dir", metavar="RUN", help="a `wit train` run dir")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/metrics.png)")
    p.set_defaults(run=command("trainer.commands", "run_plot"))
