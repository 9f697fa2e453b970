"""What `wit queries build` reads and the thresholds that decide which phrases become queries."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SOURCES = ("word", "bigram", "title", "wordnet")


@dataclass(frozen=True)
class QueriesConfig:
    """Defaults are the paper's full-scale values (CLIP §2.2: words seen >= 100 times in English
    Wikipedia, high-PMI bigrams, article titles above a volume, WordNet nouns; 500,000 queries)."""

    dumps: tuple[str, ...]  # pages-articles*.xml.bz2 files (one Ray task per file)
    wordnet_dir: str  # a WordNet dict/ directory holding index.noun
    min_word_count: int = 100  # `word`: every word seen at least this often in the article text
    bigram_min_count: int = 30  # `bigram`: adjacent pair (within a sentence) seen this often...
    min_pmi: float = 3.0  # ...and with PMI = ln(p(ab) / (p(a) p(b))) at least this
    bigram_skip_stopwords: bool = True  # drop "of the", "in a"...: a function word at either end
    # (bigrams with a number token, "1 000" from "1,000", are always dropped: titles keep "apollo 11")
    min_title_count: int = 10  # `title`: article title / redirect alias seen this often in the text
    max_queries: int = 500_000  # the paper's query-list size; the lowest-ranked are cut
    # Per-source quotas (None = no quota): at most this many kept queries carry the source. A
    # query with several sources is kept while any of its sources is under its quota.
    max_words: int | None = None
    max_bigrams: int | None = None
    max_titles: int | None = None
    max_wordnet: int | None = None
    # Execution only (the output does not depend on them): compressed bytes of whole bz2 streams per
    # Ray task for a multistream dump with its index (bounds a task's memory, see queries.count),
    # and how many hash partitions (reduce tasks) the bigram counts are merged in.
    stream_range_bytes: int = 16 << 20  # ~70 MB of XML: a map task's counts stay well under 1 GB
    bigram_partitions: int = 32

    def quota(self, source: str) -> int | None:
        return {"word": self.max_words, "bigram": self.max_bigrams,
                "title": self.max_titles, "wordnet": self.max_wordnet}[source]


def vendored_data() -> Path:
    """`queries/data/`: the small real inputs shipped with the package (see the READMEs there)."""
    return Path(str(resources.files("queries").joinpath("data")))


def demo_config() -> QueriesConfig:
    """The vendored ~6 MB enwiki excerpt (106 articles, ~0.9M words) and reduced WordNet index.

    English Wikipedia has ~4,000x more words than the excerpt, so the paper's absolute thresholds
    would keep almost nothing; these are scaled so that each source contributes real, readable
    queries (frequent words, names such as "united states", titles such as "anarchism").
    """
    data = vendored_data()
    return QueriesConfig(
        dumps=(
            str(data / "enwiki" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
            str(data / "enwiki" / "enwiki-table-markup.xml.bz2"),
        ),
        wordnet_dir=str(data / "wordnet"),
        min_word_count=20,
        bigram_min_count=10,
        min_pmi=3.0,
        min_title_count=5,
        max_queries=20_000,
    )
