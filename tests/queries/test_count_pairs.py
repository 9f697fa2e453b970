"""Pass 1 counts words and adjacent pairs in numpy (WordPairs); it must give exactly the Counters
of strings that counting "a b" strings gives, on any words and on the real excerpts."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from queries.count import SENTENCE_BREAK, WordPairs, count_reference, split_sentences
from queries.dump import iter_pages
from queries.normalize import tokens_and_breaks
from queries.wikitext import to_plain_text

BREAKS = ("\n", SENTENCE_BREAK)


def string_counts(batches: list[list[str]]) -> tuple[Counter, Counter]:
    """The former counter: Counter.update over the words and the joined pairs of each batch."""
    unigrams, bigrams = Counter(), Counter()
    for words in batches:
        unigrams.update(words)
        bigrams.update(map(" ".join, zip(words, words[1:])))
    for pair in [pair for pair in bigrams if "\n" in pair or SENTENCE_BREAK in pair]:
        del bigrams[pair]
    for word in BREAKS:
        unigrams.pop(word, None)
    return unigrams, bigrams


WORD = st.sampled_from(["the", "cat", "x-ray", "東京", "a", "\n", SENTENCE_BREAK, "1990", "dog's"]) | st.text(
    alphabet=st.characters(blacklist_characters=" \n\ue000"), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(WORD, max_size=30), max_size=6), st.integers(1, 50))
def test_word_pairs_equal_string_counters(batches, compact_every):
    pairs = WordPairs()
    pairs.COMPACT_EVERY = compact_every  # merge often, as a long unit would
    for words in batches:
        pairs.add(words)
    unigrams, bigrams = pairs.counters(drop=BREAKS)
    expected_unigrams, expected_bigrams = string_counts(batches)
    assert unigrams == expected_unigrams and bigrams == expected_bigrams
    assert all(type(c) is int for c in [*unigrams.values(), *bigrams.values()])


def test_pass_one_on_the_excerpts_equals_string_counters(excerpt, table_markup):
    for path in (excerpt, table_markup):
        words: list[str] = []
        for page in iter_pages(path):
            if page.redirect is None:
                words += tokens_and_breaks(split_sentences(to_plain_text(page.text, tidy=False)))
                words.append("\n")
        counts = count_reference([path])
        unigrams, bigrams = string_counts([words])
        assert counts.unigrams == unigrams and counts.bigrams == bigrams
        assert counts.bigram_positions == bigrams.total() > 0
