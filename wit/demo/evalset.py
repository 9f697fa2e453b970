"""Held-out zero-shot evaluation set for the demo: generated scenes the corpus never contained.

Classes are the colour names, which the pool's captions use; images come from a seed the web never
served, so a correct answer means the model learned colour words from alt-texts, not the images.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from core.artifacts import write_json
from wit.demo.scenes import COLOURS, render, scene

HELD_OUT = 1_000_003  # added to the demo seed: a scene stream disjoint from the web's

# Prompt ensembling as in the paper, with templates written for this domain (the paper wrote a
# set per data set; these follow its "a photo of a {}." pattern).
TEMPLATES = [
    "a photo of a {} shape.",
    "a {} shape.",
    "a drawing of a {} thing.",
    "a {} icon.",
    "clip art of a {} object.",
    "a picture of something {}.",
]


def write(directory: Path, seed: int, per_class: int) -> tuple[Path, Path]:
    """`directory/images/<colour>/*.png` (per_class each) and `directory/classes.json`."""
    images = directory / "images"
    counts = dict.fromkeys(COLOURS, 0)
    for scene_id in itertools.count():
        if min(counts.values()) >= per_class:
            break
        colour = scene(seed + HELD_OUT, scene_id).colour
        if counts[colour] >= per_class:
            continue
        path = images / colour / f"{scene_id:06d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            render(seed + HELD_OUT, scene_id).save(path)
        counts[colour] += 1
    classes_json = write_json({"classes": list(COLOURS), "templates": TEMPLATES}, directory / "classes.json")
    return images, classes_json
