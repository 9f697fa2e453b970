"""`wit train`, `wit eval zeroshot`, `wit tokenizer train`, `wit models`: thin layers over trainer/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.eval.cli import register as register_eval
from wit.errors import WitError

RAW = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_plot(subparsers)
    register_eval(subparsers)           # trainer/eval/cli.py: zeroshot, retrieval, linear-probe
    _register_tokenizer(subparsers)
    models = subparsers.add_parser("models", help="list the named CLIP configs and their sizes",
                                   description="The named model configs (trainer/model.py MODELS) with "
                                   "parameter counts (total, vision tower, text tower).")
    models.set_defaults(run=run_models)


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train CLIP on a corpus with Ray Train", formatter_class=RAW,
        description="Train CLIP on a corpus directory (`wit pipeline download` output, *.parquet shards).\n\n"
        "Writes RUN_DIR/checkpoints/latest/ (model.pt with OpenAI parameter names, optimizer, tokenizer),\n"
        "RUN_DIR/metrics.jsonl (one line per step) and RUN_DIR/tokenizer.json (when --tokenizer is not given).\n"
        "Smoke run on a laptop: wit train --corpus DIR --run-dir RUN --model tiny --steps 50",
    )
    p.add_argument("--corpus", required=True, help="corpus dir with *.parquet shards (failures/ is ignored)")
    p.add_argument("--run-dir", required=True, help="where checkpoints, metrics and the tokenizer go")
    p.add_argument("--model", default="tiny", help="a named config (see `wit models`); default tiny")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: --epochs passes)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the corpus when --steps is not given")
    p.add_argument("--batch-size", type=int, default=64, help="per worker; the contrastive batch is x workers")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (DDP or FSDP processes)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (cosine after linear warmup)")
    p.add_argument("--weight-decay", type=float, default=0.2)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 10%% of the steps, at most 2000")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations per block")
    p.add_argument("--state-dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="Adam moments: fp16/bf16 take 12 instead of 16 bytes a parameter in all")
    p.add_argument("--text-dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="store the text encoder's weights (embeddings, blocks, ln_final, text_projection) in this "
                   "dtype, updated in fp32 and stochastically rounded back, as the paper did; DDP only")
    p.add_argument("--parallel", choices=("ddp", "fsdp"), default="ddp",
                   help="ddp: a model replica per worker; fsdp: parameters, gradients and Adam states "
                   "sharded over the workers (FSDP2, for towers that crowd one device; fp32 states and text "
                   "weights, --precision fp32 or bf16)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: on with --gpu, off on CPU)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--data-cpus", type=float, default=None,
                   help="CPUs for Ray Data decoding (default: 1 on CPU runs; on GPU runs what workers leave)")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="default: what --data-cpus leaves")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints; 0 = at the end")
    p.add_argument("--storage-path", default=None, help="checkpoint storage: a dir or URI (default RUN_DIR/ray)")
    p.add_argument("--max-failures", type=int, default=1, help="worker deaths survived by restarting")
    p.add_argument("--spread", action="store_true", help="place the workers on different nodes")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in RUN_DIR from its last checkpoint (same options)")
    p.add_argument("--tokenizer", default=None, help="a tokenizer.json (`wit tokenizer train`, from captions or "
                   "OpenAI's merges); default: train a BPE on the captions")
    p.add_argument("--vocab-size", type=int, default=49_152, help="when training the tokenizer")
    p.set_defaults(run=run_train)


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
    t.add_argument("--vocab-size", type=int, default=49_152)
    t.set_defaults(run=run_tokenizer_train)


def run_train(args) -> int:
    from trainer.fit import TrainConfig, fit

    result = fit(TrainConfig(
        corpus_dir=args.corpus, run_dir=args.run_dir, model=args.model, batch_size=args.batch_size,
        accumulation=args.accumulation, storage_path=args.storage_path, max_failures=args.max_failures,
        placement_strategy="SPREAD" if args.spread else "PACK", steps=args.steps, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps, precision=args.precision, grad_checkpointing=args.grad_checkpointing,
        compile=args.compile, text_dtype=args.text_dtype, parallel=args.parallel, state_dtype=args.state_dtype,
        num_workers=args.workers, use_gpu=args.gpu, data_cpus=args.data_cpus,
        cpus_per_worker=args.cpus_per_worker, seed=args.seed, checkpoint_every=args.checkpoint_every,
        tokenizer_path=args.tokenizer, tokenizer_vocab_size=args.vocab_size), resume=args.resume)
    print(json.dumps(result, indent=2))
    return 0


def _register_plot(subparsers) -> None:
    p = subparsers.add_parser("plot", help="plot a run's loss and throughput to a PNG",
                              description="RUN/metrics.jsonl -> PNG: loss and logit scale, samples/s and "
                              "data-wait fraction per step.")
    p.add_argument("run_dir", metavar="RUN", help="a `wit train` run dir")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/metrics.png)")
    p.set_defaults(run=run_plot)


def run_plot(args) -> int:
    from trainer.metrics import plot

    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0


def run_tokenizer_train(args) -> int:
    from trainer.data import read_captions
    from trainer.tokenizer import load_openai_bpe, train_tokenizer

    if args.openai_merges:
        tokenizer = load_openai_bpe(args.openai_merges)
        print(f"wrote {tokenizer.save(args.out)}: {tokenizer.vocab_size} ids from {args.openai_merges}")
        return 0
    source = Path(args.captions)
    if source.is_dir():
        captions = read_captions(source)
    elif source.is_file():
        captions = source.read_text().splitlines()
    else:
        raise WitError(f"no captions at {source}", hint="a text file (one caption a line) or a corpus dir")
    tokenizer = train_tokenizer(captions, args.vocab_size)
    print(f"wrote {tokenizer.save(args.out)}: {tokenizer.vocab_size} ids from {len(captions)} captions")
    return 0


def run_models(args) -> int:
    import torch

    from trainer.model import MODELS, build_model, count_parameters

    print(f"{'model':<14}{'total':>10}{'vision':>10}{'text':>10}  image  (millions of parameters)")
    for name in MODELS:
        with torch.device("meta"):          # shapes only: no memory, no init time
            model = build_model(name)
        total, vision = count_parameters(model), count_parameters(model.visual)
        print(f"{name:<14}{total / 1e6:>10.2f}{vision / 1e6:>10.2f}{(total - vision) / 1e6:>10.2f}"
              f"  {model.cfg.vision.image_size}")
    return 0
