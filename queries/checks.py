"""`wit queries build`'s input checks, before any Ray task reads a dump: every dump is a bz2 file,
the WordNet directory holds index.noun, the thresholds are in range, the output can be written."""

from __future__ import annotations

from queries.config import QueriesConfig
from core import storage, validate
from core.errors import WitError

BZ2_MAGIC = b"BZh"
XML_STARTS = (b"<", b"\xef\xbb\xbf<")     # an uncompressed export: XML, perhaps after a UTF-8 BOM
DUMP_HINT = "pass an enwiki pages-articles*.xml.bz2 file"
WORDNET_HINT = "pass a WordNet dict/ directory, e.g. /usr/share/wordnet (Debian wordnet-base)"
# Thresholds below these values select nothing or everything: a typo, not a choice.
MINIMUM = {"min_word_count": 1, "bigram_min_count": 1, "min_title_count": 1, "max_queries": 1,
           "max_words": 0, "max_bigrams": 0, "max_titles": 0, "max_wordnet": 0}


def check_build(cfg: QueriesConfig, out: str) -> None:
    for field, minimum in MINIMUM.items():      # named as the option that sets it (--max-queries ...)
        validate.check_at_least({f"--{field.replace('_', '-')}": getattr(cfg, field)}, minimum)
    for dump in cfg.dumps:
        check_dump(dump)
    validate.check_dir(cfg.wordnet_dir, "WordNet directory", hint=WORDNET_HINT)
    validate.check_file(storage.join(cfg.wordnet_dir, "index.noun"), "WordNet index", hint=WORDNET_HINT)
    validate.check_output(out, "--out", directory=False)


def check_dump(dump: str) -> None:
    """A .bz2 dump starts as bz2 does; any other is an uncompressed XML export (whose MediaWiki root
    the reader checks)."""
    if storage.name(dump).endswith(".bz2"):
        validate.check_magic(dump, BZ2_MAGIC, "dump file", "a bz2 file", hint=DUMP_HINT)
        return
    validate.check_file(dump, "dump file", hint=DUMP_HINT)
    with storage.open_input_stream(dump) as f:
        head = f.read(64).lstrip()
    if not head.startswith(XML_STARTS):
        raise WitError(f"dump file {storage.display(dump)} is neither bz2 nor XML (it starts with {head[:8]!r})",
                       hint=DUMP_HINT)
