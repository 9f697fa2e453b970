"""Multistream dumps: the index, byte ranges of whole bz2 streams, and what goes wrong with them.

The dumps are made by queries.synth from the real excerpt's pages (small here; see test_scale.py)."""

from __future__ import annotations

import bz2
import dataclasses
from pathlib import Path

import pytest

from queries.build import build
import queries.count
from queries.count import count_dumps, count_phrases, count_phrases_in_texts, count_reference
from queries.dump import DumpStats, DumpUnit, index_for, iter_pages, plan_units, stream_offsets
from queries.select import selectable_bigram
from queries.synth import generate, write_multistream
from core.errors import WitError


@pytest.fixture(scope="module")
def synth(excerpt, tmp_path_factory) -> list[str]:
    """2 multistream files (10 pages per stream) + 1 single-stream file, 7 MB of XML: the
    excerpt's pages, then a second copy of the first ones."""
    return generate(tmp_path_factory.mktemp("synth"), excerpt, total_mb=7, files=2, pages_per_stream=10)


def test_index_is_found_next_to_its_dump(tmp_path: Path) -> None:
    for dump, index in [("enwiki-20240601-pages-articles-multistream.xml.bz2",
                         "enwiki-20240601-pages-articles-multistream-index.txt.bz2"),
                        ("enwiki-20240601-pages-articles-multistream3.xml-p151574p311329.bz2",
                         "enwiki-20240601-pages-articles-multistream-index3.txt-p151574p311329.bz2")]:
        assert index_for(tmp_path / dump) is None  # no index file yet: the dump is one task
        (tmp_path / index).write_bytes(b"")
        assert index_for(tmp_path / dump) == tmp_path / index
    assert index_for(tmp_path / "enwiki-20240601-pages-articles1.xml-p1p41242.bz2") is None


def test_ranges_are_whole_streams_covering_the_file(synth: list[str]) -> None:
    units = plan_units(synth, range_bytes=20_000)
    for dump in synth[:2]:
        ranges = [u for u in units if u.path == dump]
        offsets = stream_offsets(index_for(dump), dump)
        assert len(ranges) >= 3 and ranges[0].start == ranges[0].header_end == offsets[0]
        assert all(a.end == b.start for a, b in zip(ranges, ranges[1:], strict=False))
        assert ranges[-1].end == Path(dump).stat().st_size
        assert {u.start for u in ranges} <= set(offsets)  # every range starts a stream
    assert units[-1] == DumpUnit(synth[2])  # the single-stream file is one unit


def test_ranges_read_the_same_pages_as_whole_files(synth: list[str]) -> None:
    by_range, by_file = DumpStats(), DumpStats()
    ranged = [(p.title, p.redirect, p.text) for u in plan_units(synth, 20_000) for p in iter_pages(u, by_range)]
    whole = [(p.title, p.redirect, p.text) for d in synth for p in iter_pages(d, by_file)]
    assert ranged == whole and len(whole) > 100
    assert ("Anarchism 1", None) in {(t, r) for t, r, _ in whole}  # titles varied per copy
    assert ("AccessibleComputing 1", "Computer accessibility 1") in {(t, r) for t, r, _ in whole}
    assert (by_range.articles, by_range.redirects, by_range.disambiguation) == (
        by_file.articles, by_file.redirects, by_file.disambiguation)


def test_map_reduce_over_ranges_equals_reference_counter(synth: list[str]) -> None:
    counts = count_dumps(plan_units(synth, 20_000), min_count=5, partitions=3, use_ray=False)
    reference = count_reference(synth)
    assert counts.unigrams == reference.unigrams and counts.titles == reference.titles
    assert counts.bigram_positions == reference.bigram_positions
    assert counts.bigrams == {p: c for p, c in reference.bigrams.items() if c >= 5 and selectable_bigram(p, True)}
    assert "anarchism 1" in counts.titles and counts.unigrams["anarchism"] > 100


def test_pass_2_on_kept_texts_equals_reading_the_dump(synth: list[str], monkeypatch) -> None:
    counts = count_dumps(plan_units(synth, 20_000), min_count=5, partitions=3, use_ray=False)
    phrases = sorted(counts.bigrams)[:500] + ["united states", "the united", "constructive vote of no confidence"]
    monkeypatch.setattr(queries.count, "TEXT_CHUNK", 997)  # chunk edges inside lines and UTF-8 characters
    from_texts = count_phrases_in_texts(counts.texts, phrases, use_ray=False)
    from_dump = count_phrases([DumpUnit(d) for d in synth], phrases, use_ray=False)
    assert from_texts == from_dump and from_texts["united states"] > 100 and from_texts["the united"] > 100
    assert sum(len(t) for t in counts.texts) < sum(Path(d).stat().st_size for d in synth)  # kept: smaller than the dump


