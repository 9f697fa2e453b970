"""Benchmark of `wit pipeline match` (and balance) on real caption text against 500k queries.

Figures (written to bench/results/match.json with the machine, date, command and versions):
  automaton   build seconds and resident memory of our matcher (pipeline.word_trie) and of
              MetaCLIP's (a pyahocorasick automaton) for 500k queries, each in a fresh process
              (RSS after minus RSS before, the query table freed)
  vs_metaclip texts per CPU second of our matcher (find_queries_many: normalize + match a batch)
              and of MetaCLIP's approach restated (below), in the same process, alternated, on the
              same texts (COCO captions, WikiText sentences) and the same 500k entries
  per_core    texts/s of one process, end to end: read Parquet -> match_rows -> write Parquet
  naive       texts/s of matching by a loop over all queries for every text, on a sample
  pipeline    `wit pipeline match` + `wit pipeline balance` on a 1M-row pool on Ray (all CPUs), with a
              head query ("photo") matched by every row, so one query has 1M matches, capped at 20,000

Text: bench/data/ (500 COCO captions, ~7.8k WikiText-2 sentences; see bench/data/README.md).
Queries (500,000, queries.parquet schema): every word of that text, its bigrams seen twice or more,
WordNet's noun lemmas (/work/shared/data/wordnet/index.noun when present), then pseudo-words
(random lowercase strings) to fill up to 500,000 — they sit in the automaton like real tail
queries but rarely match.

MetaCLIP's matcher, restated from its description (substring matching over metadata entries with
pyahocorasick): each entry is added as " " + entry + " "; each text, one at a time, is wrapped in
spaces, the punctuation , . ; : ? ! ` gets a space on either side, tab/CR/LF become spaces, and the
automaton's matches are collected into a set of entry ids. No NFKC and no lowercasing: the text is
matched as written (so it finds less than ours on "Cat" or "ﬁsh"; the figure is speed, not recall).

Usage:  python bench/match.py [--rows 1000000] [--per-core-rows 100000] [--naive-texts 100]
        python bench/match.py --smoke      (small sizes, seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import ahocorasick
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import MatchConfig  # noqa: E402
from pipeline.match import build_automaton, find_queries_many, match_rows  # noqa: E402
from queries.normalize import normalize, tokens  # noqa: E402
from queries.schema import SCHEMA  # noqa: E402
from core.artifacts import versions  # noqa: E402

DATA = ROOT / "bench" / "data"
WORDNET = Path("/work/shared/data/wordnet/index.noun")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def caption_texts() -> tuple[list[str], list[str]]:
    coco = (DATA / "coco_captions.txt").read_text().splitlines()
    wiki = (DATA / "wikitext_sentences.txt").read_text().splitlines()
    return coco, wiki


def bench_queries(texts: list[str], n: int) -> tuple[list[str], dict[str, int]]:
    words: Counter = Counter()
    bigrams: Counter = Counter()
    for t in texts:
        toks = tokens(t)
        words.update(toks)
        bigrams.update(" ".join(p) for p in zip(toks, toks[1:]))
    found: dict[str, None] = {}
    sources = {}
    for name, items in (
        ("word", [w for w, _ in words.most_common()]),
        ("bigram", [b for b, c in bigrams.most_common() if c >= 2]),
        ("wordnet", _wordnet()),
    ):
        before = len(found)
        for q in items:
            if len(found) < n:
                found.setdefault(q)
        sources[name] = len(found) - before
    rng = random.Random(0)
    before = len(found)
    while len(found) < n:
        found.setdefault("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 12))))
    sources["generated"] = len(found) - before
    return list(found), sources


def _wordnet() -> list[str]:
    if not WORDNET.exists():
        return []
    lemmas = []
    for line in WORDNET.read_text().splitlines():
        if line and not line.startswith("  "):
            q = normalize(line.split(" ", 1)[0].replace("_", " "))
            if q:
                lemmas.append(q)
    return lemmas


def write_queries(queries: list[str], path: Path) -> None:
    n = len(queries)
    table = pa.table(
        {
            "query_id": pa.array(range(n), pa.int32()),
            "query": queries,
            "sources": [["bench"]] * n,
            "count": pa.array([1] * n, pa.int64()),
            "pmi": pa.nulls(n, pa.float64()),
        },
        schema=SCHEMA,
    )
    pq.write_table(table, path)


_MEMORY = """
import gc, json, sys, time
sys.path.insert(0, {root!r})
from bench.match import metaclip_automaton
from pipeline.match import build_automaton
from queries.schema import read_queries
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
gc.collect(); before = rss(); t = time.process_time()
table = read_queries({path!r})
automaton = build_automaton(table) if {ours!r} else metaclip_automaton(table["query"].to_pylist())
seconds = time.process_time() - t
del table; gc.collect()
print(json.dumps({{"queries": len(automaton), "build_s": round(seconds, 2), "rss_mb": round((rss() - before) / 2**20, 1)}}))
"""


def automaton_memory(path: Path, ours: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY.format(root=str(ROOT), path=str(path), ours=ours)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_pool(texts: list[str], rows: int, path: Path, prefix: str = "", seed: int = 0) -> None:
    rng = random.Random(seed)
    chosen = [prefix + texts[rng.randrange(len(texts))] for _ in range(rows)]
    urls = [f"https://img{i % 97}.example.org/{i:08d}.jpg" for i in range(rows)]
    pq.write_table(pa.table({"url": urls, "caption": chosen}), path, row_group_size=65_536)


def per_core(automaton, pool: Path, out: Path) -> dict:
    """One process, one core: read Parquet -> match -> write Parquet, timed end to end."""
    cfg = MatchConfig()
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = matched = 0
    writer = None
    for batch in pq.ParquetFile(pool).iter_batches(batch_size=cfg.batch_size):
        table = pa.Table.from_batches([batch]).rename_columns(["url", "text"])
        result, _ = match_rows(automaton, table, cfg)
        rows += table.num_rows
        matched += result.num_rows
        if writer is None:
            writer = pq.ParquetWriter(out, result.schema)
        writer.write_table(result)
    writer.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "rows": rows,
        "matched": matched,
        "seconds": round(seconds, 2),
        "texts_per_s": round(rows / seconds),
        # CPU time: what one dedicated core would take, when other jobs share the machine
        "cpu_seconds": round(cpu_seconds, 2),
        "texts_per_cpu_s": round(rows / cpu_seconds),
    }


def naive(queries: list[str], texts: list[str]) -> dict:
    """MetaCLIP-style substring matching: every query tried against every text (space-padded here, so
    it finds the same whole-word matches as the automaton)."""
    padded_queries = [f" {q} " for q in queries]
    start = time.perf_counter()
    found = 0
    for text in texts:
        padded = f" {normalize(text)} "
        found += sum(1 for q in padded_queries if q in padded)
    seconds = time.perf_counter() - start
    return {
        "texts": len(texts),
        "matches": found,
        "seconds": round(seconds, 2),
        "texts_per_s": round(len(texts) / seconds, 1),
    }


def metaclip_automaton(entries: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for entry_id, entry in enumerate(entries):
        automaton.add_word(f" {entry} ", (entry_id, entry))
    automaton.make_automaton()
    return automaton


_SPACED = str.maketrans({**{p: f" {p} " for p in ",.;:?!`"}, "\t": " ", "\r": " ", "\n": " "})


def metaclip_match(automaton: ahocorasick.Automaton, text: str) -> set[int]:
    """MetaCLIP's matching of one text, restated: punctuation spaced out, no other normalization."""
    return {entry_id for _, (entry_id, _) in automaton.iter(f" {text} ".translate(_SPACED))}


