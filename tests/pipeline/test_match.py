"""match on hand-made pools whose answer is known, on a real local Ray."""

from __future__ import annotations

import glob
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import MatchConfig, PoolConfig
from pipeline.match import build_automaton, find_queries, match, pair_key
from tests.pipeline.helpers import write_pool, write_queries
from core.errors import WitError

QUERIES = ["cat", "new york", "york city", "new york city", "café", "x-ray", "dog"]
QID = {q: i for i, q in enumerate(QUERIES)}


def ids(*names: str) -> list[int]:
    return sorted(QID[n] for n in names)


def read_matched(out_dir) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{out_dir}/part-*.parquet"))])


def test_find_queries_whole_words_unicode_overlaps():
    automaton = build_automaton(pa.table({"query_id": list(range(len(QUERIES))), "query": QUERIES}))
    assert find_queries(automaton, "A cat on a mat") == ids("cat")
    assert find_queries(automaton, "Category theory, concatenation, cats") == []
    assert find_queries(automaton, "cat!") == ids("cat")  # punctuation is not part of the word
    assert find_queries(automaton, "(Cat)") == ids("cat")
    assert find_queries(automaton, "NEW YORK CITY at night") == ids("new york", "york city", "new york city")
    assert find_queries(automaton, "new   york") == ids("new york")  # whitespace normalized
    assert find_queries(automaton, "newyork city") == []
    assert find_queries(automaton, "Un CAFÉ noir") == ids("café")
    assert find_queries(automaton, "Cafe\u0301 au lait") == ids("café")  # NFKC: e + combining accent
    assert find_queries(automaton, "an X-ray of a dog's paw") == ids("x-ray")  # "dog's" is one word
    assert find_queries(automaton, "cat cat dog cat") == ids("cat", "dog")  # unique, sorted


def test_match_stage_reasons_keys_and_rerun(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    good = "http://example.org/a.jpg"
    rows = [
        (good, "a cat on a mat"),  # matched
        (good, "a cat on a mat"),  # duplicate of the first
        (good, "A CAT on a mat"),  # same url, other text: its own pair, counted in duplicate_url_rows
        ("http://example.org/b.jpg", "a cat on a mat"),  # same text, other url: its own pair
        ("https://example.org/c.jpg", "New York City skyline"),  # matched, three queries
        ("ftp://example.org/d.jpg", "a cat"),  # invalid_url (scheme)
        ("not a url", "a cat"),  # invalid_url
        (None, "a cat"),  # invalid_url
        ("http://example.org/" + "x" * 3000, "a cat"),  # url_too_long
        ("http://example.org/e.jpg", "   ...  "),  # empty_text
        ("http://example.org/f.jpg", None),  # empty_text
        ("http://example.org/g.jpg", "cat " * 300),  # text_too_long
        ("http://example.org/h.jpg", "a category of things"),  # no_match
    ]
    pool = write_pool(tmp_path / "pool.parquet", [r[0] for r in rows], [r[1] for r in rows])
    out = tmp_path / "matched"
    stats = match((pool,), queries, str(out), MatchConfig(range_target_bytes=200))

    assert stats["input_rows"] == len(rows)
    assert stats["output_rows"] == 4
    assert stats["dropped"] == {
        "malformed_row": 0,
        "invalid_url": 3,
        "url_too_long": 1,
        "empty_text": 2,
        "text_too_long": 1,
        "no_match": 1,
        "duplicate": 1,
    }
    assert stats["duplicate_url_rows"] == 2  # the two texts of `good`
    assert json.loads((out / "stats.json").read_text()) == stats
    assert (out / "_SUCCESS.json").exists()
    table = read_matched(out)
    assert table.schema.field("query_ids").type == pa.list_(pa.int32())
    assert table["key"].to_pylist() == sorted(table["key"].to_pylist())  # parts read in order = key order
    by_url = {r["url"]: r for r in table.to_pylist() if r["text"] != "A CAT on a mat"}
    assert by_url[good]["key"] == pair_key(good, "a cat on a mat")
    assert len(by_url[good]["key"]) == 32
    assert by_url["https://example.org/c.jpg"]["query_ids"] == ids("new york", "york city", "new york city")
    assert by_url["https://example.org/c.jpg"]["text"] == "New York City skyline"  # original text kept

    # A rerun with the same inputs and config reuses the finished output.
    mtime = (out / "_SUCCESS.json").stat().st_mtime_ns
    assert match((pool,), queries, str(out), MatchConfig(range_target_bytes=200)) == stats
    assert (out / "_SUCCESS.json").stat().st_mtime_ns == mtime
    # Another config recomputes.
    again = match((pool,), queries, str(out), MatchConfig(range_target_bytes=500, max_text_chars=5000))
    assert again["dropped"]["text_too_long"] == 0 and again["output_rows"] == 5


def test_pool_formats_columns_and_kept_columns(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    (tmp_path / "a.tsv").write_text('URL\tTEXT\nhttp://e.org/1.jpg\ta "cat" here\nhttp://e.org/2.jpg\tno\n')
    (tmp_path / "b.csv").write_text("url,alt,page\nhttp://e.org/3.jpg,a dog,p3\n")
    (tmp_path / "c.jsonl").write_text('{"url": "http://e.org/4.jpg", "text": "x-ray"}\n\n')
    stats = match(
        (str(tmp_path / "a.tsv"), str(tmp_path / "b.csv"), str(tmp_path / "c.jsonl")),
        queries,
        str(tmp_path / "m"),
        MatchConfig(),
    )
    assert stats["input_rows"] == 4 and stats["output_rows"] == 3
    table = read_matched(tmp_path / "m")
    assert sorted(table["text"].to_pylist()) == ['a "cat" here', "a dog", "x-ray"]

    pool = write_pool(tmp_path / "p.parquet", ["http://e.org/5.jpg"], ["cat"], page=["p5"])
    match((pool,), queries, str(tmp_path / "k"), MatchConfig(pool=PoolConfig(keep_columns=("page",))))
    assert read_matched(tmp_path / "k").select(["url", "page"]).to_pylist() == [
        {"url": "http://e.org/5.jpg", "page": "p5"}
    ]


def test_bad_inputs_are_wit_errors(ray_local, tmp_path):
    queries = write_queries(tmp_path / "queries.parquet", QUERIES)
    out = str(tmp_path / "out")
    empty = write_pool(tmp_path / "empty.parquet", [], [])
    with pytest.raises(WitError, match="empty"):
        match((empty,), queries, out, MatchConfig())
    pq.write_table(pa.table({"link": ["http://e.org/1.jpg"], "caption": ["cat"]}), tmp_path / "nourl.parquet")
    with pytest.raises(WitError, match=r"nourl.parquet has no url column.*\['link', 'caption'\]"):
        match((str(tmp_path / "nourl.parquet"),), queries, out, MatchConfig())
    with pytest.raises(WitError, match="does not exist"):
        match((str(tmp_path / "missing.parquet"),), queries, out, MatchConfig())
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(WitError, match="corrupt.parquet"):
        match((str(tmp_path / "corrupt.parquet"),), queries, out, MatchConfig())
    pool = write_pool(tmp_path / "pool.parquet", ["http://e.org/1.jpg"], ["cat"])
    pq.write_table(pa.table({"word": ["cat"]}), tmp_path / "badq.parquet")
    with pytest.raises(WitError, match="badq.parquet"):
        match((pool,), str(tmp_path / "badq.parquet"), out, MatchConfig())
    with pytest.raises(WitError):
        match((pool,), str(tmp_path / "noq.parquet"), out, MatchConfig())
