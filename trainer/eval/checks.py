"""Input checks of `wit eval zeroshot|retrieval|linear-probe`, at the top of each handler: the
checkpoint first (before any eval data is read), then each eval set's layout and columns from its
listing and Parquet footers, then the numbers. Images themselves are not decoded here: an unreadable
image inside a good set is skipped and counted by the eval, as before."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trainer.checks import check_checkpoint
from trainer.eval.config import BUNDLED
from trainer.eval.datasets import CIFAR_SPLITS, IMAGE_COLUMNS, IMAGE_SUFFIXES
from core import storage, validate
from core.errors import WitError

SET_HINT = "an image-folder tree (<class>/*.jpg), a .parquet file/dir with an image column and `label`, or CIFAR batches"
CAPTIONS_HINT = 'captions.jsonl ({"file": ..., "caption": ...}), a COCO captions_*.json, or *.parquet'


def _check_common(args: argparse.Namespace) -> None:
    check_checkpoint(args.checkpoint)
    validate.check_at_least({"--batch-size": args.batch_size, "--actors": args.actors}, 1)
    validate.check_at_least({"--local-max-rows": args.local_max_rows}, -1)
    if args.out:
        validate.check_output(args.out, "--out", directory=False)
    if args.markdown and args.markdown != "-":
        validate.check_output(args.markdown, "--markdown", directory=False)


def check_zeroshot(args: argparse.Namespace) -> None:
    _check_common(args)
    spec = args.classes_json
    if spec is not None and spec not in BUNDLED and not Path(spec).is_file():
        raise WitError(f"unknown classes and templates set {spec!r}: neither a bundled set nor a file",
                       hint=f"--classes-json: a JSON file, or one of {', '.join(BUNDLED)}")
    check_labelled(args.images, "--images")


def check_retrieval(args: argparse.Namespace) -> None:
    _check_common(args)
    _local(args.captions, "--captions")
    validate.check_file(args.captions, "captions file", hint=CAPTIONS_HINT)
    path = Path(args.captions)
    if path.suffix == ".parquet":
        _check_image_column(path, validate.check_columns(path, ("caption",), "captions file", CAPTIONS_HINT))
    elif path.suffix == ".jsonl":
        first = next((line for line in path.open(encoding="utf-8", errors="replace") if line.strip()), "")
        try:
            record = json.loads(first)
        except ValueError as err:
            raise WitError(f"captions file {path} is not JSON lines ({err})", hint=CAPTIONS_HINT) from err
        missing = [k for k in ("file", "caption") if not isinstance(record, dict) or k not in record]
        if missing:
            raise WitError(f"captions file {path}: its first line lacks {', '.join(missing)}", hint=CAPTIONS_HINT)
    elif path.suffix != ".json":
        raise WitError(f"captions file {path} is not a .jsonl, .json or .parquet file", hint=CAPTIONS_HINT)
    if args.images:
        validate.check_dir(args.images, "--images (the image root)", hint="the folder the captions' files are under")


def check_linear_probe(args: argparse.Namespace) -> None:
    _check_common(args)
    if not 0 < args.val_fraction < 1:
        raise WitError(f"--val-fraction must lie strictly between 0 and 1, not {args.val_fraction:g}",
                       hint="e.g. --val-fraction 0.2")
    for name, path in (("--train", args.train), ("--test", args.test), ("--val", args.val)):
        if path is not None:
            check_labelled(path, name)


def check_labelled(source: str, what: str) -> None:
    """An image-folder tree, a Parquet file/dir with an image column and `label`, or CIFAR batches."""
    _local(source, what)
    validate.check_exists(source, what, hint=SET_HINT)
    path = Path(source)
    if path.is_dir():
        validate.check_dir(source, what, hint=SET_HINT)
    folder = path if path.is_dir() else path.parent
    if any((folder / meta).is_file() for meta in CIFAR_SPLITS):
        return
    if path.is_file() and path.suffix == ".parquet":
        _check_image_column(path, validate.check_columns(path, ("label",), what, SET_HINT))
    elif path.is_dir() and any(path.glob("*.parquet")):
        for part in validate.check_parts(source, "*.parquet", ("label",), what, SET_HINT):
            _check_image_column(part, validate.check_parquet(part, what))
    elif path.is_dir():
        classes = [d for d in path.iterdir() if d.is_dir()
                   and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())]
        if len(classes) < 2:
            raise WitError(f"{what} {path} holds no eval set: {len(classes)} class folder(s) with images, "
                           "no *.parquet, no CIFAR batches", hint=SET_HINT)
    else:
        raise WitError(f"{what} {path} is not an eval set (a {path.suffix or 'suffix-less'} file)", hint=SET_HINT)


def _check_image_column(path, schema) -> None:
    if not any(c in schema.names for c in IMAGE_COLUMNS):
        raise WitError(f"{path} lacks an image column (one of {', '.join(IMAGE_COLUMNS)}; its columns: "
                       f"{', '.join(schema.names)})", hint="image bytes in a jpg/image/image_bytes column")


def _local(path: str, what: str) -> None:
    if storage.is_uri(path):
        validate.check_credentials(path)
        raise WitError(f"{what} {path}: eval sets are read from local paths", hint="copy the set here first")
