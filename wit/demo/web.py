"""The demo's web to crawl: a loopback HTTP server of generated images, and its pool of (url, alt-text).

Like the real web, the pool is not clean: some links are dead (404) or fail (500), some point at
HTML pages or truncated JPEGs, some hosts forbid AI use (`X-Robots-Tag: noai`), some URLs are not
http(s) at all, some alt-texts are empty or camera file names that match no query, and some rows
repeat. The stages must account for every one of them.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from wit.demo.scenes import encode, render, scene
from core.loopback import Response

# Share of pool rows per kind; the rest are good images. Chosen to look like alt-text crawls,
# where a few percent of links are broken and many alt-texts are file names.
BAD_ROW_SHARES: dict[str, float] = {
    "missing": 0.05,  # 404
    "error": 0.01,  # 500
    "page": 0.03,  # HTML instead of an image
    "broken": 0.03,  # truncated JPEG
    "noai": 0.02,  # X-Robots-Tag: noai
    "bad_url": 0.02,  # not http(s)
    "junk_text": 0.08,  # camera file names: match no query
    "empty_text": 0.01,
    "duplicate": 0.02,  # the same (url, text) again
}
IMAGE_FORMATS = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# An optional ?mirror=N: the same resource on another URL, as CDNs and image hosts serve it (bench/probe.py
# makes large pools of mirrors without generating a caption per row).
_PATH = re.compile(r"^/(img|missing|error|page|broken|noai)/(\d+)\.(jpg|png|webp|html)(?:\?mirror=\d+)?$")


def app(seed: int):
    """The server's routes: `/img/<id>.<fmt>` renders scene <id>; the other prefixes misbehave."""

    def handle(path: str) -> Response:
        found = _PATH.match(path)
        if not found:
            return Response(404, b"not found", "text/plain")
        kind, scene_id, ext = found.group(1), int(found.group(2)), found.group(3)
        if kind == "missing":
            return Response(404, b"<h1>404</h1>", "text/html")
        if kind == "error":
            return Response(500, b"<h1>internal error</h1>", "text/html")
        if kind == "page":
            return Response(200, b"<html><body><p>not an image</p></body></html>", "text/html")
        fmt = ext if ext in IMAGE_FORMATS else "jpg"
        body = encode(render(seed, scene_id), fmt)
        if kind == "broken":
            # Cut inside the JPEG headers: cut later, decoders fill the missing rows with grey and
            # img2dataset re-encodes the result, which no later check can tell from a good image.
            return Response(200, body[:300], IMAGE_FORMATS[fmt])
        headers = {"X-Robots-Tag": "noai"} if kind == "noai" else {}
        return Response(200, body, IMAGE_FORMATS[fmt], headers)

    return handle


def row_kind(seed: int, row: int, shares: dict[str, float] = BAD_ROW_SHARES) -> str:
    """The kind of pool row `row` ("good" or a key of BAD_ROW_SHARES), fixed by (seed, row)."""
    u = np.random.default_rng([seed, row, 2]).random()
    for kind, share in shares.items():
        if u < share:
            return kind
        u -= share
    return "good"


def pool(base_url: str, rows: int, seed: int, shares: dict[str, float] = BAD_ROW_SHARES) -> pa.Table:
    """`rows` pool rows (url, caption) for the server at `base_url`, deterministic in seed; `shares`:
    another mix of bad rows (kinds of BAD_ROW_SHARES), for a web whose mix a plan was not told."""
    if set(shares) - set(BAD_ROW_SHARES) or sum(shares.values()) > 1:
        raise ValueError(f"bad-row shares must be kinds of {sorted(BAD_ROW_SHARES)} summing to at most 1")
    urls: list[str] = []
    captions: list[str] = []
    for row in range(rows):
        kind = row_kind(seed, row, shares)
        if kind == "duplicate" and urls:
            urls.append(urls[row // 2])
            captions.append(captions[row // 2])
            continue
        rng = np.random.default_rng([seed, row, 3])
        fmt = str(rng.choice(list(IMAGE_FORMATS), p=[0.8, 0.1, 0.1]))
        prefix = kind if kind in ("missing", "error", "page", "broken", "noai") else "img"
        url = f"{base_url}/{prefix}/{row}.{'html' if kind == 'page' else fmt}"
        if kind == "bad_url":
            url = str(rng.choice([f"ftp://files.example/{row}.jpg", f"javascript:show({row})", "data:image/png;base64,"]))
        caption = scene(seed, row).caption
        if kind == "junk_text":
            caption = _camera_file_name(rng)
        elif kind == "empty_text":
            caption = ""
        urls.append(url)
        captions.append(caption)
    return pa.table({"url": urls, "caption": captions})


def _camera_file_name(rng: np.random.Generator) -> str:
    """Alt-texts such as 'IMG4821 qzvtb': tokens made of consonants and digits, no English word."""
    junk = "".join(rng.choice(list("bcdfghjkqvwxz"), size=5))
    return f"IMG{int(rng.integers(1000, 9999))} {junk}"
