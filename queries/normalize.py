"""Text normalization shared by the query builder and the pool matcher: one function, so a query
built from Wikipedia and a caption from the web are compared in the same form."""

from __future__ import annotations

import re
import unicodedata

# A word is a run of letters/digits, possibly joined by inner apostrophes or hyphens ("o'neill",
# "x-ray"); underscores and other punctuation separate words.
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


_WORD_OR_BREAK = re.compile(_WORD.pattern + r"|[\n\ue000]")  # \ue000: queries.count.SENTENCE_BREAK


def tokens(text: str) -> list[str]:
    """NFKC, lowercase, then words: `"The Cat's  toy!"` -> `["the", "cat's", "toy"]`."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    return _WORD.findall(text)


def normalize(text: str) -> str:
    """Tokens joined by single spaces; whole-word matching pads this with spaces on both sides."""
    return " ".join(tokens(text))


def tokens_and_breaks(text: str) -> list[str]:
    """`tokens`, plus a "\\n" token for every line break (and for every U+E000, the sentence break
    of queries.count): the words of many lines in one call, exactly those of `tokens` per line."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    return _WORD_OR_BREAK.findall(text)
