"""Stream the article pages out of a MediaWiki XML dump, without ever holding the dump in memory.

A dump is `pages-articles*.xml.bz2` (single- or multi-stream) or the same XML uncompressed. The
unit of work is a `DumpUnit`: a whole file, or, for a multistream dump with its
`…-multistream-index*.txt.bz2` next to it, a byte range of whole bz2 streams (the index lines are
`offset:page_id:title`, and every distinct offset starts an independent bz2 stream of ~100 pages).
A range decompresses to a run of `<page>` elements without the `<mediawiki>` wrapper: it is fed to
the XML parser between the root tag read from the dump's first stream (the `<siteinfo>` header)
and its closing tag.

Bytes are read and decompressed in 1 MiB chunks and fed to an incremental parser; each page element
is dropped as soon as it has been read, so memory stays at one chunk plus one page.

Only articles (namespace 0) count. A redirect is kept as a title alias (its own title, pointing at
its target) but contributes no text; disambiguation and set-index pages are lists of other
articles, not prose about a subject, so they are skipped. Every page that is not yielded as an
article is counted under the reason it was left out (`DumpStats`).
"""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from core import storage
from core.errors import WitError

CHUNK = 1 << 20  # bytes read (and decompressed) at a time
# Templates that mark a page as a disambiguation or set-index page (case-insensitive, `{{name` then
# `|` or `}}`); `__DISAMBIG__` is the magic word those templates expand to.
_DISAMBIGUATION = re.compile(
    r"\{\{\s*(?:disambiguation|disambig|disamb|dab|dis|disambiguation cleanup|disambig-cleanup"
    r"|geodis|hndis|hndis-cleanup|numberdis|letter-number combination disambiguation|mathdab"
    r"|schooldis|set index|set index article|sia|surname|given name|ship index|shipindex"
    r"|mountain index|mountainindex|roadindex|road index|sport index|sportindex|lake index"
    r"|chemistry index|molecular formula index|plant common name|species latin name disambiguation)"
    r"\s*(?:\||\}\})"
    r"|__DISAMBIG__",
    re.IGNORECASE,
)
_REDIRECT_TEXT = re.compile(r"\s*#REDIRECT\s*:?\s*\[\[([^\]|#]*)", re.IGNORECASE)
_ROOT_TAG = re.compile(rb"<mediawiki\b[^>]*>")
# Namespace prefixes of English Wikipedia, for old dumps whose pages carry no <ns> element and
# whose <siteinfo> is missing; <siteinfo><namespaces> replaces this list when present.
_DEFAULT_PREFIXES = frozenset(
    "media special talk user wikipedia file image mediawiki template help category portal book "
    "draft module timedtext gadget topic".split()
)


@dataclass(frozen=True)
class Page:
    """An article (namespace 0) or a redirect to one."""

    title: str
    text: str  # raw wikitext; "" for a redirect
    redirect: str | None = None  # the target title when this page is a redirect


@dataclass(frozen=True)
class DumpUnit:
    """One Ray task's share of a dump: a whole file, or bytes [start, end) of a multistream file,
    whose page streams begin at `header_end` (bytes [0, header_end) hold <mediawiki><siteinfo>)."""

    path: str
    start: int = 0
    end: int | None = None  # None: the whole file
    header_end: int = 0

    @property
    def is_range(self) -> bool:
        return self.end is not None

    def __str__(self) -> str:
        return f"{self.path} [bytes {self.start}-{self.end})" if self.is_range else self.path


