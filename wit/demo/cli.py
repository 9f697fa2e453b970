"""`wit demo`: its options and help; the handler (wit/demo/commands.py) is imported only when it runs."""

from __future__ import annotations

import argparse

from core.commands import command

HELP = """\
Run the whole path offline on the embedded default, in minutes on 2 CPUs:

  1. queries   the vendored Wikipedia excerpt + WordNet nouns  -> OUT/queries.parquet
  2. web       a loopback HTTP server of generated images       -> OUT/web/pool.parquet
  3. pipeline  match -> balance -> download with img2dataset    -> OUT/{matched,selected,corpus}/
  4. train     a tiny CLIP on 2 Ray Train workers               -> OUT/run/
  5. eval      zero-shot on held-out images of 8 colours        -> OUT/eval/results.json
  6. summary   counts at every stage, loss, accuracy vs chance  -> OUT/summary.json

Rerunning with the same --out reuses finished stages (same queries, same selected keys).
Look at the corpus afterwards with:  wit inspect OUT/corpus
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run every stage offline on the embedded default",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the web, balancing and training")
    parser.add_argument("--steps", type=int, help="training steps (default: 300)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every stage runs in about a minute")
    parser.set_defaults(run=command("wit.demo.commands", "demo"))
