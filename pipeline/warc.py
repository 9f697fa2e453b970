"""Common Crawl WARC files as a pool: every <img src alt> of every HTML response.

warcio reads the records (gzip per record, as Common Crawl writes them); the stdlib HTML parser
finds the images, so broken markup degrades to fewer images rather than an exception. A relative
`src` is resolved against the page URL, or against the page's `<base href>` when it has one. An
image without alt text is still a row (with an empty text), so match counts it as `empty_text`
instead of losing it silently.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Iterator
from urllib.parse import urljoin

import pyarrow as pa
from warcio.archiveiterator import ArchiveIterator

from core import storage

POOL_COLUMNS = ("url", "text", "page_url")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


class _Images(HTMLParser):
    """Collects (src, alt) of <img> tags, and the first <base href>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href") or None
        elif tag == "img":
            found = dict(attrs)
            src = (found.get("src") or "").strip()
            if src and not src.startswith("data:"):
                self.images.append((src, found.get("alt") or ""))

    handle_startendtag = handle_starttag


def images_in_html(html: str, page_url: str) -> list[tuple[str, str]]:
    """(absolute image URL, alt text) of every <img> with a src in `html`, in document order."""
    parser = _Images()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    return [(urljoin(base, src), alt) for src, alt in parser.images]


def _charset(content_type: str, body: bytes) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    found = _CHARSET.search(body[:4096])
    return found.group(1).decode("ascii") if found else "utf-8"


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset name Python does not know
        return body.decode("utf-8", errors="replace")


def read_warc(path: str) -> Iterator[tuple[str, str, str]]:
    """(image URL, alt text, page URL) for the images of every HTML response record in a WARC file."""
    with storage.open_input_stream(path) as stream:  # a local file or a cloud URI
        for record in ArchiveIterator(stream):
            if record.rec_type != "response" or record.http_headers is None:
                continue
            content_type = record.http_headers.get_header("Content-Type") or ""
            if "html" not in content_type.lower():
                continue
            page_url = record.rec_headers.get_header("WARC-Target-URI") or ""
            body = record.content_stream().read()
            html = _decode(body, _charset(content_type, body))
            for url, alt in images_in_html(html, page_url):
                yield url, alt, page_url


def warc_table(path: str, rows_per_table: int = 65_536) -> Iterator[pa.Table]:
    """`read_warc` as pool tables (url, text, page_url) of at most `rows_per_table` rows."""
    rows: list[tuple[str, str, str]] = []
    for row in read_warc(path):
        rows.append(row)
        if len(rows) == rows_per_table:
            yield _table(rows)
            rows = []
    if rows:
        yield _table(rows)


def _table(rows: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table({name: pa.array(list(col), pa.string()) for name, col in zip(POOL_COLUMNS, zip(*rows))})
