"""Zero-shot classification (CLIP paper, section 3.1.4): a class is the mean embedding of its prompts.

Each class name is put into every prompt template ("a photo of a {}."), the prompts are encoded
and L2-normalized, averaged, and renormalized: that is the class's classifier weight. An image
is assigned the class with the highest cosine similarity. Images are center-cropped, resized
and normalized as in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from trainer.data import center_square_crop, normalize_images, to_array
from wit.errors import WitError

TEMPLATES_DIR = Path(__file__).parent / "templates"
SINGLE_TEMPLATE = ("a photo of a {}.",)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ZeroShotConfig:
    checkpoint: str                       # a checkpoint dir, or a run dir (its checkpoints/latest)
    images: str                           # image-folder tree: <class folder>/*.jpg|png
    classes_json: str | None = None       # {"classes": [...] or {folder: name}, "templates": [...]}
    batch_size: int = 64
    templates: str = "ensemble"           # ensemble: the paper's templates; single: "a photo of a {}."


def default_templates() -> list[str]:
    return json.loads((TEMPLATES_DIR / "default.json").read_text())["templates"]


def check_templates(templates: list[str]) -> list[str]:
    if not templates:
        raise WitError("no prompt templates", hint='give at least one, e.g. "a photo of a {}."')
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise WitError(f"template(s) without a {{}} slot for the class name: {bad}", hint='e.g. "a photo of a {}."')
    return list(templates)


def classes_and_templates(cfg: ZeroShotConfig, folders: list[str]) -> tuple[list[str], list[str]]:
    """Prompt names of the folders, in folder order, and the templates to use."""
    if cfg.templates not in ("ensemble", "single"):
        raise WitError(f"templates={cfg.templates!r} is unknown", hint="ensemble or single")
    templates = default_templates() if cfg.templates == "ensemble" else list(SINGLE_TEMPLATE)
    names = folders
    if cfg.classes_json:
        spec = json.loads(Path(cfg.classes_json).read_text())
        classes = spec.get("classes", folders)
        mapping = classes if isinstance(classes, dict) else {c: c for c in classes}
        missing = [f for f in folders if f not in mapping]
        if missing:
            raise WitError(f"{cfg.classes_json} names no class for folder(s) {missing}",
                           hint='list every folder under "classes" (a list, or {folder: name})')
        names = [mapping[f] for f in folders]
        templates = spec.get("templates", templates)
    return names, check_templates(templates)


@torch.no_grad()
def class_embeddings(model, tokenizer, names: list[str], templates: list[str]) -> torch.Tensor:
    weights = []
    for name in names:
        text = torch.from_numpy(tokenizer.encode_batch([t.format(name) for t in templates]))
        prompts = F.normalize(model.encode_text(text), dim=-1)         # [T, E]
        weights.append(F.normalize(prompts.mean(dim=0), dim=-1))       # [E]
    return torch.stack(weights)                                        # [C, E]


def _load(path: Path, size: int) -> np.ndarray | None:
    try:
        with Image.open(path) as img:
            return to_array(center_square_crop(img), size)
    except (UnidentifiedImageError, OSError):
        return None


def zeroshot(cfg: ZeroShotConfig) -> dict:
    from trainer.fit import load_checkpoint

    root = Path(cfg.images)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(folders) < 2:
        raise WitError(f"{root} needs >= 2 class folders (<class>/*.jpg)", hint="an image-folder tree")
    names, templates = classes_and_templates(cfg, folders)
    model, tokenizer, _ = load_checkpoint(cfg.checkpoint)
    classifier = class_embeddings(model, tokenizer, names, templates)  # [C, E]
    size = model.cfg.vision.image_size

    files = [(p, label) for label, f in enumerate(folders)
             for p in sorted((root / f).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    k = min(5, len(folders))
    labels, topk, skipped = [], [], []
    for start in range(0, len(files), cfg.batch_size):
        arrays = []
        for path, label in files[start:start + cfg.batch_size]:
            array = _load(path, size)
            if array is None:
                skipped.append(str(path))
                continue
            arrays.append(array)
            labels.append(label)
        if arrays:
            with torch.no_grad():
                images = normalize_images(torch.from_numpy(np.stack(arrays)))
                features = F.normalize(model.encode_image(images), dim=-1)   # [b, E]
                topk.append((features @ classifier.T).topk(k, dim=-1).indices)  # [b, k]
    if not labels:
        raise WitError(f"no readable images under {root}", hint="<class>/*.jpg or *.png")
    target = torch.tensor(labels)
    predictions = torch.cat(topk)
    top1_hits = predictions[:, 0] == target
    top5_hits = (predictions == target[:, None]).any(dim=1)
    per_class = {names[c]: float(top1_hits[target == c].float().mean()) for c in range(len(folders))
                 if (target == c).any()}
    return {"top1": float(top1_hits.float().mean()), "top5": float(top5_hits.float().mean()),
            "n": len(labels), "num_classes": len(folders), "chance": 1 / len(folders),
            "per_class": per_class, "skipped": len(skipped), "skipped_files": skipped[:20],
            "templates": len(templates)}
