"""The `wit` command: one subcommand per stage, each a thin layer over a Python recipe.

Every stage's cli.py exposes `register(subparsers)`, which adds its subcommand and sets
`run=command("<package>.commands", "<handler>")` as the parser default (core.commands: the handler's
module, and with it Ray or torch, is imported only when it runs, so building this parser stays
light); this file only wires them together and turns user errors into messages with exit codes
(see core.errors).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from pipeline.cli import register as register_pipeline
from queries.cli import register as register_queries
from trainer.cli import register as register_trainer
from core.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, WitError
from wit.demo.cli import register as register_demo
from wit.plan.cli import register as register_plan

DESCRIPTION = """\
Build a WIT-style image-text corpus from the web, guided by Wikipedia, then train CLIP on it.

The stages, in order (each reads the previous one's output directory):
  wit queries build      Wikipedia dump + WordNet         -> queries.parquet
  wit pipeline match     pool of (url, alt-text) + queries -> matched/
  wit pipeline balance   matched/ (<= cap pairs per query) -> selected/
  wit pipeline download  selected/ (img2dataset)           -> corpus/ + manifest.json
  wit train              corpus/ (Ray Train)               -> run/checkpoints/
  wit eval zeroshot      checkpoint + labelled images      -> results.json (prompt ensemble vs single)
  wit eval retrieval     checkpoint + captioned images     -> image<->text R@1/5/10
  wit eval linear-probe  checkpoint + train/test images    -> logistic-regression accuracy
  wit plot RUN           metrics of a run                  -> PNG of loss and throughput
  wit inspect DIR        a Polars summary of any stage's output
  wit demo               all of the above, offline, on the embedded default
  wit plan [PRESET|FILE] what a full build + training run will take: nodes, hours, bytes, cost

Inputs and outputs may be local paths or bucket URIs (s3://bucket/prefix, gs://bucket/prefix);
credentials and endpoints come from the environment (AWS_*, AWS_ENDPOINT_URL_S3, Google ADC).

Exit codes: 0 done, 1 failed (a bug or a broken stage; rerun resumes), 2 bad input (checked before
any work starts; the message names the input and says what to fix), 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in (register_queries, register_pipeline, register_trainer, register_demo, register_plan):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # albumentations (pulled in by img2dataset) checks for updates over the network at import.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except WitError as err:
        print(f"wit: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("wit: interrupted; finished shards are kept, rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the top level reports, it does not hide
        from core.storage import as_wit_error    # here: it imports pyarrow, which the parser never needs

        # A missing bucket or missing credentials can surface deep inside a Ray task: still bad input.
        user_error = as_wit_error(err) if isinstance(err, OSError) else None
        if user_error is not None and not args.traceback:
            print(f"wit: error: {user_error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.traceback:
            raise
        traceback.print_exc()
        print("wit: failed (exit 1); the traceback above says where. Rerun resumes finished work.", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
