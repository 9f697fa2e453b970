"""Word, bigram and phrase counts over the article text of the dumps, one Ray task per `DumpUnit`
(a dump file, or a range of whole bz2 streams of a multistream dump).

Two passes, the dump read once:
1. `count_unit` (map): unigrams, adjacent bigrams within a sentence (so "... in 1990. The ..."
   gives no "1990 the"), the normalized titles and redirect aliases of the articles, and the
   unit's normalized words, one article line per line, zlib-compressed (`FileCounts.texts`; about
   a fifth of the XML's size; under Ray they stay in the object store, which spills to disk).
2. `count_phrases_texts`: occurrences of multi-word candidate phrases (titles, aliases, WordNet
   lemmas, selected bigrams) as whole words within a line, with Aho-Corasick over those texts. It
   needs pass 1 done on *every* unit first: a title from one file occurs in the text of all others.
   (`count_phrases` does the same by reading the dump again: the reference the tests compare with.)

A query's `count` is always "occurrences of its normalized form as whole words within a line"
(a line is a paragraph); single words read it from the unigram table, longer phrases from pass 2.

Exactness: every count is exact; nothing is sampled, sketched or pruned by an estimate. Unigrams are
summed over all units on the driver. Bigrams go through a hash-partitioned map-reduce: each map task
splits its bigram counts into `bigram_partitions` parts by crc32 of the bigram's first word (stable
across processes), one reduce task per part sums that part over all units, one unit's share at a
time, and returns only the bigrams with count >= `bigram_min_count`. Bigrams that can never be
selected (a number, or a stopword at either end: `select.selectable_bigram`) are dropped in the map;
they still count in `bigram_positions`, the PMI denominator. The result equals `count_reference`,
a plain single-process counter (tests/queries/test_scale.py, on 2 Ray workers).

Memory bound: a map task holds one 1 MiB chunk of compressed and of decompressed dump, one page, the
distinct unigrams and bigrams of its unit (int64 codes while counting, `WordPairs`, plus about
`WordPairs.COMPACT_EVERY` pair codes not merged yet: ~10 MB), and its compressed text, so it grows
with the unit size (`stream_range_bytes` of compressed dump for multistream dumps, default 16 MiB;
a whole file otherwise), never with the dump. A reduce task holds the distinct selectable bigrams
of one partition (all of them / `bigram_partitions`) plus one unit's share. A pass-2 task holds the phrase
automaton, one unit's compressed text and 1 MiB of it decompressed. The driver holds the distinct
unigrams of the dump (~10^7 for English Wikipedia, ~1 GB as a Python dict), the normalized titles
and aliases (~1.7 * 10^7), the frequent bigrams and the phrase counts. Titles whose rarest word is
rarer than `min_title_count` cannot reach it and are not counted in pass 2 (a phrase occurs at most
as often as its rarest word, so this pruning is exact too).
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
import numpy as np
from tqdm import tqdm

from queries.dump import DumpStats, DumpUnit, iter_pages
from queries.normalize import normalize, tokens_and_breaks
from queries.select import selectable_bigram
from queries.tasks import gather, run_local, wit_errors
from queries.wikitext import to_plain_text

# A sentence ends at . ! or ? (and closing quotes/brackets) before a capital or digit, unless the
# word before the stop is an initial or an abbreviation ("J. R. R. Tolkien", "St. Louis", "U.S.").
_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD_BEFORE = re.compile(r"\w*\Z")  # searched in a short window before the stop
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof gen col lt sgt capt rev vs no vol pp ca fig op mt ft".split()
)
_QUALIFIER = re.compile(r"\s*\([^()]*\)\s*$")
SENTENCE_BREAK = "\ue000"  # private use, not a word character: where split_sentences cuts
TEXT_CHUNK = 1 << 20  # characters of normalized text matched at a time in pass 2


@dataclass
class FileCounts:
    """Pass-1 counts of one unit, or merged over all of them."""

    unigrams: Counter[str] = field(default_factory=Counter)
    bigrams: Counter[str] = field(default_factory=Counter)  # "a b", adjacent within a sentence
    titles: set[str] = field(default_factory=set)  # normalized article titles and redirect aliases
    stats: DumpStats = field(default_factory=DumpStats)
    bigram_positions: int = 0  # adjacent pairs within sentences, all of them (the PMI denominator)
    # per unit, its normalized text zlib-compressed (bytes, or a Ray object ref): pass 2's input
    texts: list[Any] = field(default_factory=list)

    def merge(self, other: FileCounts) -> FileCounts:
        self.unigrams.update(other.unigrams)
        self.bigrams.update(other.bigrams)
        self.titles |= other.titles
        self.stats.merge(other.stats)
        self.bigram_positions += other.bigram_positions
        self.texts += other.texts
        return self


def title_phrase(title: str) -> str:
    """A title as a query: "Animalia (book)" -> "animalia" (the qualifier only tells pages apart)."""
    return normalize(_QUALIFIER.sub("", title))


def _ends_sentence(text: str, stop: int, floor: int = 0) -> bool:
    word = _WORD_BEFORE.search(text, max(floor, stop - 6), stop).group()
    return len(word) > 1 and word.lower() not in _ABBREVIATIONS


def split_sentences(text: str) -> str:
    """`text` with SENTENCE_BREAK after every sentence (bigrams stop there, phrases do not)."""
    text = text.replace(SENTENCE_BREAK, " ")  # as a non-word character it only ever separated words
    return _SENTENCE_BREAK.sub(
        lambda m: m.group() + SENTENCE_BREAK if _ends_sentence(text, m.start()) else m.group(), text)


def _count_text(units: Iterable[DumpUnit | str], progress: bool = False, keep_text: bool = False) -> FileCounts:
    """Pass 1, all bigrams kept: the hot loop shared by the map tasks and the reference counter.
    With `keep_text`, `texts` gets the normalized words too, zlib-compressed, one line of the
    article per line, for pass 2 to match phrases in without reading the dump again."""
    counts = FileCounts()
    pairs = WordPairs()
    compressor, compressed = zlib.compressobj(1), []
    words: list[str] = []  # with "\n" and SENTENCE_BREAK tokens between lines and sentences
    for unit in units:
        for page in iter_pages(unit, counts.stats, progress=progress):
            if phrase := title_phrase(page.title):
                counts.titles.add(phrase)
            if page.redirect is not None:
                continue
            start = len(words)
            words += tokens_and_breaks(split_sentences(to_plain_text(page.text, tidy=False)))
            words.append("\n")
            if keep_text:
                line = " ".join(filter(SENTENCE_BREAK.__ne__, words[start:]))
                compressed.append(compressor.compress(line.encode()))
            if len(words) > 200_000:  # counted per batch of pages: fewer, larger C calls
                pairs.add(words)
                words.clear()
    pairs.add(words)
    # the pairs across a break ("word \n", "\n word") were counted to keep the loop in C
    counts.unigrams, counts.bigrams = pairs.counters(drop=("\n", SENTENCE_BREAK))
    counts.bigram_positions = counts.bigrams.total()
    if keep_text:
        compressed.append(compressor.flush())
        counts.texts = [b"".join(compressed)]
    return counts


class WordPairs:
    """Counts of words and of adjacent pairs of words, fed a batch of words at a time.

    Counting happens in numpy rather than in a Counter of "a b" strings (a new string, hashed, per
    pair read): a word becomes a dense id (numbered as first seen), a pair the int64
    `first << 32 | second`, and counting is a sort. Pairs are merged into sorted distinct codes with
    their counts every million or so, so memory follows the distinct pairs (16 bytes each), not the
    words read. `counters` gives the same Counters as counting the strings would.
    """

    COMPACT_EVERY = 1 << 20  # pair codes held (8 MB) before merging them into the distinct ones

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.word_counts = np.zeros(0, np.int64)  # [distinct words], by id
        self.codes = np.zeros(0, np.int64)  # [distinct pairs], sorted
        self.code_counts = np.zeros(0, np.int64)
        self.pending: list[np.ndarray] = []  # pair codes not merged yet
        self.pending_pairs = 0

    def add(self, words: list[str]) -> None:
        """Count `words` and their adjacent pairs (not the pair from the previous batch's last word)."""
        ids = self.ids
        for word in dict.fromkeys(words):  # the batch's distinct words, in order: new ones get ids
            if word not in ids:
                ids[word] = len(ids)
        seq = np.fromiter(map(ids.__getitem__, words), np.int64, count=len(words))
        counts = np.bincount(seq, minlength=len(ids))
        counts[: len(self.word_counts)] += self.word_counts
        self.word_counts = counts
        self.pending.append((seq[:-1] << 32) | seq[1:])
        self.pending_pairs += len(seq)
        if self.pending_pairs > self.COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        if not self.pending:
            return
        new = np.concatenate(self.pending)
        self.pending, self.pending_pairs = [], 0
        if not new.size:
            return
        new.sort()
        starts = np.flatnonzero(np.concatenate(([True], new[1:] != new[:-1])))
        new_counts = np.diff(np.append(starts, new.size))
        new = new[starts]
        # both sorted: add to the codes already there, insert the others in place (linear)
        at = np.searchsorted(self.codes, new)
        seen = at < self.codes.size
        seen[seen] = self.codes[at[seen]] == new[seen]
        self.code_counts[at[seen]] += new_counts[seen]
        self.codes = np.insert(self.codes, at[~seen], new[~seen])
        self.code_counts = np.insert(self.code_counts, at[~seen], new_counts[~seen])

    def counters(self, drop: Iterable[str] = ()) -> tuple[Counter[str], Counter[str]]:
        """(words, "a b" pairs) as Counters, without the words in `drop` nor any pair holding one."""
        self._compact()
        words = list(self.ids)  # by id
        unigrams = Counter(dict(zip(words, self.word_counts.tolist())))
        for word in drop:
            unigrams.pop(word, None)
        dropped = [self.ids[w] for w in drop if w in self.ids]
        bigrams: Counter[str] = Counter()
        for lo in range(0, self.codes.size, 1 << 16):  # a slice at a time: few Python ints alive
            codes, counts = self.codes[lo : lo + (1 << 16)], self.code_counts[lo : lo + (1 << 16)]
            first, second = codes >> 32, codes & 0xFFFFFFFF
            kept = ~(np.isin(first, dropped) | np.isin(second, dropped))
            pairs = map("{} {}".format, map(words.__getitem__, first[kept].tolist()),
                        map(words.__getitem__, second[kept].tolist()))
            dict.update(bigrams, zip(pairs, counts[kept].tolist()))  # distinct keys: nothing to sum
        return unigrams, bigrams


def count_reference(paths: Sequence[DumpUnit | str]) -> FileCounts:
    """Pass 1 in this process with every bigram kept: the plain counter the parallel path must equal."""
    return _count_text(paths)


def count_file(path: DumpUnit | str, progress: bool = False) -> FileCounts:
    """Pass 1 over one file or unit, every bigram kept."""
    return _count_text([path], progress=progress)


def partition_of(word: str, partitions: int) -> int:
    """A bigram goes to the partition of its first word: stable across processes (unlike `hash`),
    so every map task sends a bigram to the same reducer, and computed once per distinct word."""
    return zlib.crc32(word.encode()) % partitions


def count_unit(unit: DumpUnit, partitions: int, skip_stopwords: bool) -> tuple[Any, ...]:
    """Map task of pass 1: (FileCounts without bigrams, the unit's normalized text compressed,
    then `partitions` dicts of selectable bigrams)."""
    counts = _count_text([unit], keep_text=True)
    text, counts.texts = counts.texts[0], []
    # selectable_bigram, per distinct word rather than per distinct bigram: the hot part of a map
    part_of = {word: partition_of(word, partitions) for word in counts.unigrams
               if selectable_bigram(f"{word} {word}", skip_stopwords)}
    parts: list[dict[str, int]] = [{} for _ in range(partitions)]
    for pair, count in counts.bigrams.items():
        first, _, second = pair.partition(" ")
        part = part_of.get(first)
        if part is not None and second in part_of:
            parts[part][pair] = count
    counts.bigrams = Counter()
    return (counts, text, *parts)


def reduce_bigrams(min_count: int, parts: list[Any]) -> dict[str, int]:
    """Reduce task of pass 1: one partition summed over all units, the frequent bigrams kept.
    `parts` are object refs under Ray (fetched one at a time, so one unit's share is in memory)."""
    total: Counter[str] = Counter()
    for part in parts:
        if not isinstance(part, dict):
            import ray

            part = ray.get(part)
        total.update(part)
        del part
    return {pair: count for pair, count in total.items() if count >= min_count}


def count_phrases_unit(unit: DumpUnit, phrases: Sequence[str]) -> tuple[Counter[str], DumpStats]:
    """Pass 2 over one unit: whole-word occurrences of each phrase within a line."""
    found: Counter[str] = Counter()
    stats = DumpStats()
    if not phrases:
        return found, stats
    automaton = _automaton(phrases)
    for page in iter_pages(unit, stats):
        if page.redirect is not None:
            continue
        # The page's words on one string, lines apart by " \n ": a phrase never spans a line.
        # Padding with spaces makes every match whole-word; overlapping matches all count.
        words = " ".join(tokens_and_breaks(to_plain_text(page.text, tidy=False)))
        found.update(phrase for _, phrase in automaton.iter(f" {words} "))
    return found, stats


def _automaton(phrases: Sequence[str]) -> Any:
    automaton = ahocorasick.Automaton()
    for phrase in phrases:
        automaton.add_word(f" {phrase} ", phrase)
    automaton.make_automaton()
    return automaton


def _decompressed_text(blob: bytes) -> Iterator[str]:
    """A zlib blob of UTF-8 text, decompressed and decoded about TEXT_CHUNK bytes at a time."""
    reader, decoder = zlib.decompressobj(), codecs.getincrementaldecoder("utf-8")()
    for start in range(0, len(blob), TEXT_CHUNK):
        yield decoder.decode(reader.decompress(blob[start : start + TEXT_CHUNK], TEXT_CHUNK * 8))
        while reader.unconsumed_tail:  # output capped: one chunk of text in memory at a time
            yield decoder.decode(reader.decompress(reader.unconsumed_tail, TEXT_CHUNK * 8))
    yield decoder.decode(reader.flush(), final=True)


def count_phrases_texts(texts: list[Any], phrases: Sequence[str]) -> Counter[str]:
    """Pass 2 task: whole-word occurrences of each phrase within a line of pass 1's normalized texts
    (object refs under Ray, fetched and decompressed a chunk at a time)."""
    found: Counter[str] = Counter()
    if not phrases:
        return found
    automaton = _automaton(phrases)
    for blob in texts:
        if not isinstance(blob, bytes):
            import ray

            blob = ray.get(blob)
        rest = ""
        for text in _decompressed_text(blob):
            text = rest + text
            cut = text.rfind("\n") + 1  # whole lines only; the rest goes with the next chunk
            lines, rest = text[:cut], text[cut:]
            # Padding with spaces makes every match whole-word; overlapping matches all count.
            found.update(phrase for _, phrase in automaton.iter(" " + lines.replace("\n", " \n ")))
        del blob
    return found


def count_phrases_in_texts(texts: list[Any], phrases: Iterable[str], use_ray: bool = True,
                           progress: bool = False) -> Counter[str]:
    """Pass 2 over pass 1's normalized texts (`FileCounts.texts`), a few Ray tasks per CPU: each
    builds the phrase automaton once for its share of the texts."""
    ordered = sorted(set(phrases))
    if not use_ray:
        return count_phrases_texts(texts, ordered)
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = max(1, -(-len(texts) // (4 * cpus)))
    groups = [texts[i : i + per_task] for i in range(0, len(texts), per_task)]
    shared = ray.put(ordered)  # stored once, read by every task
    task = ray.remote(count_phrases_texts)
    pending = [task.remote(group, shared) for group in groups]
    total: Counter[str] = Counter()
    with tqdm(total=len(texts), desc="pass 2", unit="unit", disable=not progress) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            total.update(wit_errors(ray.get, ready[0]))
            bar.update(per_task)
    return total


def count_dumps(units: Sequence[DumpUnit], min_count: int, skip_stopwords: bool = True,
                partitions: int = 32, use_ray: bool = True, progress: bool = False) -> FileCounts:
    """Pass 1 over all units (one Ray task each), with the frequent selectable bigrams in `bigrams`."""
    merged = FileCounts()
    if not use_ray:
        results = run_local(count_unit, units, (partitions, skip_stopwords), lambda r: r[0].stats,
                            "pass 1", progress)
        bigram_parts = []
        for result in results:
            merged.merge(result[0])
            merged.texts.append(result[1])
            bigram_parts.append(result[2:])
        for p in range(partitions):
            merged.bigrams.update(reduce_bigrams(min_count, [parts[p] for parts in bigram_parts]))
        return merged
    import ray

    task = ray.remote(count_unit).options(num_returns=2 + partitions)
    refs = [task.remote(unit, partitions, skip_stopwords) for unit in units]
    firsts = [r[0] for r in refs]
    for counts in gather(firsts, units, lambda counts: counts.stats, "pass 1", progress):
        merged.merge(counts)
    merged.texts = [r[1] for r in refs]  # stay in the object store (spilled to disk when large)
    reducer = ray.remote(reduce_bigrams)
    reduced = [reducer.remote(min_count, [r[2 + p] for r in refs]) for p in range(partitions)]
    del refs
    for part in wit_errors(ray.get, reduced):
        merged.bigrams.update(part)
    return merged


def count_phrases(units: Sequence[DumpUnit], phrases: Iterable[str], use_ray: bool = True,
                  progress: bool = False) -> Counter[str]:
    """Pass 2 reading the dump again (the reference for `count_phrases_in_texts`); `phrases` are
    normalized multi-word texts."""
    ordered = sorted(set(phrases))
    total: Counter[str] = Counter()
    if not use_ray:
        for found, _ in run_local(count_phrases_unit, units, (ordered,), lambda r: r[1], "pass 2", progress):
            total.update(found)
        return total
    import ray

    shared = ray.put(ordered)  # stored once, read by every task
    task = ray.remote(count_phrases_unit).options(num_returns=2)
    refs = [task.remote(unit, shared) for unit in units]
    counts_refs = [r[0] for r in refs]
    for _ in gather([r[1] for r in refs], units, lambda stats: stats, "pass 2", progress):
        pass
    for found in wit_errors(ray.get, counts_refs):
        total.update(found)
    return total