@dataclass
class DumpStats:
    """Pages read from a dump, by what became of them."""

    articles: int = 0
    redirects: int = 0
    disambiguation: int = 0  # skipped: disambiguation or set-index page
    other_namespace: int = 0  # skipped: talk, user, template, category... pages
    compressed_bytes: int = 0  # bytes of the dump files read
    xml_bytes: int = 0  # the same, decompressed

    def merge(self, other: DumpStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def pages(self) -> int:
        return self.articles + self.redirects + self.disambiguation + self.other_namespace


@dataclass
class _Site:
    """What <siteinfo> says, or English Wikipedia's defaults when a dump has none."""

    prefixes: set[str] = field(default_factory=lambda: set(_DEFAULT_PREFIXES))


def is_disambiguation(title: str, text: str) -> bool:
    return title.endswith("(disambiguation)") or _DISAMBIGUATION.search(text) is not None


# --- multistream dumps: the index and the ranges -------------------------------------------------

def index_for(path: str | Path) -> Path | str | None:
    """The multistream index next to a dump, when there is one:
    `…-multistream.xml.bz2` -> `…-multistream-index.txt.bz2`,
    `…-multistream1.xml-p1p41242.bz2` -> `…-multistream-index1.txt-p1p41242.bz2`.
    A dump at a cloud URI (core.storage) has its index looked for beside it, as a URI."""
    dump_name = storage.name(path)
    if "-multistream" not in dump_name or ".xml" not in dump_name:
        return None
    name = dump_name.replace("-multistream", "-multistream-index", 1).replace(".xml", ".txt", 1)
    index = storage.join(storage.parent(path), name) if storage.is_uri(path) else Path(path).with_name(name)
    return index if storage.is_file(index) else None


def stream_offsets(index: str | Path, dump: str | Path) -> list[int]:
    """The distinct stream offsets of a multistream index (`offset:page_id:title` lines), checked
    against the dump: increasing, inside the file, each at a bz2 stream header."""
    size = storage.size(dump)
    offsets: list[int] = []
    try:
        with _index_lines(index) as lines:
            for number, line in enumerate(lines, 1):
                head = line.split(":", 1)[0]
                if not head.isdigit() or line.count(":") < 2:
                    raise WitError(f"{index}, line {number}: not a multistream index line: {line[:60]!r}",
                                   hint="expected `offset:page_id:title`")
                offset = int(head)
                if offsets and offset == offsets[-1]:
                    continue
                if offsets and offset < offsets[-1]:
                    raise WitError(f"{index}, line {number}: offset {offset} goes backwards "
                                   f"(after {offsets[-1]})", hint="the index does not belong to this dump")
                if offset >= size:
                    raise WitError(f"{index}, line {number}: offset {offset} points past the end of "
                                   f"{dump} ({size} bytes)",
                                   hint="the dump is truncated, or the index belongs to another dump")
                offsets.append(offset)
    except (EOFError, OSError) as err:
        raise WitError(f"{index}: cannot read the multistream index ({err})",
                       hint="download the index again") from err
    if not offsets:
        raise WitError(f"{index}: empty multistream index", hint="download the index again")
    with storage.open_binary(dump) as raw:
        for offset in offsets:
            raw.seek(offset)
            if raw.read(3) != b"BZh":
                raise WitError(f"{index}: offset {offset} is not the start of a bz2 stream in {dump}",
                               hint="the index does not belong to this dump")
    return offsets


def _index_lines(index: str | Path):
    """The index's lines as text; the index is bz2-compressed or plain, local or at a URI."""
    if not storage.name(index).endswith(".bz2"):
        return storage.open_text(index)
    return bz2.open(storage.open_binary(index) if storage.is_uri(index) else index, "rt", encoding="utf-8")


def plan_units(paths: tuple[str, ...] | list[str], range_bytes: int) -> list[DumpUnit]:
    """Whole files, except multistream dumps with an index: ranges of whole streams of about
    `range_bytes` compressed bytes each."""
    units: list[DumpUnit] = []
    for path in paths:
        if not storage.is_file(path):
            raise WitError(f"dump file not found: {path}", hint="pass an enwiki pages-articles*.xml.bz2 file")
        index = index_for(path)
        if index is None:
            units.append(DumpUnit(str(path)))
            continue
        offsets = stream_offsets(index, path)
        size = storage.size(path)
        start = offsets[0]
        for offset in offsets[1:]:
            if offset - start >= range_bytes:
                units.append(DumpUnit(str(path), start, offset, offsets[0]))
                start = offset
        units.append(DumpUnit(str(path), start, size, offsets[0]))
    return units


def _decompress_streams(raw, start: int, end: int, where: str) -> Iterator[bytes]:
    """The decompressed bytes of the bz2 streams lying back to back in [start, end)."""
    raw.seek(start)
    decompressor = bz2.BZ2Decompressor()
    pos = start
    while pos < end:
        data = raw.read(min(CHUNK, end - pos))
        if not data:
            raise WitError(f"{where}: the file ends at byte {pos}, before the end of the range ({end})",
                           hint="the dump is truncated; download it again")
        pos += len(data)
        while data:
            if decompressor.eof:  # the next stream starts in the unused bytes
                data, decompressor = decompressor.unused_data, bz2.BZ2Decompressor()
                if not data:
                    break
            try:
                out = decompressor.decompress(data)
            except OSError as err:
                raise WitError(f"{where}: cannot decompress near byte {pos} ({err})",
                               hint="the index offsets must start bz2 streams; is the dump damaged?") from err
            data = decompressor.unused_data if decompressor.eof else b""
            if out:
                yield out
    if not decompressor.eof:
        raise WitError(f"{where}: the bz2 stream ends early at byte {end} (truncated download?)",
                       hint="download the dump again and check its sha1/md5 sum")


def _header(raw, header_end: int, where: str) -> tuple[bytes, bytes]:
    """(the `<mediawiki …>` start tag, the <siteinfo> element) from a multistream's first stream."""
    head = b"".join(_decompress_streams(raw, 0, header_end, where))
    match = _ROOT_TAG.search(head)
    if match is None:
        raise WitError(f"{where}: not a MediaWiki XML export (no <mediawiki> in the first stream)",
                       hint="expected a pages-articles-multistream.xml.bz2 dump")
    return match.group(), head[match.end():]


# --- pages ---------------------------------------------------------------------------------------

def _chunks(unit: DumpUnit, raw, where: str) -> Iterator[bytes]:
    """XML bytes of a unit: a whole file as it is; a range wrapped in the dump's root element."""
    if not unit.is_range:
        magic = raw.read(3)
        raw.seek(0)
        stream = bz2.BZ2File(raw) if magic == b"BZh" else raw
        while data := stream.read(CHUNK):
            yield data
        return
    root, siteinfo = _header(raw, unit.header_end, where)
    yield root + siteinfo
    yield from _decompress_streams(raw, unit.start, unit.end, where)


def iter_pages(source: str | Path | DumpUnit, stats: DumpStats | None = None,
               progress: bool = False) -> Iterator[Page]:
    """Articles and redirects of namespace 0, in dump order; other pages are counted in `stats`.

    Raises WitError naming the file (the byte range, and the last page read) for a missing file, a
    truncated or corrupt bz2 stream, malformed XML, or XML that is not a MediaWiki export.
    """
    unit = source if isinstance(source, DumpUnit) else DumpUnit(str(source))
    path, where = unit.path, str(unit)
    stats = stats if stats is not None else DumpStats()
    if not storage.is_file(path):
        raise WitError(f"dump file not found: {path}", hint="pass an enwiki pages-articles*.xml.bz2 file")
    last_title = None
    total = (unit.end - unit.start) if unit.is_range else storage.size(path)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=storage.name(path)[:40], disable=not progress,
               leave=False)
    parser = ET.XMLPullParser(events=("start", "end"))
    root = None
    ns = ""
    site = _Site()
    root_closed = False
    header_lines = 0  # a range's lines are numbered from its first stream, not from the header fed first
    raw = storage.open_binary(path)
    try:
        for data in _chunks(unit, raw, where):
            if unit.is_range and root is None:
                header_lines = data.count(b"\n")
            stats.xml_bytes += len(data)
            parser.feed(data)
            for event, elem in parser.read_events():
                if root is None:
                    root = elem
                    if root.tag.rsplit("}", 1)[-1] != "mediawiki":
                        raise WitError(f"{where}: not a MediaWiki XML export (root element <{root.tag}>)",
                                       hint="expected <mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.10/\">")
                    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
                    continue
                if event != "end":
                    continue
                if elem.tag == ns + "page":
                    last_title = elem.findtext(ns + "title") or ""
                    page = _read_page(elem, ns, last_title, site, stats)
                    root.clear()  # drops this page (and every earlier one) from the tree
                    if page is not None:
                        yield page
                elif elem.tag == ns + "siteinfo":
                    site.prefixes = _namespace_prefixes(elem, ns)
                    root.clear()
                elif elem is root:
                    root_closed = True
            if progress:
                bar.update(min(raw.tell() - unit.start, total) - bar.n)
                bar.set_postfix(pages=stats.pages, refresh=False)
        if root is None:
            raise WitError(f"{where}: empty file, not a MediaWiki XML export")
        if unit.is_range and not root_closed:  # a range holds pages only; the last one also `</mediawiki>`
            parser.feed(b"</mediawiki>")
        parser.close()
        stats.compressed_bytes += total
    except EOFError as err:
        raise WitError(f"{where}: the bz2 stream ends early (truncated download?) {_after(last_title)}",
                       hint="download the dump again and check its sha1/md5 sum") from err
    except OSError as err:  # bz2 "Invalid data stream"
        raise WitError(f"{where}: cannot decompress ({err}) {_after(last_title)}",
                       hint="the file must be bzip2 (.xml.bz2) or plain XML") from err
    except ET.ParseError as err:
        line, column = err.position
        line -= header_lines
        raise WitError(f"{where}: malformed XML at line {line}, column {column} {_after(last_title)}",
                       hint="the file must be a complete MediaWiki pages-articles export") from err
    finally:
        bar.close()
        raw.close()


