"""Evaluation sets from local files: what the images are, and their labels or captions.

Images are described, not decoded: a row is `{"path": str, "data": bytes}` (one of the two set), so
the Ray Data actors that embed them do the reading and decoding. Formats:

- image-folder tree: `ROOT/<class>/*.jpg|jpeg|png` (the class is the folder name)
- Parquet (a file or a directory of *.parquet): an image column (`jpg`, `image`, `image_bytes`, `png`
  or `img`: binary, or a struct with `bytes` as Hugging Face writes it) and `label` (int or string)
  or `caption` (string, or a list of strings)
- CIFAR-10/100 python pickle batches: a directory with `batches.meta` (CIFAR-10: `data_batch_1..5`,
  `test_batch`) or `meta` (CIFAR-100: `train`, `test`), or one batch file next to its meta file
- captions: COCO-style `captions.jsonl` (`{"file": ..., "caption": ...}`, files relative to the jsonl's
  folder) or a COCO annotations JSON (`images` + `annotations`)
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from core.errors import WitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_COLUMNS = ("jpg", "image", "image_bytes", "png", "img")
CIFAR_SPLITS = {"batches.meta": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                "meta": {"train": ["train"], "test": ["test"]}}


@dataclass(frozen=True)
class LabelledImages:
    rows: list[dict]          # {"path": str, "data": bytes} per image
    labels: np.ndarray        # int64 [N], an index into `keys`
    keys: list[str]           # the label of each class as the data names it (folder, label string, meta name)
    indexed: bool             # labels are integers in the data: a classes list maps them by position


@dataclass(frozen=True)
class CaptionedImages:
    rows: list[dict]          # {"path": str, "data": bytes} per image
    captions: list[str]       # [M]
    caption_image: np.ndarray  # int64 [M]: the image each caption describes


def _row(path: str = "", data: bytes = b"") -> dict:
    return {"path": path, "data": data}


def read_labelled(source: str, split: str = "test") -> LabelledImages:
    """An image-folder tree, a Parquet table with a label column, or CIFAR pickle batches."""
    path = Path(source)
    if not path.exists():
        raise WitError(f"no eval set at {path}", hint="an image-folder tree, a .parquet file/dir or CIFAR batches")
    if _cifar_meta(path) is not None:
        return read_cifar(path, split)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return read_parquet_labelled(path)
    if path.is_dir():
        return read_image_folder(path)
    raise WitError(f"{path} is not an eval set I can read",
                   hint="an image-folder tree (<class>/*.jpg), *.parquet, or CIFAR python batches")


def read_image_folder(root: Path) -> LabelledImages:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(folders) < 2:
        raise WitError(f"{root} needs >= 2 class folders (<class>/*.jpg)", hint="an image-folder tree")
    rows, labels = [], []
    for label, folder in enumerate(folders):
        for p in sorted((root / folder).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                rows.append(_row(path=str(p)))
                labels.append(label)
    return LabelledImages(rows, np.array(labels, dtype=np.int64), folders, indexed=False)


def _parquet_table(path: Path, column: str):
    """The image column and `column` only: other columns (a Hugging Face export's ids, sizes, second
    images) stay on disk instead of passing through the driver. Missing columns fail from the footer."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    names = pq.read_schema(files[0]).names
    image = next((c for c in IMAGE_COLUMNS if c in names), None)
    if image is None:
        raise WitError(f"{path} has no image column", hint=f"one of {IMAGE_COLUMNS} (image bytes)")
    if column not in names:
        raise WitError(f"{path} has no `{column}` column",
                       hint="int class ids or class-name strings" if column == "label" else "")
    return pq.read_table(files[0] if len(files) == 1 else files, columns=[image, column])


def _image_bytes(table, path: Path) -> list[bytes]:
    name = next((c for c in IMAGE_COLUMNS if c in table.column_names), None)
    if name is None:
        raise WitError(f"{path} has no image column", hint=f"one of {IMAGE_COLUMNS} (image bytes)")
    values = table.column(name).to_pylist()
    return [(v.get("bytes") if isinstance(v, dict) else v) or b"" for v in values]


def read_parquet_labelled(path: Path) -> LabelledImages:
    table = _parquet_table(path, "label")
    images, values = _image_bytes(table, path), table.column("label").to_pylist()
    if all(isinstance(v, int) for v in values):
        keys = [str(i) for i in range(max(values) + 1)]
        return LabelledImages([_row(data=b) for b in images], np.array(values, np.int64), keys, indexed=True)
    keys = sorted({str(v) for v in values})
    index = {k: i for i, k in enumerate(keys)}
    labels = np.array([index[str(v)] for v in values], np.int64)
    return LabelledImages([_row(data=b) for b in images], labels, keys, indexed=False)


