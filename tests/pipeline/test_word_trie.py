"""pipeline.word_trie against the definition of a match: `" " + query + " "` occurs in
`" " + queries.normalize.normalize(text) + " "`, checked by plain substring search."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.word_trie import ascii_tokens, build_trie, find_in_batch
from queries.normalize import normalize, tokens

# Pieces that stress the ASCII path: case, ' and - in every position, the line marks, separators.
ASCII_PIECES = st.sampled_from(["cat", "CAT", "x-ray", "-x-", "--", "'", "''", "dog's", "dogs'", "'n'", "a'-b",
                                "new", "york", "city", "a", "b", "c", "1990", " ", "\n", "\r\n", "\t", "\x01",
                                "\x00", "_", "a_b", ".", ",", "category", "\x7f"])
ASCII_TEXT = st.lists(st.one_of(ASCII_PIECES, st.text(st.characters(max_codepoint=127), max_size=5)),
                      max_size=10).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(ASCII_TEXT, max_size=8))
def test_ascii_tokens_equal_normalize_tokens(texts):
    expected = [w for t in texts for w in [*tokens(t), "\x01"]]
    assert ascii_tokens(texts) == expected


QUERIES = ["cat", "new york", "york city", "new york city", "café", "x-ray", "dog's", "ας", "σα", "fish",
           "ⅻ", "east", "1990", "a", "b c", "a b c d", "cat cat", "", "  ", "Cat", "cat ", " cat", "a  b",
           "new\nyork", "b"]
IDS = [7, -3, 2**31 - 1, -(2**31), 0, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 8]
PIECES = st.sampled_from(["cat", "Cat", "new", "York", "city", "CAFE\u0301", "café", "x-ray", "dog’s", "ΑΣ",
                          "Σ", "ς", "σα", "ﬁsh", "Ⅻ", "ｅａｓｔ", "1990", "a", "b", "c", "d", " ", "\n", "\t",
                          "\u2028", "\u00a0", "-", "'", "’", ".", "_", "\u0301", "\ue000", "\x01", "category"])
TEXT = st.lists(st.one_of(PIECES, ASCII_PIECES, st.text(max_size=6)), max_size=12).map("".join)


def expected_ids(queries, ids, text):
    padded = f" {normalize(text)} "
    last = {q: i for q, i in zip(queries, ids)}  # a query given twice keeps its last id
    return sorted({last[q] for q in queries if q.strip() and f" {q} " in padded})


@settings(max_examples=400, deadline=None)
@given(st.lists(TEXT, max_size=12))
def test_find_in_batch_is_whole_word_substring_search(texts):
    trie = build_trie(IDS, QUERIES)
    has_words, rows, ids = find_in_batch(trie, texts)
    assert has_words.tolist() == [bool(normalize(t)) for t in texts]
    assert np.all(np.diff(rows) >= 0)
    for i, text in enumerate(texts):
        assert ids[rows == i].tolist() == expected_ids(QUERIES, IDS, text), text


def test_a_query_given_twice_keeps_its_last_id_and_empty_inputs():
    trie = build_trie([1, 2, 3], ["cat", "dog", "cat"])
    assert len(trie) == 2
    _, rows, ids = find_in_batch(trie, ["a cat", "dog", "Category"])
    assert list(zip(rows.tolist(), ids.tolist())) == [(0, 3), (1, 2)]
    empty = build_trie([], [])
    has_words, rows, ids = find_in_batch(empty, ["a cat", ""])
    assert has_words.tolist() == [True, False] and len(rows) == len(ids) == 0
    assert [len(a) for a in find_in_batch(trie, [])] == [0, 0, 0]


def test_many_queries_and_deep_overlaps():
    # Thousands of edges in random order, all of them walked: lookups must probe past collisions
    # in the hash table. Every prefix of a 40-word phrase is a query too.
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    queries = [" ".join(rng.choices(words, k=n)) for n in (1, 2, 3) for _ in range(3000)]
    queries += [" ".join(words[:n]) for n in range(1, 41)]
    ids = list(range(len(queries)))
    trie = build_trie(ids, queries)
    texts = [" ".join(queries[:4500]), " ".join(queries[4500:]), "W5 w1-w2 w3", " ".join(reversed(words[:30]))]
    _, rows, found = find_in_batch(trie, texts)
    for i, text in enumerate(texts):
        assert found[rows == i].tolist() == expected_ids(queries, ids, text)
    assert len(queries) - 1 in found[rows == 1]  # the 40-word query
