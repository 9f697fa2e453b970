"""Generated images of coloured shapes, written as a corpus (the pipeline's shard schema) or as an
image-folder eval set. Small, deterministic, and easy enough that a tiny CLIP learns colours."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 220, 30),
           "purple": (140, 40, 180), "orange": (250, 140, 20), "pink": (250, 130, 190), "brown": (120, 70, 30)}
BACKGROUNDS = {"white": (250, 250, 250), "black": (10, 10, 10), "gray": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")


def draw(colour: str, shape: str, background: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    img = Image.new("RGB", (size, size), BACKGROUNDS[background])
    d = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    box = (cx - r, cy - r, cx + r, cy + r)
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_corpus(corpus_dir: str | Path, n: int, seed: int = 0, shards: int = 2, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        shape, background = SHAPES[rng.integers(len(SHAPES))], list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        if colour in ("yellow", "pink", "orange") and background == "white":
            background = "black"
        data = jpeg(draw(colour, shape, background, rng, size))
        url = f"http://127.0.0.1/{i}.jpg"
        rows.append({"key": f"{i:08d}", "url": url, "caption": f"a {colour} {shape} on a {background} background",
                     "query_ids": [i % 8], "jpg": data, "width": size, "height": size,
                     "original_width": size, "original_height": size, "sha256": hashlib.sha256(data).hexdigest()})
    for s in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[s::shards]), corpus_dir / f"{s:05d}.parquet")
    failures = corpus_dir / "failures"
    failures.mkdir(exist_ok=True)     # not data: the trainer must ignore it
    pq.write_table(pa.table({"key": ["x"], "url": ["u"], "caption": ["c"], "status": ["failed"],
                             "error_message": ["404"]}), failures / "00000.parquet")
    (corpus_dir / "_SUCCESS.json").write_text('{"stage": "test"}\n')   # finished, as `wit train` requires
    return corpus_dir


def write_image_folder(root: str | Path, per_class: int, seed: int = 1, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    for colour in COLOURS:
        (root / colour).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape, background = SHAPES[rng.integers(len(SHAPES))], "gray"
            draw(colour, shape, background, rng, size).save(root / colour / f"{i}.png")
    return root
