"""Word, bigram and phrase counts over the article text of one or more dumps, one Ray task per file.

Two passes over the dumps:
1. `count_file`: unigrams, adjacent bigrams within a sentence (so "... in 1990. The ..." gives no
   "1990 the"), and the normalized titles and redirect aliases of the articles.
2. `count_phrases_file`: occurrences of multi-word candidate phrases (titles, aliases, WordNet
   lemmas, selected bigrams) as whole words within a line, with Aho-Corasick. It needs pass 1 done
   on *every* file first: a title from one file occurs in the text of all the others.

A query's `count` is always "occurrences of its normalized form as whole words within a line"
(a line is a paragraph); single words read it from the unigram table, longer phrases from pass 2.

Memory bound (walking skeleton): each task holds the distinct unigrams and bigrams of its file;
the driver holds their union over all files, exactly, as Python dicts (~100 bytes per entry).
The vendored excerpt has ~40k words and ~300k bigrams; all of English Wikipedia has ~10^7 words
and ~10^8 bigrams, which needs pruning or a sharded merge before a full-scale run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ahocorasick

from queries.dump import DumpStats, Page, iter_pages
from queries.normalize import normalize, tokens
from queries.wikitext import to_plain_text

# A sentence ends at . ! or ? (and closing quotes/brackets) before a capital or digit, unless the
# word before the stop is an initial or an abbreviation ("J. R. R. Tolkien", "St. Louis", "U.S.").
_SENTENCE_BREAK = re.compile(r"(\w*)[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof gen col lt sgt capt rev vs no vol pp ca fig op mt ft".split()
)
_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
T = TypeVar("T")


@dataclass
class FileCounts:
    """Pass-1 counts of one dump file, or merged over several."""

    unigrams: Counter[str] = field(default_factory=Counter)
    bigrams: Counter[str] = field(default_factory=Counter)  # "a b", adjacent within a sentence
    titles: set[str] = field(default_factory=set)  # normalized article titles and redirect aliases
    stats: DumpStats = field(default_factory=DumpStats)

    def merge(self, other: FileCounts) -> FileCounts:
        self.unigrams.update(other.unigrams)
        self.bigrams.update(other.bigrams)
        self.titles |= other.titles
        self.stats.merge(other.stats)
        return self


def title_phrase(title: str) -> str:
    """A title as a query: "Animalia (book)" -> "animalia" (the qualifier only tells pages apart)."""
    return normalize(_QUALIFIER.sub("", title))


def sentences(line: str) -> list[str]:
    parts, start = [], 0
    for match in _SENTENCE_BREAK.finditer(line):
        word = match.group(1)
        if len(word) <= 1 or word.lower() in _ABBREVIATIONS:
            continue
        parts.append(line[start : match.end()])
        start = match.end()
    parts.append(line[start:])
    return parts


def article_lines(page: Page) -> Iterator[str]:
    """The non-empty lines of an article's plain text."""
    for line in to_plain_text(page.text).split("\n"):
        if line.strip():
            yield line


def count_file(path: str, progress: bool = False) -> FileCounts:
    """Pass 1 over one dump file."""
    counts = FileCounts()
    for page in iter_pages(path, counts.stats, progress=progress):
        if phrase := title_phrase(page.title):
            counts.titles.add(phrase)
        if page.redirect is not None:
            continue
        for line in article_lines(page):
            for sentence in sentences(line):
                words = tokens(sentence)
                counts.unigrams.update(words)
                counts.bigrams.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return counts


def count_phrases_file(path: str, phrases: Sequence[str], progress: bool = False) -> Counter[str]:
    """Pass 2 over one dump file: whole-word occurrences of each phrase within a line."""
    found: Counter[str] = Counter()
    if not phrases:
        return found
    automaton = ahocorasick.Automaton()
    for phrase in phrases:
        automaton.add_word(f" {phrase} ", phrase)
    automaton.make_automaton()
    for page in iter_pages(path, progress=progress):
        if page.redirect is not None:
            continue
        for line in article_lines(page):
            # Padding with spaces makes every match whole-word; overlapping matches all count.
            found.update(phrase for _, phrase in automaton.iter(f" {' '.join(tokens(line))} "))
    return found


def count_dumps(paths: Sequence[str], use_ray: bool = True, progress: bool = False) -> FileCounts:
    """Pass 1 over all files (one Ray task each), merged on the driver in the given file order."""
    return _merge(_map_files(count_file, paths, use_ray, progress=progress), FileCounts())


def count_phrases(paths: Sequence[str], phrases: Iterable[str], use_ray: bool = True,
                  progress: bool = False) -> Counter[str]:
    """Pass 2 over all files; `phrases` are normalized multi-word texts."""
    ordered = sorted(set(phrases))
    total: Counter[str] = Counter()
    for found in _map_files(count_phrases_file, paths, use_ray, ordered, progress=progress):
        total.update(found)
    return total


def _merge(parts: Iterable[FileCounts], into: FileCounts) -> FileCounts:
    for part in parts:
        into.merge(part)
    return into


def _map_files(fn: Callable[..., T], paths: Sequence[str], use_ray: bool, *args: Any,
               progress: bool = False) -> list[T]:
    """`fn(path, *args)` for every file, as Ray tasks or in this process; results in `paths` order."""
    if not use_ray:
        return [fn(path, *args, progress=progress) for path in paths]
    import ray

    from wit.errors import WitError
    from wit.raylocal import ensure_ray

    ensure_ray()
    shared = [ray.put(arg) for arg in args]  # e.g. the phrase list: stored once, read by every task
    task = ray.remote(fn)
    try:
        return ray.get([task.remote(path, *shared, progress=progress) for path in paths])
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, WitError):  # a bad input file: report it, not a remote traceback
            raise err.cause from None
        raise
