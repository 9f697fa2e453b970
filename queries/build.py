"""`build`: Wikipedia dumps + WordNet -> queries.parquet, the recipe behind `wit queries build`."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from queries.config import QueriesConfig
from queries.count import count_dumps, count_phrases_in_texts
from queries.dump import index_for, plan_units
from queries.schema import to_table
from queries.select import cap, merge_sources, occurrences, per_source, select_bigrams
from queries.wordnet import index_path, noun_lemmas
from core import storage
from core.artifacts import provenance, read_provenance, write_parquet
from core.config import to_dict
from core.errors import WitError

log = logging.getLogger(__name__)


def build(cfg: QueriesConfig, out_path: str | os.PathLike, *, use_ray: bool = True,
          progress: bool = True) -> Path | str:
    """Write the query list of `cfg` to `out_path` (a local path, or a cloud URI: returned as a str)
    and return its path.

    Idempotent: when `out_path` already records the same config and the same input file sizes,
    it is returned as it is. `use_ray=False` counts in this process (same result, for debugging).
    """
    out = str(out_path) if storage.is_uri(out_path) else Path(out_path)
    inputs = input_files(cfg)
    if _reusable(out, cfg, inputs):
        log.info("reusing %s: same config and inputs", out)
        return out
    if storage.is_uri(out):
        storage.makedirs(storage.parent(out))  # a missing bucket fails now, not after the long pass
    started = time.monotonic()
    lemmas = noun_lemmas(cfg.wordnet_dir)  # before the long pass: a bad WordNet dir fails fast

    units = plan_units(cfg.dumps, cfg.stream_range_bytes)
    log.info("%d dump files -> %d Ray tasks per pass", len(cfg.dumps), len(units))
    counts = count_dumps(units, cfg.bigram_min_count, cfg.bigram_skip_stopwords, cfg.bigram_partitions,
                         use_ray=use_ray, progress=progress)
    if counts.stats.articles == 0:
        raise WitError(f"no articles (namespace 0, not redirects) in {', '.join(cfg.dumps)}",
                       hint="pass English Wikipedia pages-articles dumps")
    log.info("pass 1: %d articles, %d words, %d distinct bigrams", counts.stats.articles,
             sum(counts.unigrams.values()), len(counts.bigrams))

    candidates: dict[str, list[str]] = defaultdict(list)
    for word, count in counts.unigrams.items():
        if count >= cfg.min_word_count:
            candidates[word].append("word")
    bigram_pmi = select_bigrams(counts.unigrams, counts.bigrams, cfg, counts.bigram_positions)
    for pair in bigram_pmi:
        candidates[pair].append("bigram")
    multi_word = phrases_to_count(counts.titles, lemmas, bigram_pmi, counts.unigrams, cfg.min_title_count)
    phrase_counts = count_phrases_in_texts(counts.texts, multi_word, use_ray=use_ray, progress=progress)
    counts.texts = []  # frees the object store
    for title in counts.titles:
        if occurrences(title, counts.unigrams, phrase_counts) >= cfg.min_title_count:
            candidates[title].append("title")
    for lemma in lemmas:
        candidates[lemma].append("wordnet")

    ranked = merge_sources(candidates, counts.unigrams, phrase_counts, bigram_pmi)
    kept = cap(ranked, cfg)
    record = provenance(
        "queries",
        cfg,
        inputs=inputs,
        counts={"before_caps": per_source(ranked), "after_caps": per_source(kept),
                "queries_before_caps": len(ranked), "queries": len(kept)},
        dump_stats=to_dict(counts.stats),
        seconds=round(time.monotonic() - started, 2),
    )
    write_parquet(to_table(kept), out, record)
    log.info("wrote %d queries to %s in %.1f s", len(kept), out, record["seconds"])
    return out


def phrases_to_count(titles: set[str], lemmas: list[str], bigram_pmi: dict[str, float],
                     unigrams: dict[str, int], min_title_count: int) -> set[str]:
    """The multi-word phrases pass 2 must count. A phrase occurs at most as often as its rarest
    word, so a title whose rarest word is below `min_title_count` cannot become a query, and a
    lemma with an unseen word has count 0: leaving them out changes no result."""
    def rarest(phrase: str) -> int:
        return min(unigrams.get(word, 0) for word in phrase.split(" "))

    wanted = {t for t in titles if " " in t and rarest(t) >= min_title_count}
    wanted.update(lemma for lemma in lemmas if " " in lemma and rarest(lemma) > 0)
    wanted.update(pair for pair in bigram_pmi if " " in pair)
    return wanted


def input_files(cfg: QueriesConfig) -> list[dict[str, Any]]:
    """The files a build reads, with their sizes: what decides whether an output is reusable."""
    if not cfg.dumps:
        raise WitError("no dump files given",
                       hint="pass --dump enwiki-...-pages-articles*.xml.bz2 (or --demo)")
    files = []
    indexes = [index for dump in cfg.dumps if (index := index_for(dump)) is not None]
    for name in (*cfg.dumps, *indexes, index_path(cfg.wordnet_dir)):
        path = str(name) if storage.is_uri(name) else str(Path(name))    # local or a cloud URI
        if not storage.is_file(path):
            raise WitError(f"dump file not found: {path}", hint="pass an enwiki pages-articles*.xml.bz2 file")
        files.append({"path": path, "bytes": storage.size(path)})
    return files


def _reusable(out: Path | str, cfg: QueriesConfig, inputs: list[dict[str, Any]]) -> bool:
    if not storage.is_file(out):
        return False
    try:
        recorded = read_provenance(out)
    except Exception:  # noqa: BLE001 - an unreadable old output is rebuilt, not an error
        return False
    return recorded.get("config") == to_dict(cfg) and recorded.get("inputs") == inputs