def _cifar_meta(path: Path) -> Path | None:
    folder = path if path.is_dir() else path.parent
    return next((folder / m for m in CIFAR_SPLITS if (folder / m).is_file()), None)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def read_cifar(path: Path, split: str = "test") -> LabelledImages:
    """CIFAR python batches: `data` uint8 [N, 3072] (R, G, B planes of 32x32), `labels`/`fine_labels`."""
    meta_path = _cifar_meta(path)
    meta = _unpickle(meta_path)
    names = meta.get(b"label_names") or meta.get(b"fine_label_names")
    if names is None:
        raise WitError(f"{meta_path} has no label_names/fine_label_names")
    if path.is_file() and path != meta_path:
        batches = [path]
    else:
        if split not in CIFAR_SPLITS[meta_path.name]:
            raise WitError(f"CIFAR split {split!r} is unknown", hint="train or test")
        batches = [meta_path.parent / b for b in CIFAR_SPLITS[meta_path.name][split]
                   if (meta_path.parent / b).is_file()]
        if not batches:
            raise WitError(f"no CIFAR {split} batches next to {meta_path}",
                           hint=", ".join(CIFAR_SPLITS[meta_path.name][split]))
    rows, labels = [], []
    for batch_path in batches:
        batch = _unpickle(batch_path)
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        rows += [_row(data=_png(pixels)) for pixels in data]        # [32, 32, 3] each
        labels += list(batch.get(b"labels", batch.get(b"fine_labels", [])))
    keys = [n.decode().replace("_", " ") for n in names]
    return LabelledImages(rows, np.array(labels, np.int64), keys, indexed=True)


def class_names(images: LabelledImages, classes_json: str | None) -> tuple[list[str], list[str] | None]:
    """Prompt names for each class, and the templates the JSON gives (None when it gives none).

    `classes` is a list (of the data's label names, or by position for integer labels) or a dict
    {label: name}; every class that has images must get a name."""
    if classes_json is None:
        if images.indexed and all(k.isdigit() for k in images.keys):
            raise WitError("the labels are integers and no class names were given",
                           hint='--classes-json with {"classes": [name of 0, name of 1, ...]}')
        return list(images.keys), None
    spec = json.loads(Path(classes_json).read_text())
    classes = spec.get("classes")
    if not classes:
        raise WitError(f"{classes_json} has no \"classes\"", hint='{"classes": [...], "templates": [...]}')
    used = sorted(set(images.labels.tolist()))
    if isinstance(classes, dict):
        mapping = {images.keys[i]: classes.get(images.keys[i]) for i in range(len(images.keys))}
    elif images.indexed and not set(images.keys) <= set(classes):
        mapping = {images.keys[i]: classes[i] if i < len(classes) else None for i in range(len(images.keys))}
    else:
        mapping = {k: (k if k in classes else None) for k in images.keys}
    missing = [images.keys[i] for i in used if mapping[images.keys[i]] is None]
    if missing:
        raise WitError(f"{classes_json} names no class for label(s) {missing[:10]}",
                       hint='list every class under "classes" (a list, or {label: name})')
    return [mapping[k] or k for k in images.keys], spec.get("templates")


def read_captions(source: str, images_root: str | None = None) -> CaptionedImages:
    """COCO-style captions.jsonl, a COCO annotations JSON, or Parquet with a `caption` column."""
    path = Path(source)
    if not path.is_file() and not (path.is_dir() and any(path.glob("*.parquet"))):
        raise WitError(f"no captions at {path}", hint="captions.jsonl, a COCO captions_*.json or *.parquet")
    if path.suffix == ".parquet" or path.is_dir():
        table = _parquet_table(path, "caption")
        pairs = list(zip(_image_bytes(table, path), table.column("caption").to_pylist()))
        rows = [_row(data=b) for b, _ in pairs]
        captions, owner = [], []
        for i, (_, caption) in enumerate(pairs):
            for text in caption if isinstance(caption, list) else [caption]:
                captions.append(str(text))
                owner.append(i)
        return CaptionedImages(rows, captions, np.array(owner, np.int64))
    if path.suffix == ".jsonl":
        root = Path(images_root) if images_root else path.parent
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        try:
            files, texts = [r["file"] for r in records], [r["caption"] for r in records]
        except KeyError as e:
            raise WitError(f"{path}: a line lacks {e}", hint='{"file": "images/x.jpg", "caption": "..."}') from e
    else:
        spec = json.loads(path.read_text())
        if "images" not in spec or "annotations" not in spec:
            raise WitError(f"{path} is not a COCO annotations file", hint="it needs `images` and `annotations`")
        root = Path(images_root) if images_root else next(
            (d for d in (path.parent / "images", path.parent.parent / "images") if d.is_dir()), path.parent)
        by_id = {im["id"]: im["file_name"] for im in spec["images"]}
        files = [by_id[a["image_id"]] for a in spec["annotations"]]
        texts = [a["caption"].strip() for a in spec["annotations"]]
    order = list(dict.fromkeys(files))                      # images in order of first mention
    index = {f: i for i, f in enumerate(order)}
    return CaptionedImages([_row(path=str(root / f)) for f in order], [str(t) for t in texts],
                           np.array([index[f] for f in files], np.int64))
