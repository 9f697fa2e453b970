"""Zero-shot classification (CLIP paper, section 3.1.4): a class is the mean embedding of its prompts.

Each class name is put into every prompt template ("a photo of a {}."), the prompts are encoded
and L2-normalized, averaged, and renormalized: that is the class's classifier weight. An image
is assigned the class with the highest cosine similarity. `templates="both"` reports the ensemble
next to the single "a photo of a {}." prompt, from one pass over the images (the paper's
prompt-ensembling gain, Figure 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.eval.datasets import class_names, read_labelled
from trainer.eval.config import BUNDLED, EmbedConfig, ZeroShotConfig
from trainer.eval.embed import Embedder, normalize
from core.errors import WitError

TEMPLATES_DIR = Path(__file__).parent / "templates"
SINGLE_TEMPLATE = ("a photo of a {}.",)


def default_templates() -> list[str]:
    return json.loads((TEMPLATES_DIR / "default.json").read_text())["templates"]


def resolve_classes_json(spec: str | None) -> str | None:
    """A path, or the name of a bundled set (cifar10, cifar100, imagenet)."""
    if spec in BUNDLED:
        return str(TEMPLATES_DIR / f"{spec}.json")
    if spec is not None and not Path(spec).is_file():
        raise WitError(f"no classes JSON at {spec}", hint=f"a file, or one of {', '.join(BUNDLED)}")
    return spec


def check_templates(templates: list[str]) -> list[str]:
    if not templates:
        raise WitError("no prompt templates", hint='give at least one, e.g. "a photo of a {}."')
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise WitError(f"template(s) without a {{}} slot for the class name: {bad}", hint='e.g. "a photo of a {}."')
    return list(templates)


def classifier(embedder: Embedder, names: list[str], templates: list[str]) -> np.ndarray:
    """[C, E] unit rows: per class, the renormalized mean of its normalized prompt embeddings."""
    prompts = [t.format(name) for name in names for t in templates]
    features = normalize(embedder.texts(prompts)).reshape(len(names), len(templates), -1)   # [C, T, E]
    return normalize(features.mean(axis=1))                                                # [C, E]


def accuracy(features: np.ndarray, weights: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Top-1/top-5 of unit image features [N, E] against class weights [C, E]."""
    k = min(5, len(names))
    topk = np.argsort(-(features @ weights.T), axis=1, kind="stable")[:, :k]             # [N, k]
    top1 = topk[:, 0] == labels
    per_class = {names[c]: float(top1[labels == c].mean()) for c in range(len(names)) if (labels == c).any()}
    return {"top1": float(top1.mean()), "top5": float((topk == labels[:, None]).any(axis=1).mean()),
            "per_class": per_class}


def zeroshot(cfg: ZeroShotConfig) -> dict:
    if cfg.templates not in ("ensemble", "single", "both"):
        raise WitError(f"templates={cfg.templates!r} is unknown", hint="ensemble, single or both")
    data = read_labelled(cfg.images, cfg.split)
    names, spec_templates = class_names(data, resolve_classes_json(cfg.classes_json))
    ensemble = check_templates(spec_templates if spec_templates is not None else default_templates())
    if not data.rows:
        raise WitError(f"no images in {cfg.images}", hint="<class>/*.jpg or *.png, or a non-empty table")
    embedder = Embedder(EmbedConfig(cfg.checkpoint, cfg.batch_size, cfg.local_max_rows, cfg.actors))
    raw, ok = embedder.images(data.rows)
    if not ok.any():
        raise WitError(f"no readable images in {cfg.images}", hint="JPEG or PNG files")
    features, labels = normalize(raw[ok]), data.labels[ok]
    skipped = [r["path"] or f"row {i}" for i, r in enumerate(data.rows) if not ok[i]]
    common = {"n": int(ok.sum()), "num_classes": len(names), "chance": 1 / len(names), "skipped": len(skipped),
              "skipped_files": skipped[:20], "ray_data": embedder.used_ray}
    results = {}
    for kind, templates in (("ensemble", ensemble), ("single", list(SINGLE_TEMPLATE))):
        if cfg.templates in (kind, "both"):
            weights = classifier(embedder, names, templates)
            results[kind] = {**accuracy(features, weights, labels, names), **common, "templates": len(templates)}
    if cfg.templates != "both":
        return results[cfg.templates]
    # The ensemble is the headline (top-level keys, as with templates="ensemble"); the baseline rides along.
    gain = results["ensemble"]["top1"] - results["single"]["top1"]
    return {**results["ensemble"], "single": results["single"], "ensemble_gain_top1": gain}
