"""Text normalization shared by the query builder and the pool matcher: one function, so a query
built from Wikipedia and a caption from the web are compared in the same form."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# A word is a run of letters/digits, possibly joined by inner apostrophes or hyphens ("o'neill",
# "x-ray"); underscores and other punctuation separate words.
# Possessive (++, *+): a word never gives characters back (nothing follows it in the pattern), so
# this matches what the plain greedy form matches, with less work per word.
_WORD = re.compile(r"[^\W_]++(?:['’\-][^\W_]++)*+")


_WORD_OR_BREAK = re.compile(_WORD.pattern + r"|[\n\ue000]")  # \ue000: queries.count.SENTENCE_BREAK
_WORD_OR_LINE_END = re.compile(_WORD.pattern + r"|\n")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("’", "'")


def tokens(text: str) -> list[str]:
    """NFKC, lowercase, then words: `"The Cat's  toy!"` -> `["the", "cat's", "toy"]`."""
    return _WORD.findall(_fold(text))


def normalize(text: str) -> str:
    """Tokens joined by single spaces; whole-word matching pads this with spaces on both sides."""
    return " ".join(tokens(text))


def tokens_and_breaks(text: str) -> list[str]:
    """`tokens`, plus a "\\n" token for every line break (and for every U+E000, the sentence break
    of queries.count): the words of many lines in one call, exactly those of `tokens` per line."""
    return _WORD_OR_BREAK.findall(_fold(text))


def tokens_of_texts(texts: Sequence[str]) -> list[str]:
    """`tokens` of many texts in one call: each text's tokens followed by a "\\n" token, exactly as
    `tokens` gives them one text at a time.

    One regex pass over the texts joined by "\\n" (a line break inside a text separates words as a
    space does, so it becomes one). NFKC runs on the non-ASCII texts only, one at a time: on the
    whole batch, one such text would send all of them down the slow path. Lowercasing the whole is
    lowercasing each: "\\n" ends the context of a final sigma ("ΑΣ\\nΑ" lowers to "ας\\nα"), and no
    character normalizes or lowercases into a "\\n"."""
    if not texts:
        return []
    nfkc = [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in texts]
    joined = "\n".join(nfkc)
    if joined.count("\n") != len(texts) - 1:
        joined = "\n".join([t.replace("\n", " ") for t in nfkc])
    return _WORD_OR_LINE_END.findall(joined.lower().replace("’", "'") + "\n")
