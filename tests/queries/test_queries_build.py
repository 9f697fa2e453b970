"""`queries.build` on the vendored excerpt: sources, exclusions, ranking, caps, reuse, provenance."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from queries.build import build
from queries.schema import SCHEMA, read_queries
from queries.select import Query, cap, per_source, rank
from core.artifacts import read_provenance
from core.errors import WitError


@pytest.fixture(scope="module")
def built(demo, tmp_path_factory) -> Path:
    """One in-process build of the demo config, shared by the module (Ray is tested elsewhere)."""
    return build(demo, tmp_path_factory.mktemp("queries") / "queries.parquet", use_ray=False, progress=False)


@pytest.fixture(scope="module")
def by_text(built) -> dict[str, dict]:
    return {row["query"]: row for row in read_queries(built).to_pylist()}


def test_schema_and_ids(built) -> None:
    table = read_queries(built)
    assert table.schema.remove_metadata() == SCHEMA
    assert table.column("query_id").to_pylist() == list(range(table.num_rows))
    assert 10_000 < table.num_rows <= 20_000


def test_each_source_contributes_real_queries(by_text) -> None:
    # every frequent word is kept, function words included (the paper keeps all words >= 100)
    assert by_text["the"]["sources"] == ["word"] and by_text["the"]["query_id"] == 0
    # a multi-word name found by PMI, also a WordNet noun
    assert by_text["united states"]["sources"] == ["bigram", "wordnet"]
    assert by_text["united states"]["pmi"] > 5
    assert by_text["continental congress"]["sources"] == ["bigram"]
    assert "1 000" not in by_text  # "1,000": number formatting, not a phrase
    # article titles, single- and multi-word; "Animalia (book)" loses its qualifier
    assert by_text["anarchism"]["sources"] == ["title", "word"]
    assert "title" in by_text["constructive vote of no confidence"]["sources"]  # from the table file
    assert "title" in by_text["alkali metal"]["sources"] and "bigram" in by_text["alkali metal"]["sources"]
    assert "animalia" in by_text and "animalia book" not in by_text
    # WordNet nouns, even those the excerpt never mentions
    assert by_text["dog"]["sources"] == ["word", "wordnet"]
    never_seen = by_text["post office"]
    assert (never_seen["sources"], never_seen["count"], never_seen["pmi"]) == (["wordnet"], 0, None)


def test_counts_and_pmi_are_consistent(by_text) -> None:
    for row in by_text.values():
        assert (row["pmi"] is not None) == ("bigram" in row["sources"])
        assert row["count"] >= 0 and row["sources"] == sorted(row["sources"])
    assert by_text["the"]["count"] > 30_000
    assert by_text["ice cream"]["count"] >= 1  # a multi-word WordNet lemma counted in the text


def test_markup_never_becomes_a_query(by_text) -> None:
    from_text = {q for q, row in by_text.items() if row["sources"] != ["wordnet"]}
    markup = {"ref", "nbsp", "cite", "http", "https", "www", "com", "url", "thumb", "px", "jpg", "isbn",
              "infobox", "reflist", "defaultsort", "redr", "wikitable", "colspan", "accessdate", "cite web"}
    assert from_text & markup == set()
    # bigrams are not phrase fragments with a function word at either end
    assert "of the" not in by_text and "in the" not in by_text


def test_rank_is_count_then_text(built) -> None:
    rows = read_queries(built).select(["query", "count"]).to_pylist()
    keys = [(-r["count"], r["query"]) for r in rows]
    assert keys == sorted(keys)


def test_rebuild_is_identical_and_reuse_skips_work(built, demo, tmp_path, caplog) -> None:
    again = build(demo, tmp_path / "queries.parquet", use_ray=False, progress=False)
    first, second = pq.read_table(built), pq.read_table(again)
    assert first.column("query").equals(second.column("query")) and first.equals(second)
    mtime = os.stat(again).st_mtime_ns
    with caplog.at_level(logging.INFO, logger="queries.build"):
        assert build(demo, again, use_ray=False, progress=False) == again
    assert "reusing" in caplog.text and os.stat(again).st_mtime_ns == mtime
    # another config (a stricter threshold, on the small file alone to keep it quick) is rebuilt
    stricter = dataclasses.replace(demo, dumps=demo.dumps[1:], min_word_count=demo.min_word_count * 5)
    build(stricter, again, use_ray=False, progress=False)
    assert read_provenance(again)["config"]["min_word_count"] == stricter.min_word_count
    assert read_queries(again).num_rows < first.num_rows


def test_provenance_metadata(built, demo) -> None:
    record = read_provenance(built)
    assert record["stage"] == "queries"
    assert record["config"]["min_word_count"] == demo.min_word_count
    assert [Path(i["path"]).name for i in record["inputs"]] == [
        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
        "enwiki-table-markup.xml.bz2", "index.noun"]
    assert record["inputs"][0]["bytes"] == 1_695_871
    counts = record["counts"]
    assert set(counts["before_caps"]) == {"word", "bigram", "title", "wordnet"}
    assert all(counts["before_caps"][s] >= counts["after_caps"][s] > 0 for s in counts["before_caps"])
    assert record["dump_stats"]["articles"] == 103 and "pyarrow" in record["versions"]


def test_caps_and_quotas(built, demo) -> None:
    ranked = rank(Query(r["query"], tuple(r["sources"]), r["count"], r["pmi"])
                  for r in read_queries(built).to_pylist())
    kept = cap(ranked, dataclasses.replace(demo, max_queries=500, max_words=100))
    assert len(kept) == 500 and kept == [q for q in ranked if q in set(kept)]  # rank order kept
    assert sum(1 for q in kept if q.sources == ("word",)) <= 100
    assert per_source(kept)["word"] >= 100  # words beyond the quota only ride on another source
    assert cap(ranked, dataclasses.replace(demo, max_queries=10)) == ranked[:10]


def test_bad_inputs_fail_before_counting(demo, tmp_path) -> None:
    with pytest.raises(WitError, match="dump file not found"):
        build(dataclasses.replace(demo, dumps=(str(tmp_path / "nope.bz2"),)), tmp_path / "q.parquet")
    with pytest.raises(WitError, match="no index.noun"):
        build(dataclasses.replace(demo, wordnet_dir=str(tmp_path)), tmp_path / "q.parquet")
    assert not (tmp_path / "q.parquet").exists()


def test_read_queries_says_what_is_wrong(built, tmp_path) -> None:
    with pytest.raises(WitError, match="queries file not found"):
        read_queries(tmp_path / "absent.parquet")
    (tmp_path / "text.parquet").write_text("query\ncat\n")
    with pytest.raises(WitError, match="not a readable Parquet file"):
        read_queries(tmp_path / "text.parquet")
    table = pq.read_table(built)
    pq.write_table(table.drop_columns(["pmi", "sources"]), tmp_path / "cols.parquet")
    with pytest.raises(WitError, match="missing column 'sources'; missing column 'pmi'"):
        read_queries(tmp_path / "cols.parquet")
    wrong = table.set_column(3, "count", table.column("count").cast(pa.string()))
    pq.write_table(wrong, tmp_path / "types.parquet")
    with pytest.raises(WitError, match="column 'count' is string, expected int64"):
        read_queries(tmp_path / "types.parquet")
    pq.write_table(table.slice(1), tmp_path / "ids.parquet")
    with pytest.raises(WitError, match="query_id must be 0..*in row order"):
        read_queries(tmp_path / "ids.parquet")
