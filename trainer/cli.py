"""`wit train`, `wit eval zeroshot`, `wit tokenizer train`, `wit models`: thin layers over trainer/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wit.errors import WitError

RAW = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)
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
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (DDP processes)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (cosine after linear warmup)")
    p.add_argument("--weight-decay", type=float, default=0.2)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: 10%% of the steps, at most 2000")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations per block")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--data-cpus", type=float, default=None,
                   help="CPUs for Ray Data decoding (default: 1 on CPU runs; on GPU runs what workers leave)")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="default: what --data-cpus leaves")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints; 0 = at the end")
    p.add_argument("--tokenizer", default=None, help="a tokenizer.json; default: train a BPE on the captions")
    p.add_argument("--vocab-size", type=int, default=49_152, help="when training the tokenizer")
    p.set_defaults(run=run_train)


def _register_eval(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint (zeroshot)")
    sub = p.add_subparsers(dest="eval_command", metavar="EVAL", required=True)
    z = sub.add_parser(
        "zeroshot", help="zero-shot classification of an image-folder tree", formatter_class=RAW,
        description="Classify IMAGES/<class>/*.jpg|png by prompting with the class names, and report\n"
        "top-1/top-5 accuracy next to chance. Class names default to the folder names; templates to ten\n"
        "of the paper's ImageNet prompts (--templates single: 'a photo of a {}.').",
    )
    z.add_argument("--checkpoint", required=True, help="a checkpoint dir, or a run dir (uses its latest)")
    z.add_argument("--images", required=True, help="image-folder tree: <class>/*.jpg|png")
    z.add_argument("--classes-json", default=None,
                   help='{"classes": [...] or {folder: name}, "templates": ["a photo of a {}.", ...]}')
    z.add_argument("--templates", choices=("ensemble", "single"), default="ensemble")
    z.add_argument("--batch-size", type=int, default=64)
    z.add_argument("--out", default=None, help="write the results here as JSON")
    z.set_defaults(run=run_zeroshot)


def _register_tokenizer(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train the byte-level BPE tokenizer")
    sub = p.add_subparsers(dest="tokenizer_command", metavar="TOKENIZER", required=True)
    t = sub.add_parser("train", help="learn a lowercased byte-level BPE from captions",
                       description="Learn a BPE from a text file (one caption per line) or a corpus dir.")
    t.add_argument("--captions", required=True, help="a text file, one caption per line, or a corpus dir")
    t.add_argument("--out", required=True, help="tokenizer.json to write")
    t.add_argument("--vocab-size", type=int, default=49_152)
    t.set_defaults(run=run_tokenizer_train)


def run_train(args) -> int:
    from trainer.fit import TrainConfig, fit

    result = fit(TrainConfig(
        corpus_dir=args.corpus, run_dir=args.run_dir, model=args.model, batch_size=args.batch_size,
        steps=args.steps, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps, precision=args.precision, grad_checkpointing=args.grad_checkpointing,
        num_workers=args.workers, use_gpu=args.gpu, data_cpus=args.data_cpus,
        cpus_per_worker=args.cpus_per_worker, seed=args.seed, checkpoint_every=args.checkpoint_every,
        tokenizer_path=args.tokenizer, tokenizer_vocab_size=args.vocab_size))
    print(json.dumps(result, indent=2))
    return 0


def run_zeroshot(args) -> int:
    from trainer.eval.zeroshot import ZeroShotConfig, zeroshot
    from wit.artifacts import write_json

    result = zeroshot(ZeroShotConfig(args.checkpoint, args.images, args.classes_json, args.batch_size,
                                     args.templates))
    print(f"zero-shot on {result['n']} images, {result['num_classes']} classes: "
          f"top-1 {result['top1']:.1%}  top-5 {result['top5']:.1%}  (chance {result['chance']:.1%})"
          + (f"; {result['skipped']} unreadable images skipped" if result["skipped"] else ""))
    if args.out:
        write_json(result, args.out)
    return 0


def run_tokenizer_train(args) -> int:
    from trainer.data import read_captions
    from trainer.tokenizer import train_tokenizer

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