def vs_metaclip(
    ours, theirs: ahocorasick.Automaton, texts: list[str], batch_size: int, rounds: int = 3
) -> dict:
    """Texts per CPU second of both matchers on the same texts, alternated `rounds` times in this
    process (the machine is shared: CPU time, and the best round of each, are what compare)."""
    ours_s, theirs_s = [], []
    for _ in range(rounds):
        start = time.process_time()
        ours_pairs = sum(
            len(find_queries_many(ours, texts[i : i + batch_size])[1])
            for i in range(0, len(texts), batch_size)
        )
        ours_s.append(time.process_time() - start)
        start = time.process_time()
        theirs_pairs = sum(len(metaclip_match(theirs, t)) for t in texts)
        theirs_s.append(time.process_time() - start)
    return {
        "texts": len(texts),
        "ours_texts_per_cpu_s": round(len(texts) / min(ours_s)),
        "metaclip_texts_per_cpu_s": round(len(texts) / min(theirs_s)),
        "ours_over_metaclip": round(min(theirs_s) / min(ours_s), 2),
        "rounds_cpu_s": {"ours": [round(x, 3) for x in ours_s], "metaclip": [round(x, 3) for x in theirs_s]},
        "pairs_found": {"ours": ours_pairs, "metaclip": theirs_pairs},
        "load_avg": os.getloadavg(),
    }


def wit(*args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run([str(Path(sys.executable).parent / "wit"), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:  # say why: the stage's own message, not only the exit status
        raise RuntimeError(f"wit {' '.join(args)} exited {out.returncode}:\n{out.stderr[-4000:]}")
    return seconds, json.JSONDecoder().raw_decode(out.stdout, out.stdout.index("{"))[
        0
    ]  # Ray may print after it


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=500_000)
    p.add_argument("--rows", type=int, default=1_000_000, help="pool rows through wit pipeline (0: skip)")
    p.add_argument("--per-core-rows", type=int, default=100_000)
    p.add_argument("--naive-texts", type=int, default=100)
    p.add_argument(
        "--compare-texts", type=int, default=40_000, help="texts per matcher and round, vs MetaCLIP"
    )
    p.add_argument("--batch-size", type=int, default=MatchConfig().batch_size)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "match.json"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs")
    p.add_argument("--pipeline-only", action="store_true", help="only the --rows run through wit pipeline")
    a = p.parse_args()
    if a.smoke:
        a.queries, a.rows, a.per_core_rows, a.naive_texts, a.compare_texts = 20_000, 20_000, 5_000, 20, 2_000
    coco, wiki = caption_texts()
    texts = coco + wiki
    results: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
        },
        "versions": versions(),
        "text": {"coco_captions": len(coco), "wikitext_sentences": len(wiki)},
    }
    with tempfile.TemporaryDirectory(prefix="wit-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        queries, sources = bench_queries(texts, a.queries)
        write_queries(queries, tmp / "queries.parquet")
        results["queries"] = {"total": len(queries), "by_source": sources}
        if not a.pipeline_only:
            single_process(results, a, tmp, queries, coco, wiki)
        # 1M rows through the real stages on Ray (--rows 0: the single-process figures only).
        if a.rows:
            results["pipeline"] = pipeline(texts, queries, a.rows, tmp)
            print(json.dumps(results["pipeline"]), flush=True)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.out}")


