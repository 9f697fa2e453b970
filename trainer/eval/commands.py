"""`wit eval zeroshot|retrieval|linear-probe`: the handlers, imported only when one runs (the parser in
trainer/eval/cli.py stays light: no torch). Each checks its inputs first, then runs its eval."""

from __future__ import annotations

from trainer.eval.checks import check_linear_probe, check_retrieval, check_zeroshot
from trainer.eval.config import LinearProbeConfig, RetrievalConfig, ZeroShotConfig
from trainer.eval.linear_probe import linear_probe
from trainer.eval.report import MARKDOWN
from trainer.eval.retrieval import retrieval
from trainer.eval.zeroshot import zeroshot
from core.artifacts import write_json
from core.storage import write_text


def _emit(kind: str, result: dict, args) -> int:
    if args.out:
        write_json(result, args.out)
    if args.markdown == "-":
        print(MARKDOWN[kind](result))
    elif args.markdown:                   # a local file or a cloud URI
        write_text(args.markdown, MARKDOWN[kind](result) + "\n")
    return 0


def _embed_kwargs(args) -> dict:
    return {"batch_size": args.batch_size, "local_max_rows": args.local_max_rows, "actors": args.actors}


def run_zeroshot(args) -> int:
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
    check_retrieval(args)
    result = retrieval(RetrievalConfig(args.checkpoint, args.captions, args.images, **_embed_kwargs(args)))
    i2t, t2i = result["image_to_text"], result["text_to_image"]
    print(f"retrieval on {result['n_images']} images / {result['n_captions']} captions: image->text "
          + " ".join(f"{k} {v:.1%}" for k, v in i2t.items()) + "; text->image "
          + " ".join(f"{k} {v:.1%}" for k, v in t2i.items()))
    return _emit("retrieval", result, args)


def run_linear_probe(args) -> int:
    check_linear_probe(args)
    result = linear_probe(LinearProbeConfig(args.checkpoint, args.train, args.test, args.val, args.val_fraction,
                                            args.seed, **_embed_kwargs(args)))
    print(f"linear probe: test accuracy {result['test_accuracy']:.1%} with lambda {result['lambda']:.3g} "
          f"({result['n_train']} train, {result['n_val']} val, {result['n_test']} test)")
    return _emit("linear-probe", result, args)
