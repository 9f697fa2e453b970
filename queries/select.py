"""Which phrases become queries: the four sources, their merge, the ranking and the caps."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from queries.config import SOURCES, QueriesConfig

# Function words: a bigram starting or ending with one is a phrase fragment ("of the", "the
# city", "is a"), not a name or a concept, however high its PMI.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves""".split()
)


@dataclass(frozen=True)
class Query:
    query: str  # normalized text
    sources: tuple[str, ...]  # sorted
    count: int  # whole-word occurrences in the article text (0: a WordNet lemma never seen)
    pmi: float | None  # set only when `bigram` is a source


def selectable_bigram(pair: str, skip_stopwords: bool) -> bool:
    """Whether a bigram may become a query whatever its counts: no number ("1 000" from "1,000",
    "000 men": number formatting, not phrases) and, with `skip_stopwords`, no function word at
    either end. Pass 1 drops the others before its map-reduce."""
    first, _, second = pair.partition(" ")
    if first.isdigit() or second.isdigit():
        return False
    return not (skip_stopwords and (first in STOPWORDS or second in STOPWORDS))


def select_bigrams(
    unigrams: Mapping[str, int], bigrams: Mapping[str, int], cfg: QueriesConfig,
    n_pairs: int | None = None,
) -> dict[str, float]:
    """Bigrams seen at least `bigram_min_count` times with PMI >= `min_pmi`, with their PMI.

    PMI = ln(p(ab) / (p(a) p(b))), p(ab) over all `n_pairs` bigram positions (default: the sum of
    `bigrams`, when it holds every bigram), p(a) over all words.
    """
    n_words = sum(unigrams.values())
    n_pairs = sum(bigrams.values()) if n_pairs is None else n_pairs
    chosen: dict[str, float] = {}
    for pair, count in bigrams.items():
        if count < cfg.bigram_min_count or not selectable_bigram(pair, cfg.bigram_skip_stopwords):
            continue
        first, second = pair.split(" ")
        pmi = math.log((count / n_pairs) / ((unigrams[first] / n_words) * (unigrams[second] / n_words)))
        if pmi >= cfg.min_pmi:
            chosen[pair] = pmi
    return chosen


def occurrences(query: str, unigrams: Mapping[str, int], phrase_counts: Mapping[str, int]) -> int:
    """Whole-word occurrences of a normalized query: unigram table for one word, pass 2 otherwise."""
    return unigrams.get(query, 0) if " " not in query else phrase_counts.get(query, 0)


def merge_sources(
    candidates: Mapping[str, Iterable[str]],
    unigrams: Mapping[str, int],
    phrase_counts: Mapping[str, int],
    bigram_pmi: Mapping[str, float],
) -> list[Query]:
    """One Query per normalized text, carrying every source that proposed it, ranked."""
    queries = [
        Query(text, tuple(sorted(set(sources))), occurrences(text, unigrams, phrase_counts),
              bigram_pmi.get(text) if text in bigram_pmi else None)
        for text, sources in candidates.items()
    ]
    return rank(queries)


def rank(queries: Iterable[Query]) -> list[Query]:
    """Most frequent first, ties by text (code point order): the same inputs give the same list."""
    return sorted(queries, key=lambda q: (-q.count, q.query))


def cap(ranked: list[Query], cfg: QueriesConfig) -> list[Query]:
    """Keep queries in rank order, at most `max_queries`; a query is kept while any of its sources
    is under that source's quota (it then counts against each of its sources)."""
    quotas = {source: cfg.quota(source) for source in SOURCES}
    used: Counter[str] = Counter()
    kept: list[Query] = []
    for query in ranked:
        if len(kept) >= cfg.max_queries:
            break
        if any(quotas[s] is None or used[s] < quotas[s] for s in query.sources):
            kept.append(query)
            used.update(query.sources)
    return kept


def per_source(queries: Iterable[Query]) -> dict[str, int]:
    """How many queries carry each source (a query with two sources counts for both)."""
    seen: Counter[str] = Counter()
    for query in queries:
        seen.update(query.sources)
    return {source: seen[source] for source in SOURCES}
