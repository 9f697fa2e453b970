"""A generated multistream, multi-file dump for scale tests and benchmarks, made of real pages.

The pages of a real excerpt are replicated with varied titles ("Anarchism" -> "Anarchism 3" in copy
3, redirects renamed alike, page ids renumbered) and written as real `pages-articles-multistream`
files: a first bz2 stream with `<mediawiki>` and `<siteinfo>`, then independent streams of
`pages_per_stream` pages, then `</mediawiki>` in a last stream, and next to each file its
`…-multistream-index*.txt.bz2` (`offset:page_id:title` lines), as Wikimedia publishes them.
Optionally one more file is an ordinary single-stream `.xml.bz2` (one Ray task for the whole file).

    python -m queries.synth OUT_DIR --mb 200 --files 2 --single-stream
"""

from __future__ import annotations

import argparse
import bz2
import html
import re
from collections.abc import Iterator
from pathlib import Path

from queries.config import demo_config

_PAGE = re.compile(r"  <page>\n.*?\n  </page>\n", re.DOTALL)
_TITLE = re.compile(r"<title>(.*?)</title>")
_ID = re.compile(r"<id>\d+</id>")
_REDIRECT = re.compile(r'<redirect title="(.*?)" />')


def _source(excerpt: str | Path) -> tuple[str, list[str]]:
    xml = bz2.decompress(Path(excerpt).read_bytes()).decode()
    pages = _PAGE.findall(xml)
    header = xml[: xml.index("  <page>")]
    return header, pages


def _copies(pages: list[str], target_bytes: int) -> Iterator[tuple[int, str, str]]:
    """(page_id, title, page XML) until `target_bytes` of page XML have been produced."""
    made, copy, page_id = 0, 0, 0
    while True:
        for page in pages:
            if made >= target_bytes:
                return
            page_id += 1
            suffix = f" {copy}" if copy else ""
            page = _TITLE.sub(lambda m: f"<title>{m.group(1)}{suffix}</title>", page, count=1)
            page = _REDIRECT.sub(lambda m: f'<redirect title="{m.group(1)}{suffix}" />', page, count=1)
            page = _ID.sub(f"<id>{page_id}</id>", page, count=1)
            title = html.unescape(_TITLE.search(page).group(1))
            made += len(page.encode())
            yield page_id, title, page
        copy += 1


def write_multistream(path: Path, header: str, pages: list[tuple[int, str, str]],
                      pages_per_stream: int = 100) -> Path:
    """`path` and its index; returns the index path."""
    name = path.name.replace("-multistream", "-multistream-index", 1).replace(".xml", ".txt", 1)
    index_lines: list[str] = []
    with open(path, "wb") as out:
        out.write(bz2.compress(header.encode()))
        for i in range(0, len(pages), pages_per_stream):
            offset = out.tell()
            chunk = pages[i : i + pages_per_stream]
            index_lines += (f"{offset}:{page_id}:{title}\n" for page_id, title, _ in chunk)
            out.write(bz2.compress("".join(page for _, _, page in chunk).encode()))
        out.write(bz2.compress(b"</mediawiki>\n"))
    index = path.with_name(name)
    index.write_bytes(bz2.compress("".join(index_lines).encode()))
    return index


def generate(out_dir: str | Path, excerpt: str | Path, total_mb: float, files: int = 2,
             single_stream: bool = True, pages_per_stream: int = 100) -> list[str]:
    """Write about `total_mb` MB (10^6 bytes) of uncompressed page XML over `files` multistream
    files (+1 single-stream file when `single_stream`); returns the dump paths, in order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, pages = _source(excerpt)
    every = list(_copies(pages, int(total_mb * 1e6)))
    parts = files + (1 if single_stream else 0)
    size = -(-len(every) // parts)
    dumps = []
    for part in range(parts):
        chunk = every[part * size : (part + 1) * size]
        first, last = chunk[0][0], chunk[-1][0]
        if part < files:
            path = out / f"synthwiki-pages-articles-multistream{part + 1}.xml-p{first}p{last}.bz2"
            write_multistream(path, header, chunk, pages_per_stream)
        else:
            path = out / f"synthwiki-pages-articles{part + 1}.xml-p{first}p{last}.bz2"
            xml = header + "".join(page for _, _, page in chunk) + "</mediawiki>\n"
            path.write_bytes(bz2.compress(xml.encode()))
        dumps.append(str(path))
    return dumps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--mb", type=float, default=200, help="uncompressed MB of page XML")
    parser.add_argument("--files", type=int, default=2, help="multistream files")
    parser.add_argument("--single-stream", action="store_true", help="one more, single-stream file")
    parser.add_argument("--excerpt", default=demo_config().dumps[0], help="the real pages to replicate")
    args = parser.parse_args()
    for path in generate(args.out_dir, args.excerpt, args.mb, args.files, args.single_stream):
        print(path)


if __name__ == "__main__":
    main()
