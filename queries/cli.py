"""`wit queries build`: its options and help, and `config_from_args` (options -> QueriesConfig). The handler,
a thin layer over `queries.build.build(cfg, out)`, is in queries/commands.py, imported only when it runs."""

from __future__ import annotations

import argparse
import dataclasses

from queries.config import QueriesConfig, demo_config
from core.commands import command
from core.errors import WitError

DESCRIPTION = """\
Build the query list: the words, high-PMI bigrams and article titles frequent in English
Wikipedia, plus all WordNet noun lemmas, normalized, ranked by frequency and capped.

inputs:  --dump   enwiki pages-articles*.xml.bz2 (repeat for several files; one Ray task each), or
                  pages-articles-multistream*.xml.bz2: with its -multistream-index*.txt.bz2 next
                  to it, split into ranges of whole bz2 streams, one Ray task per range
         --wordnet a WordNet dict/ directory holding index.noun
output:  --out    queries.parquet with query_id:int32 (0..n-1, most frequent first),
                  query:string (normalized), sources:list<string> (word/bigram/title/wordnet),
                  count:int64 (occurrences in the article text), pmi:float64 (bigrams only),
                  and the config, input sizes and versions in its metadata.
Rerunning with the same inputs and options reuses the existing output.

examples:
  wit queries build --demo --out demo_out/queries.parquet
  wit queries build --dump enwiki-20240601-pages-articles-multistream.xml.bz2 \\
      --wordnet /usr/share/wordnet --out queries.parquet
"""

# Threshold options, each overriding the QueriesConfig field of the same name when given.
_THRESHOLDS = (
    ("--min-word-count", int, "min_word_count", "keep every word seen at least N times (paper: 100)"),
    ("--bigram-min-count", int, "bigram_min_count", "bigrams seen at least N times..."),
    ("--min-pmi", float, "min_pmi", "...with PMI at least X (natural log)"),
    ("--min-title-count", int, "min_title_count", "article titles seen at least N times in the text"),
    ("--max-queries", int, "max_queries", "cap on the list size (paper: 500,000)"),
    ("--max-words", int, "max_words", "quota: at most N queries from the word source"),
    ("--max-bigrams", int, "max_bigrams", "quota for the bigram source"),
    ("--max-titles", int, "max_titles", "quota for the title source"),
    ("--max-wordnet", int, "max_wordnet", "quota for the wordnet source"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    queries = subparsers.add_parser("queries", help="build the query list from Wikipedia and WordNet",
                                    description="Query-list stage: `wit queries build --help`.")
    sub = queries.add_subparsers(dest="queries_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser("build", help="Wikipedia dump + WordNet -> queries.parquet",
                           description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("--dump", action="append", default=[], metavar="FILE",
                       help="an enwiki pages-articles*.xml.bz2 file (repeatable)")
    build.add_argument("--wordnet", metavar="DIR", help="WordNet dict/ directory with index.noun")
    build.add_argument("--out", required=True, metavar="FILE", help="where to write queries.parquet")
    build.add_argument("--demo", action="store_true",
                       help="use the vendored enwiki excerpt and WordNet subset with scaled-down thresholds")
    build.add_argument("--no-ray", action="store_true", help="count in this process instead of Ray tasks")
    for flag, kind, _, text in _THRESHOLDS:
        build.add_argument(flag, type=kind, metavar="N" if kind is int else "X", help=text)
    build.set_defaults(run=command("queries.commands", "run_build"))


def config_from_args(args: argparse.Namespace) -> QueriesConfig:
    """--demo starts from demo_config(); otherwise --dump and --wordnet are required."""
    if args.demo:
        cfg = demo_config()
    elif not args.dump or not args.wordnet:
        raise WitError("wit queries build needs --dump FILE (one or more) and --wordnet DIR",
                       hint="or --demo for the vendored excerpt; see `wit queries build --help`")
    else:
        cfg = QueriesConfig(dumps=tuple(args.dump), wordnet_dir=args.wordnet)
    given = ((field, getattr(args, field)) for _, _, field, _ in _THRESHOLDS)
    changes = {field: value for field, value in given if value is not None}
    if args.demo and args.dump:
        changes["dumps"] = tuple(args.dump)
    if args.demo and args.wordnet:
        changes["wordnet_dir"] = args.wordnet
    return dataclasses.replace(cfg, **changes)
