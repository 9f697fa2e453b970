"""How query frequencies fall off with rank, on real caption text: the input of `wit plan`'s balancing model.

Builds queries with our real query builder (the vendored Wikipedia excerpt; the full WordNet noun
index from /work/shared/data/wordnet when present, else the vendored reduced one; up to 500,000
queries), runs the real matcher (pipeline.match.find_queries) over real COCO captions (bench/data and
tests/data/coco_tiny, plus /work/shared/data/coco_tiny when present; deduplicated), and fits
count ∝ rank^-s (wit/plan/balance_sim.fit_zipf). Writes bench/results/query_zipf.json: the exponent,
the fit's R², how many queries each caption matched (the distribution), and the head queries.

    python bench/query_zipf.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from pipeline.match import build_automaton, find_queries  # noqa: E402

SHARED = Path("/work/shared/data")


def captions() -> tuple[list[str], list[str]]:
    sources = [ROOT / "bench" / "data" / "coco_captions.txt", ROOT / "tests" / "data" / "coco_tiny" / "captions.jsonl",
               SHARED / "coco_tiny" / "captions.jsonl"]
    seen: dict[str, None] = {}
    used = []
    for path in sources:
        if not path.is_file():
            continue
        used.append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
        for line in path.read_text().splitlines():
            text = json.loads(line)["caption"] if path.suffix == ".jsonl" else line
            seen.setdefault(text.strip())
    return [t for t in seen if t], used


def match_counts(captions: list[str], queries) -> tuple[Counter, Counter]:
    """(pairs per query id, captions per number-of-queries-matched) from the real matcher."""
    automaton = build_automaton(queries)
    per_query: Counter = Counter()
    per_caption: Counter = Counter()
    for caption in captions:
        ids = find_queries(automaton, caption)
        per_query.update(ids)
        per_caption[len(ids)] += 1
    return per_query, per_caption


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--max-queries", type=int, default=500_000)
    args = ap.parse_args()

    import pyarrow.parquet as pq

    from queries.build import build
    from queries.config import demo_config
    from wit.plan.balance_sim import fit_zipf

    cfg = demo_config()
    if (SHARED / "wordnet" / "index.noun").is_file():
        cfg = replace(cfg, wordnet_dir=str(SHARED / "wordnet"))
    cfg = replace(cfg, max_queries=args.max_queries)
    texts, used = captions()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        table = pq.read_table(build(cfg, Path(tmp) / "queries.parquet", use_ray=False, progress=False))
        build_s = time.perf_counter() - started
    started = time.perf_counter()
    per_query, per_caption = match_counts(texts, table)
    match_s = time.perf_counter() - started
    fit = fit_zipf(per_query.values())
    names = dict(zip(table["query_id"].to_pylist(), table["query"].to_pylist()))
    matched = sum(n for k, n in per_caption.items() if k > 0)
    write_result("query_zipf", {
        "queries": table.num_rows,
        "wordnet_dir": cfg.wordnet_dir.replace(str(ROOT) + "/", ""),
        "captions": len(texts),
        "caption_sources": used,
        "captions_matched": matched,
        "matched_share": round(matched / len(texts), 4),
        "queries_reached": len(per_query),
        "mean_queries_per_caption": round(sum(k * n for k, n in per_caption.items()) / max(matched, 1), 3),
        "queries_per_caption": {str(k): n for k, n in sorted(per_caption.items())},
        "zipf_exponent": round(fit.exponent, 4),
        "zipf_r_squared": round(fit.r_squared, 4),
        "zipf_ranks_used": fit.ranks_used,
        "zipf_min_count": fit.min_count,
        "head_queries": [[names[q], n] for q, n in per_query.most_common(15)],
        "build_s": round(build_s, 2),
        "match_s": round(match_s, 3),
    }, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