def single_process(results: dict, a: argparse.Namespace, tmp: Path, queries: list[str], coco, wiki) -> None:
    """The matcher's memory, ours vs MetaCLIP's, match_rows end to end and the naive loop, in this process."""
    texts = coco + wiki
    # build_s is CPU seconds (the machine is shared); the planner reads automaton.build_s and .rss_mb
    results["automaton"] = {
        **automaton_memory(tmp / "queries.parquet", ours=True),
        "metaclip": automaton_memory(tmp / "queries.parquet", ours=False),
    }
    print(json.dumps(results["automaton"]), flush=True)

    automaton = build_automaton(pq.read_table(tmp / "queries.parquet", columns=["query_id", "query"]))
    theirs = metaclip_automaton(queries)
    results["vs_metaclip"] = {
        name: vs_metaclip(automaton, theirs, sample * max(1, a.compare_texts // len(sample)), a.batch_size)
        for name, sample in (("coco", coco), ("wikitext", wiki))
    }
    print(json.dumps(results["vs_metaclip"]), flush=True)
    del theirs
    per = {}
    for name, sample in (("coco", coco), ("mixed", texts)):
        write_pool(sample, a.per_core_rows, tmp / f"pool_{name}.parquet")
        per[name] = per_core(automaton, tmp / f"pool_{name}.parquet", tmp / f"out_{name}.parquet")
        print(name, json.dumps(per[name]), flush=True)
    results["per_core"] = per
    rng = random.Random(1)
    sample = rng.sample(texts, a.naive_texts)
    results["naive"] = naive(queries, sample)
    ours = per_core_sample(automaton, sample)
    results["naive"]["ours_on_same_sample_texts_per_s"] = ours
    results["naive"]["speedup"] = round(ours / results["naive"]["texts_per_s"])
    print("naive", json.dumps(results["naive"]), flush=True)
    del automaton


def pipeline(texts: list[str], queries: list[str], rows: int, tmp: Path) -> dict:
    """`wit pipeline match` + `balance` (subprocesses, Ray on all CPUs) on a generated pool; every
    text starts with "photo of", so the query "photo" has one match per row (the head-query path)."""
    write_pool(texts, rows, tmp / "pool_1m.parquet", prefix="photo of ", seed=2)
    pool, queries_path = str(tmp / "pool_1m.parquet"), str(tmp / "queries.parquet")
    load_at_start = os.getloadavg()
    m_s, m = wit("pipeline", "match", pool, "--queries", queries_path, "--out", str(tmp / "matched"))
    load_after_match = os.getloadavg()
    b_s, b = wit("pipeline", "balance", "--matched", str(tmp / "matched"), "--out", str(tmp / "selected"))
    qs = pq.read_table(tmp / "selected" / "query_stats.parquet")
    photo = qs.filter(pa.compute.equal(qs["query_id"], queries.index("photo"))).to_pylist()[0]
    return {
        "rows": rows,
        "match": {
            "wall_s": round(m_s, 1),
            "stage_s": m["seconds"],
            "rows_per_s_wall": round(rows / m_s),
            "output_rows": m["output_rows"],
            "dropped": m["dropped"],
            "duplicate_url_rows": m["duplicate_url_rows"],
            "key_ranges": m["key_ranges"],
        },
        "balance": {
            "cap_per_query": b["cap_per_query"],
            "wall_s": round(b_s, 1),
            "stage_s": b["seconds"],
            "output_rows": b["output_rows"],
            "head_queries": b["head_queries"],
            "queries_matched": b["queries_matched"],
            "head_query_photo": photo,
        },
        "match_plus_balance_wall_s": round(m_s + b_s, 1),
        "load_avg": {"start": load_at_start, "after_match": load_after_match, "end": os.getloadavg()},
    }


def per_core_sample(automaton, texts: list[str]) -> float:
    """Our texts/s on the naive sample (repeated to a measurable size), match_rows only."""
    reps = max(1, 20_000 // len(texts))
    table = pa.table(
        {"url": [f"https://e.org/{i}.jpg" for i in range(len(texts) * reps)], "text": texts * reps}
    )
    start = time.perf_counter()
    match_rows(automaton, table, MatchConfig())
    return round(table.num_rows / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
