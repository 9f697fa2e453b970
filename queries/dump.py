"""Stream the article pages out of a MediaWiki XML dump, without ever holding the dump in memory.

A dump is `pages-articles*.xml.bz2` (single- or multi-stream; `bz2` reads concatenated streams as
one) or the same XML uncompressed. Pages are parsed one at a time with `iterparse`, and every page
element is dropped from the tree as soon as it has been read, so memory stays at one page.

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
from typing import IO

from tqdm import tqdm

from wit.errors import WitError

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


@dataclass
class DumpStats:
    """Pages read from a dump, by what became of them."""

    articles: int = 0
    redirects: int = 0
    disambiguation: int = 0  # skipped: disambiguation or set-index page
    other_namespace: int = 0  # skipped: talk, user, template, category... pages
    compressed_bytes: int = 0

    def merge(self, other: DumpStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Site:
    """What <siteinfo> says, or English Wikipedia's defaults when a dump has none."""

    prefixes: set[str] = field(default_factory=lambda: set(_DEFAULT_PREFIXES))


def is_disambiguation(title: str, text: str) -> bool:
    return title.endswith("(disambiguation)") or _DISAMBIGUATION.search(text) is not None


def _open(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(raw file for progress, decompressed stream); bz2 is recognized by its magic bytes."""
    if not path.is_file():
        raise WitError(f"dump file not found: {path}", hint="pass an enwiki pages-articles*.xml.bz2 file")
    raw = open(path, "rb")
    magic = raw.read(3)
    raw.seek(0)
    return raw, (bz2.BZ2File(raw) if magic == b"BZh" else raw)


def iter_pages(path: str | Path, stats: DumpStats | None = None, progress: bool = False) -> Iterator[Page]:
    """Articles and redirects of namespace 0, in dump order; other pages are counted in `stats`.

    Raises WitError naming the file (and the last page read) for a missing file, a truncated or
    corrupt bz2 stream, malformed XML, or XML that is not a MediaWiki export.
    """
    path = Path(path)
    stats = stats if stats is not None else DumpStats()
    raw, stream = _open(path)
    last_title = None
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name[:40],
               disable=not progress, leave=False)
    try:
        events = ET.iterparse(stream, events=("start", "end"))
        _, root = next(events)
        if root.tag.rsplit("}", 1)[-1] != "mediawiki":
            raise WitError(f"{path}: not a MediaWiki XML export (root element <{root.tag}>)",
                           hint="expected <mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.10/\">")
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        site = _Site()
        for event, elem in events:
            if event != "end":
                continue
            if elem.tag == ns + "siteinfo":
                site.prefixes = _namespace_prefixes(elem, ns)
                root.clear()
            elif elem.tag == ns + "page":
                last_title = elem.findtext(ns + "title") or ""
                page = _read_page(elem, ns, last_title, site, stats)
                root.clear()  # drops this page (and every earlier one) from the tree
                bar.update(raw.tell() - bar.n)
                bar.set_postfix(pages=stats.articles + stats.redirects, refresh=False)
                if page is not None:
                    yield page
        stats.compressed_bytes += raw.tell()
    except EOFError as err:
        raise WitError(f"{path}: the bz2 stream ends early (truncated download?) {_after(last_title)}",
                       hint="download the dump again and check its sha1/md5 sum") from err
    except OSError as err:  # bz2 "Invalid data stream"
        raise WitError(f"{path}: cannot decompress ({err}) {_after(last_title)}",
                       hint="the file must be bzip2 (.xml.bz2) or plain XML") from err
    except ET.ParseError as err:
        line, column = err.position
        raise WitError(f"{path}: malformed XML at line {line}, column {column} {_after(last_title)}",
                       hint="the file must be a complete MediaWiki pages-articles export") from err
    except StopIteration as err:  # not even a root element
        raise WitError(f"{path}: empty file, not a MediaWiki XML export") from err
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