def _copy_multistream(dump: str, tmp_path: Path) -> tuple[Path, Path]:
    src = Path(dump)
    out = tmp_path / src.name
    out.write_bytes(src.read_bytes())
    index = tmp_path / index_for(src).name
    index.write_bytes(index_for(src).read_bytes())
    return out, index


def test_index_pointing_past_the_end(synth: list[str], tmp_path: Path) -> None:
    dump, index = _copy_multistream(synth[0], tmp_path)
    lines = bz2.decompress(index.read_bytes()).decode()
    index.write_bytes(bz2.compress((lines + f"{dump.stat().st_size + 5000}:99999:Beyond\n").encode()))
    with pytest.raises(WitError, match=rf"{index.name}, line \d+: offset \d+ points past the end of .*{dump.name}"):
        plan_units([str(dump)], 20_000)


def test_index_offsets_that_start_no_stream_or_go_backwards(synth: list[str], tmp_path: Path) -> None:
    dump, index = _copy_multistream(synth[0], tmp_path)
    lines = bz2.decompress(index.read_bytes()).decode().splitlines(keepends=True)
    first = int(lines[0].split(":")[0])
    index.write_bytes(bz2.compress(f"{first + 7}:1:Shifted\n".encode()))
    with pytest.raises(WitError, match=rf"offset {first + 7} is not the start of a bz2 stream in .*{dump.name}"):
        plan_units([str(dump)], 20_000)
    index.write_bytes(bz2.compress("".join([lines[-1], lines[0]]).encode()))
    with pytest.raises(WitError, match=r"line 2: offset \d+ goes backwards"):
        plan_units([str(dump)], 20_000)
    index.write_bytes(bz2.compress(b"not an index\n"))
    with pytest.raises(WitError, match=r"line 1: not a multistream index line"):
        plan_units([str(dump)], 20_000)


def test_truncated_multistream_names_file_and_range(synth: list[str], tmp_path: Path, demo) -> None:
    dump, index = _copy_multistream(synth[0], tmp_path)
    last = stream_offsets(index, dump)[-1]
    dump.write_bytes(dump.read_bytes()[: last + 200])  # the index is intact, the last stream is cut
    units = plan_units([str(dump)], 20_000)
    with pytest.raises(WitError, match=rf"{dump.name} \[bytes \d+-{last + 200}\): the bz2 stream ends early"):
        for unit in units:
            list(iter_pages(unit))
    # a build on it fails with that message and leaves no output that looks complete
    cfg = dataclasses.replace(demo, dumps=(str(dump),), stream_range_bytes=20_000)
    with pytest.raises(WitError, match="the bz2 stream ends early"):
        build(cfg, tmp_path / "q.parquet", use_ray=False, progress=False)
    assert list(tmp_path.glob("q.parquet*")) == []


def test_malformed_xml_in_a_range_names_file_range_line_and_page(excerpt: str, tmp_path: Path) -> None:
    header = bz2.decompress(Path(excerpt).read_bytes()).decode().split("  <page>", 1)[0]
    good = "  <page>\n    <title>Cat</title>\n    <ns>0</ns>\n    <revision><text>The cat.</text></revision>\n  </page>\n"
    pages = [(1, "Cat", good), (2, "Dog", "  <page>\n    <title>Dog</titl>\n  </page>\n")]
    dump = tmp_path / "bad-pages-articles-multistream.xml.bz2"
    write_multistream(dump, header, pages, pages_per_stream=1)
    (unit_ok, unit_bad) = plan_units([str(dump)], 1)
    assert [p.title for p in iter_pages(unit_ok)] == ["Cat"]
    with pytest.raises(WitError, match=rf"{dump.name} \[bytes \d+-\d+\): malformed XML at line 2"):
        list(iter_pages(unit_bad))
    with pytest.raises(WitError, match=r"malformed XML at line \d+, column \d+ \(after page 'Cat'\)"):
        list(iter_pages(dump))


def test_build_output_does_not_depend_on_the_split(synth: list[str], demo, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from core.artifacts import read_provenance

    cfg = dataclasses.replace(demo, dumps=tuple(synth[:1]), stream_range_bytes=20_000, bigram_partitions=5)
    fine = build(cfg, tmp_path / "fine.parquet", use_ray=False, progress=False)
    coarse = build(dataclasses.replace(cfg, stream_range_bytes=1 << 30, bigram_partitions=1),
                   tmp_path / "coarse.parquet", use_ray=False, progress=False)
    assert pq.read_table(fine).equals(pq.read_table(coarse))  # the same list, however it was split
    inputs = [Path(i["path"]).name for i in read_provenance(fine)["inputs"]]
    assert inputs == [Path(synth[0]).name, index_for(synth[0]).name, "index.noun"]
    assert "anarchism" in {row["query"] for row in pq.read_table(fine, columns=["query"]).to_pylist()}
