"""`wit eval zeroshot|retrieval|linear-probe`: thin layers over trainer.eval."""

from __future__ import annotations

import argparse

RAW = argparse.RawDescriptionHelpFormatter

SETS = ("an image-folder tree (<class>/*.jpg|png), a Parquet file/dir (image bytes in jpg|image|image_bytes\n"
        "+ `label`), or CIFAR-10/100 python batches (the folder holding batches.meta or meta)")
EMBED = ("Embeddings are computed with Ray Data (an actor pool, the model loaded once per actor, one GPU\n"
         "per actor when CUDA is present); inputs of at most --local-max-rows rows (default 512) are\n"
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
    p.add_argument("--batch-size", type=int, default=64, help="images or texts per model call")
    p.add_argument("--local-max-rows", type=int, default=512,
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
    z.add_argument("--classes-json", default=None, help="a JSON file, or cifar10 | cifar100 | imagenet")
    z.add_argument("--templates", choices=("ensemble", "single", "both"), default="both")
    z.add_argument("--split", choices=("train", "test"), default="test", help="CIFAR batches to use")
    z.set_defaults(run=run_zeroshot)

    r = sub.add_parser("retrieval", help="image<->text retrieval recall@1/5/10", formatter_class=RAW,
                       description=RETRIEVAL)
    _common(r)
    r.add_argument("--captions", required=True, help="captions.jsonl, a COCO captions_*.json, or *.parquet")
    r.add_argument("--images", default=None, help="the image root the captions file names images under")
    r.set_defaults(run=run_retrieval)

    lp = sub.add_parser("linear-probe", help="logistic regression on frozen image features", formatter_class=RAW,
                        description=LINEAR_PROBE)
    _common(lp)
    lp.add_argument("--train", required=True, help="the labelled training set")
    lp.add_argument("--test", required=True, help="the labelled test set (classes of the training set)")
    lp.add_argument("--val", default=None, help="a labelled validation set (default: split from --train)")
    lp.add_argument("--val-fraction", type=float, default=0.2)
    lp.add_argument("--seed", type=int, default=0)
    lp.set_defaults(run=run_linear_probe)


def _emit(kind: str, result: dict, args) -> int:
    from trainer.eval.report import MARKDOWN
    from core.artifacts import write_json

    if args.out:
        write_json(result, args.out)
    if args.markdown == "-":
        print(MARKDOWN[kind](result))
    elif args.markdown:                   # a local file or a cloud URI
        from core.storage import write_text

        write_text(args.markdown, MARKDOWN[kind](result) + "\n")
    return 0


def _embed_kwargs(args) -> dict:
    return {"batch_size": args.batch_size, "local_max_rows": args.local_max_rows, "actors": args.actors}


def run_zeroshot(args) -> int:
    from trainer.eval.checks import check_zeroshot
    from trainer.eval.zeroshot import ZeroShotConfig, zeroshot

    check_zeroshot(args)
    result = zeroshot(ZeroShotConfig(args.checkpoint, args.images, args.classes_json, templates=args.templates,
                                     split=args.split, **_embed_kwargs(args)))
    runs = {"ensemble": result, "single": result["single"]} if args.templates == "both" else {args.templates: result}
    for name, r in runs.items():
        print(f"zero-shot ({name}, {r['templates']} templates) on {r['n']} images, {r['num_classes']} classes: "
              f"top-1 {r['top1']:.1%}  top-5 {r['top5']:.1%}  (chance {r['chance']:.1%})"
              + (f"; {r['skipped']} unreadable images skipped" if r["skipped"] else ""))
    return _emit("zeroshot", result, args)


def run_retrieval(args) -> int:
    from trainer.eval.checks import check_retrieval
    from trainer.eval.retrieval import RetrievalConfig, retrieval

    check_retrieval(args)
    result = retrieval(RetrievalConfig(args.checkpoint, args.captions, args.images, **_embed_kwargs(args)))
    i2t, t2i = result["image_to_text"], result["text_to_image"]
    print(f"retrieval on {result['n_images']} images / {result['n_captions']} captions: image->text "
          + " ".join(f"{k} {v:.1%}" for k, v in i2t.items()) + "; text->image "
          + " ".join(f"{k} {v:.1%}" for k, v in t2i.items()))
    return _emit("retrieval", result, args)


def run_linear_probe(args) -> int:
    from trainer.eval.checks import check_linear_probe
    from trainer.eval.linear_probe import LinearProbeConfig, linear_probe

    check_linear_probe(args)
    result = linear_probe(LinearProbeConfig(args.checkpoint, args.train, args.test, args.val, args.val_fraction,
                                            args.seed, **_embed_kwargs(args)))
    print(f"linear probe: test accuracy {result['test_accuracy']:.1%} with lambda {result['lambda']:.3g} "
          f"({result['n_train']} train, {result['n_val']} val, {result['n_test']} test)")
    return _emit("linear-probe", result, args)
