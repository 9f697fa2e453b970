"""match_rows normalizes and matches a whole batch at once (find_queries_many); it must give exactly
what the definition gives text by text, unicode included: the query padded with spaces occurs in the
text normalized (queries.normalize) and padded with spaces."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import MatchConfig, PoolConfig
from pipeline.match import (
    QUERY_IDS,
    build_automaton,
    find_queries,
    find_queries_many,
    match_rows,
    pair_key,
    url_problem,
)
from queries.normalize import normalize

QUERIES = ["cat", "new york", "york city", "new york city", "café", "x-ray", "dog's", "ας", "σα", "fish",
           "ⅻ", "east", "1990", "a", "b c"]
AUTOMATON = build_automaton(pa.table({"query_id": list(range(len(QUERIES))), "query": QUERIES}))


def substring_ids(text: str | None) -> list[int]:
    """The definition of a match, by plain substring search."""
    padded = f" {normalize(text or '')} "
    return [i for i, q in enumerate(QUERIES) if f" {q} " in padded]


EMPTY = build_automaton(pa.table({"query_id": pa.array([], pa.int64()), "query": pa.array([], pa.string())}))

# Words of the queries, text that folds into them (case, NFKC, ’), line breaks and other separators,
# a final sigma on either side of a line break, combining marks, and arbitrary unicode.
PIECES = st.sampled_from(["cat", "Cat", "CAT", "new", "York", "city", "CAFE\u0301", "café", "x-ray", "X-RAY",
                          "dog’s", "dog's", "ΑΣ", "Σ", "ς", "σα", "ﬁsh", "Ⅻ", "ｅａｓｔ", "1990", "a", "b", "c",
                          " ", "  ", "\n", "\r\n", "\t", "\u2028", "\u00a0", "-", "'", "’", ".", ",", "_",
                          "\u0301", "\ue000", "\x00", "category", "🐈"])
TEXT = st.one_of(st.none(), st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=12).map("".join))


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXT, max_size=12))
def test_find_queries_many_equals_the_definition(texts):
    for automaton, expected in ((AUTOMATON, substring_ids), (EMPTY, lambda text: [])):
        has_words, rows, ids = find_queries_many(automaton, texts)
        assert has_words.tolist() == [bool(normalize(t or "")) for t in texts]
        for i, text in enumerate(texts):
            assert ids[rows == i].tolist() == expected(text), (text, texts)
            assert find_queries(automaton, text or "") == expected(text)


def reference_match_rows(automaton, batch: pa.Table, cfg: MatchConfig) -> tuple[pa.Table, Counter]:
    """match_rows as it was: one normalize and one substring search per row."""
    reasons: Counter = Counter()
    keep, keys, ids = [], [], []
    problems = batch["problem"].to_pylist() if "problem" in batch.column_names else None
    for i, (url, text) in enumerate(zip(batch["url"].to_pylist(), batch["text"].to_pylist())):
        reason = (problems and problems[i]) or url_problem(url, cfg.max_url_chars)
        if reason is None:
            if not normalize(text or ""):
                reason = "empty_text"
            elif len(text) > cfg.max_text_chars:
                reason = "text_too_long"
            elif found := substring_ids(text):
                keep.append(i)
                keys.append(pair_key(url, text))
                ids.append(found)
                continue
            else:
                reason = "no_match"
        reasons[reason] += 1
    reasons["matched"] += len(keep)
    kept = batch.take(pa.array(keep, pa.int64()))
    columns = {"key": pa.array(keys, pa.string()), "url": kept["url"], "text": kept["text"],
               "query_ids": pa.array(ids, QUERY_IDS), **{c: kept[c] for c in cfg.pool.keep_columns}}
    return pa.table(columns), reasons


URL = st.sampled_from(["http://example.org/a.jpg", "https://e.org/b.png", "ftp://e.org/c.jpg", "not a url",
                       None, "http://e.org/" + "x" * 60])
PROBLEM = st.sampled_from([None, None, None, "malformed_row"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(URL, TEXT, PROBLEM), max_size=16), st.booleans())
def test_match_rows_equals_per_row_reference(rows, with_problem):
    urls, texts, problems = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    columns = {"url": pa.array(urls, pa.string()), "text": pa.array(texts, pa.string()),
               "page": pa.array(range(len(rows)), pa.int64())}
    if with_problem:
        columns["problem"] = pa.array(problems, pa.string())
    batch = pa.table(columns)
    cfg = MatchConfig(pool=PoolConfig(keep_columns=("page",)), max_url_chars=50, max_text_chars=40)
    ours, reasons = match_rows(AUTOMATON, batch, cfg)
    expected, expected_reasons = reference_match_rows(AUTOMATON, batch, cfg)
    assert reasons == expected_reasons
    assert ours.schema == expected.schema
    assert ours.equals(expected)


def test_a_batch_of_long_and_odd_texts():
    texts = ["new york city " * 50, "", None, "ΑΣ\nΑ new\nyork", "\n\n", "cat\ndog’s", "Σ\n" * 3] * 7
    has_words, rows, ids = find_queries_many(AUTOMATON, texts)
    assert has_words.tolist() == [bool(normalize(t or "")) for t in texts]
    for i, text in enumerate(texts):
        assert ids[rows == i].tolist() == substring_ids(text)
    assert np.all(np.diff(rows) >= 0)
