"""Generated scenes for the demo's web: coloured shapes whose alt-texts use words that are queries.

Every scene is a pure function of (seed, scene_id), so the demo's web server renders images on the
fly and two runs serve identical bytes. Colour is the attribute the zero-shot evaluation asks
about; shape, count, size and background vary so the captions carry many different queries, which
is what balancing needs to select a varied corpus.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 60),
    "blue": (40, 70, 215),
    "yellow": (240, 215, 40),
    "orange": (245, 135, 20),
    "purple": (135, 50, 170),
    "pink": (245, 140, 190),
    "brown": (125, 80, 40),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
PLURAL = {s: s + "s" for s in SHAPES} | {"cross": "crosses"}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (245, 245, 245), "gray": (150, 150, 150), "black": (20, 20, 20)}
COUNT_WORDS = ("one", "two", "three")
SIZES = ("small", "large")
THINGS = ("icon", "sticker", "logo", "drawing", "photo", "picture", "pattern", "card", "toy", "tile", "badge",
          "sign", "button", "poster", "print", "block", "symbol", "illustration", "graphic", "emblem")

CAPTIONS = (
    "a {size} {colour} {shape} on a {bg} background",
    "{count} {colour} {shapes}",
    "photo of a {colour} {shape}",
    "{colour} {shape} {thing}",
    "clip art: {size} {colour} {shape}",
    "drawing of {count} {colour} {shapes} on {bg} paper",
    "the {colour} {shape} {thing}",
    "{shape} in {colour}",
    "simple {colour} {shape} {thing} for kids",
    "{Colour} {shapes} ({count}) — free {thing}",
    "{colour} {shape} shape on {bg}",
    "a {thing} with a {colour} {shape}",
)


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    count: int  # 1..3
    size: str
    background: str
    width: int
    height: int
    caption: str


def scene(seed: int, scene_id: int) -> Scene:
    rng = np.random.default_rng([seed, scene_id])
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    count = int(rng.integers(1, 4))
    size = str(rng.choice(SIZES))
    bg = str(rng.choice(list(BACKGROUNDS)))
    width, height = int(rng.integers(72, 129)), int(rng.integers(72, 129))
    template = str(rng.choice(CAPTIONS))
    caption = template.format(
        size=size, colour=colour, Colour=colour.capitalize(), shape=shape, shapes=PLURAL[shape] if count > 1
        else shape, count=COUNT_WORDS[count - 1], bg=bg, thing=str(rng.choice(THINGS)),
    )
    caption = re.sub(r"\ba ([aeiou])", r"an \1", caption)  # "an orange cross"
    return Scene(colour, shape, count, size, bg, width, height, caption)


def render(seed: int, scene_id: int) -> Image.Image:
    s = scene(seed, scene_id)
    rng = np.random.default_rng([seed, scene_id, 1])
    base = np.array(BACKGROUNDS[s.background], dtype=np.float32)
    noise = rng.normal(0, 8, size=(s.height, s.width, 3))  # a little texture, so no two images are equal
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    side = min(s.width, s.height)
    radius = side * (0.30 if s.size == "large" else 0.20) / (1 + 0.35 * (s.count - 1))
    colour = tuple(int(c) for c in np.clip(np.array(COLOURS[s.colour]) + rng.normal(0, 12, 3), 0, 255))
    for k in range(s.count):
        cx = s.width * (k + 1) / (s.count + 1) + rng.normal(0, side * 0.03)
        cy = s.height / 2 + rng.normal(0, side * 0.08)
        _draw_shape(draw, s.shape, cx, cy, radius, colour)
    return image


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
    else:  # star: ten points alternating outer and inner radius
        points = [
            (cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
             cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5))
            for i in range(10)
        ]
        draw.polygon(points, fill=fill)


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt], quality=90)
    return buf.getvalue()
