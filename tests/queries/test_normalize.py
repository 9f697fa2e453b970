"""The shared normalization: the possessive word pattern finds what the plain greedy one finds, and
the many-texts-at-once form (tokens_of_texts) gives each text's `tokens` exactly."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from queries.normalize import normalize, tokens, tokens_and_breaks, tokens_of_texts

PLAIN_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")

PIECES = st.sampled_from(["Cat", "dog's", "dog’s", "x-ray", "x--ray", "-a-", "'a'", "o'", "ΑΣ", "Σ", "ς", "ΣΑ",
                          "İ", "ß", "ﬁ", "Ⅻ", "ｅ", "e\u0301", "\u0301", "_", "a_b", "1990", "½", " ", "\n",
                          "\r", "\t", "\u2028", "\ue000", ".", "'", "’", "-", "🐈", "東京"])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=16).map("".join)


@settings(max_examples=1000, deadline=None)
@given(TEXT)
def test_possessive_word_pattern_equals_plain(text):
    folded = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    assert tokens(text) == PLAIN_WORD.findall(folded)
    assert [t for t in tokens_and_breaks(text) if t not in "\n\ue000"] == tokens(text)


@settings(max_examples=1000, deadline=None)
@given(st.lists(TEXT, max_size=8))
def test_tokens_of_texts_equals_tokens_per_text(texts):
    lines, line = [], []
    for word in tokens_of_texts(texts):
        if word == "\n":
            lines.append(line)
            line = []
        else:
            line.append(word)
    assert line == [] and lines == [tokens(t) for t in texts]
    assert [" ".join(x) for x in lines] == [normalize(t) for t in texts]


def test_final_sigma_ends_at_a_text():
    assert tokens_of_texts(["ΑΣ", "Α", "a\nΣ\nΣΑ"]) == ["ας", "\n", "α", "\n", "a", "σ", "σα", "\n"]
    assert tokens("ΑΣ") == ["ας"] and tokens("a\nΣ\nΣΑ") == ["a", "σ", "σα"] and tokens_of_texts([]) == []
