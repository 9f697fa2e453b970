"""Scale: a generated multistream + multi-file dump on 2 Ray workers equals the plain single-process
counter. WIT_SCALE_MB sets the size (default 48 MB of XML, about a minute on 2 cores; the
benchmark, bench/queries.py, runs the same comparison on 200 MB)."""

from __future__ import annotations

import os

import pytest

from queries.count import count_dumps, count_phrases, count_phrases_in_texts, count_reference
from queries.dump import DumpUnit, plan_units
from queries.select import selectable_bigram
from queries.synth import generate

SCALE_MB = float(os.environ.get("WIT_SCALE_MB", "48"))


@pytest.fixture(scope="module")
def big_dump(excerpt, tmp_path_factory) -> list[str]:
    return generate(tmp_path_factory.mktemp("scale"), excerpt, total_mb=SCALE_MB, files=2)


@pytest.mark.slow
def test_two_ray_workers_equal_the_single_process_counter(ray_local, big_dump, capsys) -> None:
    units = plan_units(big_dump, range_bytes=1 << 20)
    assert sum(u.is_range for u in units) >= 6 and not units[-1].is_range  # ranges + 1 whole file
    on_ray = count_dumps(units, min_count=30, partitions=8, use_ray=True, progress=True)
    bar = capsys.readouterr().err  # the driver's bar: pages and decompressed MB/s, per finished unit
    assert "pass 1" in bar and "pages=" in bar and "MB/s" in bar

    reference = count_reference(big_dump)
    assert on_ray.stats.xml_bytes >= SCALE_MB * 1e6
    assert (on_ray.stats.articles, on_ray.stats.redirects, on_ray.stats.disambiguation) == (
        reference.stats.articles, reference.stats.redirects, reference.stats.disambiguation)
    assert on_ray.unigrams == reference.unigrams and on_ray.titles == reference.titles
    assert on_ray.bigram_positions == reference.bigram_positions
    frequent = {p: c for p, c in reference.bigrams.items() if c >= 30 and selectable_bigram(p, True)}
    assert on_ray.bigrams == frequent and len(frequent) > 1_000

    phrases = sorted(frequent)[:2_000] + ["united states", "constructive vote of no confidence"]
    # pass 2 on the texts pass 1 kept in the object store = pass 2 reading the dump files again
    from_texts = count_phrases_in_texts(on_ray.texts, phrases, use_ray=True)
    from_dump = count_phrases([DumpUnit(path) for path in big_dump], phrases, use_ray=False)
    assert from_texts == from_dump and from_texts["united states"] > 1_000
