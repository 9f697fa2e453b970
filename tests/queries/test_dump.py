"""Streaming pages out of dumps: what is kept, what is skipped and why, and bad inputs."""

from __future__ import annotations

import bz2
from pathlib import Path

import pytest

from queries.count import FileCounts, count_file
from queries.dump import DumpStats, is_disambiguation, iter_pages
from core.errors import WitError


@pytest.fixture(scope="module")
def excerpt_counts(excerpt: str) -> FileCounts:
    return count_file(excerpt)


def test_excerpt_pages_by_fate(excerpt: str) -> None:
    stats = DumpStats()
    pages = list(iter_pages(excerpt, stats))
    # 206 pages: 98 articles, 99 redirects in namespace 0, 8 disambiguation pages, 1 Wikipedia: page
    assert (stats.articles, stats.redirects, stats.disambiguation, stats.other_namespace) == (98, 99, 8, 1)
    assert len(pages) == 98 + 99
    assert pages[1].title == "Anarchism" and pages[1].redirect is None


def test_redirects_are_title_aliases_not_text(excerpt: str, excerpt_counts: FileCounts) -> None:
    first = next(iter_pages(excerpt))
    assert (first.title, first.text, first.redirect) == ("AccessibleComputing", "", "Computer accessibility")
    counts = excerpt_counts
    assert "accessiblecomputing" in counts.titles
    # the redirect's own wikitext ("#REDIRECT [[...]] {{Redr|move|from CamelCase|up}}") is not text
    assert "redr" not in counts.unigrams and "camelcase" not in counts.unigrams


def test_disambiguation_pages_are_skipped(excerpt: str, excerpt_counts: FileCounts) -> None:
    titles = {p.title for p in iter_pages(excerpt)}
    assert {"Alien", "Ada", "Aberdeen (disambiguation)", "Aa River"}.isdisjoint(titles)
    assert "alien" not in excerpt_counts.titles
    assert is_disambiguation("Mercury", "'''Mercury''' may refer to:\n{{Disambiguation|geo}}")
    assert is_disambiguation("Smith", "text\n{{surname}}")
    assert is_disambiguation("X", "text\n{{set index article}}")
    assert not is_disambiguation("Dab (dance)", "{{Dablink|x}} The dab is a dance.")


def test_table_markup_file_without_siteinfo(table_markup: str) -> None:
    titles = [p.title for p in iter_pages(table_markup)]
    assert titles == ["Constructive vote of no confidence", "List of Prison Break characters",
                      "Academy Award for Best Production Design", "Economy of Estonia", "Brahui language"]


def test_other_export_versions_uncompressed_and_multistream(tmp_path: Path, xml_dump) -> None:
    xml = xml_dump.mediawiki(xml_dump.page("Cat", "The cat sat."), xml_dump.page("Talk:Cat", "chat", ns=1),
                             xml_dump.page("Kitty", "", redirect="Cat"))
    plain = tmp_path / "dump.xml"
    plain.write_text(xml)
    assert [(p.title, p.redirect) for p in iter_pages(plain)] == [("Cat", None), ("Kitty", "Cat")]
    # a multistream dump is several bz2 streams back to back
    body = xml.split("<page>", 1)
    multi = tmp_path / "multistream.xml.bz2"
    multi.write_bytes(bz2.compress(body[0].encode()) + bz2.compress(("<page>" + body[1]).encode()))
    assert [p.title for p in iter_pages(multi)] == ["Cat", "Kitty"]
    # export 0.5 has no <ns>: the namespace comes from the title prefix
    old = tmp_path / "old.xml"
    old.write_text(xml.replace("<ns>0</ns>", "").replace("<ns>1</ns>", ""))
    assert [p.title for p in iter_pages(old)] == ["Cat", "Kitty"]


def test_truncated_bz2_names_the_file_and_last_page(tmp_path: Path, excerpt: str) -> None:
    truncated = tmp_path / "truncated.xml.bz2"
    truncated.write_bytes(Path(excerpt).read_bytes()[:1_000_000])  # bz2 blocks hold ~900 kB of XML
    seen = []
    with pytest.raises(WitError, match=r"truncated\.xml\.bz2: the bz2 stream ends early") as err:
        seen.extend(p.title for p in iter_pages(truncated))
    assert seen, "the pages before the damage are read"
    assert "(after page '" in str(err.value)


def test_malformed_xml_names_file_line_and_page(tmp_path: Path, xml_dump) -> None:
    xml = xml_dump.mediawiki(xml_dump.page("Cat", "ok")).replace("</mediawiki>", "")
    bad = xml_dump.write_bz2(tmp_path / "bad.xml.bz2", xml + "\n<page><title>Dog</titl></page>")
    with pytest.raises(WitError, match=r"bad\.xml\.bz2: malformed XML at line 2.*after page 'Cat'"):
        list(iter_pages(bad))


def test_non_wikipedia_xml_is_refused(tmp_path: Path, xml_dump) -> None:
    rss = xml_dump.write_bz2(tmp_path / "feed.xml.bz2", "<rss><channel><title>x</title></channel></rss>")
    with pytest.raises(WitError, match=r"feed\.xml\.bz2: not a MediaWiki XML export \(root element <rss>\)"):
        list(iter_pages(rss))


def test_missing_and_non_bz2_files(tmp_path: Path) -> None:
    with pytest.raises(WitError, match="dump file not found"):
        list(iter_pages(tmp_path / "nope.xml.bz2"))
    garbage = tmp_path / "garbage.xml.bz2"
    garbage.write_bytes(b"BZh9" + b"\x00" * 100)
    with pytest.raises(WitError, match=r"garbage\.xml\.bz2: cannot decompress"):
        list(iter_pages(garbage))