def _after(title: str | None) -> str:
    return f"(after page {title!r})" if title is not None else "(before the first page)"


def _namespace_prefixes(siteinfo: ET.Element, ns: str) -> set[str]:
    names = (el.text or "" for el in siteinfo.iter(ns + "namespace") if el.get("key") != "0")
    return {name.lower() for name in names if name}


def _read_page(page: ET.Element, ns: str, title: str, site: _Site, stats: DumpStats) -> Page | None:
    namespace = page.findtext(ns + "ns")
    if namespace is None:  # export schemas before 0.6 have no <ns>: infer from the title's prefix
        prefix, colon, _ = title.partition(":")
        namespace = "1" if colon and prefix.lower() in site.prefixes else "0"
    if namespace.strip() != "0":
        stats.other_namespace += 1
        return None
    text = page.findtext(f"{ns}revision/{ns}text") or ""
    redirect = page.find(ns + "redirect")
    target = redirect.get("title") if redirect is not None else None
    if target is None and (match := _REDIRECT_TEXT.match(text)):
        target = match.group(1).strip()
    if target is not None:
        stats.redirects += 1
        return Page(title=title, text="", redirect=target)
    if is_disambiguation(title, text):
        stats.disambiguation += 1
        return None
    stats.articles += 1
    return Page(title=title, text=text)
