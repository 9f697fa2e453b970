"""`wit eval zeroshot|retrieval|linear-probe`: their options and help, the defaults taken from the eval
configs (trainer/eval/config.py). The handlers are in trainer/eval/commands.py, imported only when one runs."""

from __future__ import annotations

import argparse

from trainer.eval.config import BUNDLED, EmbedConfig, LinearProbeConfig, ZeroShotConfig
from core.commands import command

RAW = argparse.RawDescriptionHelpFormatter

SETS = ("an image-folder tree (<class>/*.jpg|png), a Parquet file/dir (image bytes in jpg|image|image_bytes\n"
        "+ `label`), or CIFAR-10/100 python batches (the folder holding batches.meta or meta)")
EMBED = ("Embeddings are computed with Ray Data (an actor pool, the model loaded once per actor, one GPU\n"
         "per actor when CUDA is present); inputs of at most --local-max-rows rows "
         f"(default {EmbedConfig.local_max_rows}) are\n"
         "embedded in-process, where starting actors would cost more than the work.")
ZEROSHOT = f"""\
Zero-shot classification as in the CLIP paper: each class name goes into every prompt template;
the prompts' normalized embeddings are averaged and renormalized into the class's weight; an
image gets the class of highest cosine similarity. Reports top-1/top-5 next to chance, per class.

Inputs:  --images: {SETS}.
         --classes-json: {{"classes": [...] or {{label: name}}, "templates": ["a photo of a {{}}.", ...]}},
         or a bundled set with the paper's names and prompts: cifar10, cifar100, imagenet.
         Without it: folder/label names, and ten of the paper's ImageNet prompts.
Outputs: a summary line; --out results.json; --markdown [FILE] a Markdown table (stdout without FILE).
--templates both (default) reports the ensemble and the single "a photo of a {{}}." prompt side by side.
{EMBED}

Example:
  wit eval zeroshot --checkpoint run/ --images cifar-10-batches-py --classes-json cifar10 \\
      --out zeroshot.json --markdown
"""
RETRIEVAL = f"""\
Zero-shot image-text retrieval as in the CLIP paper: recall@1/5/10 image->text (one of the image's
own captions in the top K) and text->image (the caption's image in the top K), on a caption set
with several captions per image. Ties count against the model.

Inputs:  --captions: a COCO-style captions.jsonl ({{"file": "images/x.jpg", "caption": "..."}}, files
         relative to the jsonl's folder), a COCO annotations JSON (captions_val2017.json; images
         under --images, default ./images or ../images next to it), or Parquet (image + caption).
Outputs: a summary line; --out results.json; --markdown [FILE]. Unreadable images are skipped with
         their captions and counted.
{EMBED}

Example:
  wit eval retrieval --checkpoint run/ --captions coco_tiny/captions.jsonl --out retrieval.json --markdown
"""
LINEAR_PROBE = f"""\
Linear probe as in the CLIP paper: frozen image features -> multinomial logistic regression by
full-batch L-BFGS; the L2 strength lambda is chosen on a validation split by a parametric binary
search over 1e-6..1e6 (start at every second decade, halve the step around the best until 8 steps
per decade); then refitted on train + validation and scored on --test.

Inputs:  --train and --test: {SETS}
         (CIFAR: the same folder for both; train uses data_batch_*, test uses test_batch).
         --val: a separate validation set; default --val-fraction of train, drawn with --seed.
Outputs: a summary line; --out results.json (with every lambda tried); --markdown [FILE].
{EMBED}

Example:
  wit eval linear-probe --checkpoint run/ --train cifar-10-batches-py --test cifar-10-batches-py \\
      --out probe.json --markdown
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a checkpoint dir (model.pt), or a run dir (uses its latest)")
    p.add_argument("--batch-size", type=int, default=EmbedConfig.batch_size,
                   help="images or texts per model call (default: %(default)s)")
    p.add_argument("--local-max-rows", type=int, default=EmbedConfig.local_max_rows,
                   help="embed in-process up to this many rows, else Ray Data (-1: always Ray Data)")
    p.add_argument("--actors", type=int, default=None, help="Ray Data actor pool size (default: GPUs, or 1)")
    p.add_argument("--out", default=None, help="write the results here as JSON")
    p.add_argument("--markdown", nargs="?", const="-", default=None, metavar="FILE",
                   help="a Markdown table, to FILE or (without FILE) to stdout")


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint: zeroshot, retrieval, linear-probe",
                              description="Evaluate a checkpoint as the CLIP paper did.")
    sub = p.add_subparsers(dest="eval_command", metavar="EVAL", required=True)
    z = sub.add_parser("zeroshot", help="zero-shot classification with prompt ensembling", formatter_class=RAW,
                       description=ZEROSHOT)
    _common(z)
    z.add_argument("--images", required=True, help="the labelled eval set (see above)")
    z.add_argument("--classes-json", default=None, help=f"a JSON file, or {' | '.join(BUNDLED)}")
    # "both" rather than ZeroShotConfig's "ensemble": on the command line the side-by-side report is the point
    z.add_argument("--templates", choices=("ensemble", "single", "both"), default="both")
    z.add_argument("--split", choices=("train", "test"), default=ZeroShotConfig.split, help="CIFAR batches to use")
    z.set_defaults(run=command("trainer.eval.commands", "run_zeroshot"))

    r = sub.add_parser("retrieval", help="image<->text retrieval recall@1/5/10", formatter_class=RAW,
                       description=RETRIEVAL)
    _common(r)
    r.add_argument("--captions", required=True, help="captions.jsonl, a COCO captions_*.json, or *.parquet")
    r.add_argument("--images", default=None, help="the image root the captions file names images under")
    r.set_defaults(run=command("trainer.eval.commands", "run_retrieval"))

    lp = sub.add_parser("linear-probe", help="logistic regression on frozen image features", formatter_class=RAW,
                        description=LINEAR_PROBE)
    _common(lp)
    lp.add_argument("--train", required=True, help="the labelled training set")
    lp.add_argument("--test", required=True, help="the labelled test set (classes of the training set)")
    lp.add_argument("--val", default=None, help="a labelled validation set (default: split from --train)")
    lp.add_argument("--val-fraction", type=float, default=LinearProbeConfig.val_fraction,
                    help="of --train, held out to choose lambda when --val is not given (default: %(default)s)")
    lp.add_argument("--seed", type=int, default=LinearProbeConfig.seed)
    lp.set_defaults(run=command("trainer.eval.commands", "run_linear_probe"))
