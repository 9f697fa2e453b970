"""`wit train`, `wit plot`, `wit tokenizer train`, `wit models`: the handlers, imported only when one runs
(the parser in trainer/cli.py stays light: no torch). Each checks its inputs first, then calls trainer/."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainer.checks import check_plot, check_tokenizer, check_train
from trainer.config import TrainConfig
from trainer.data import read_captions
from trainer.fit import fit
from trainer.metrics import plot
from trainer.model import MODELS, build_model, count_parameters
from trainer.tokenizer import load_openai_bpe, train_tokenizer
from core.errors import WitError
from core.options import config_from_args


def run_train(args) -> int:
    cfg = config_from_args(TrainConfig, args, placement_strategy="SPREAD" if args.spread else "PACK")
    check_train(cfg, args.resume)
    print(json.dumps(fit(cfg, resume=args.resume), indent=2))
    return 0


def run_plot(args) -> int:
    check_plot(args.run_dir, args.out)
    print(f"wrote {plot(args.run_dir, args.out)}")
    return 0


def run_tokenizer_train(args) -> int:
    check_tokenizer(args.captions, args.openai_merges, args.out, args.vocab_size)
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
    print(f"{'model':<14}{'total':>10}{'vision':>10}{'text':>10}  image  (millions of parameters)")
    for name in MODELS:
        with torch.device("meta"):          # shapes only: no memory, no init time
            model = build_model(name)
        total, vision = count_parameters(model), count_parameters(model.visual)
        print(f"{name:<14}{total / 1e6:>10.2f}{vision / 1e6:>10.2f}{(total - vision) / 1e6:>10.2f}"
              f"  {model.cfg.vision.image_size}")
    return 0
