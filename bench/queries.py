"""Benchmark of the query builder's hot path on a generated 200 MB multistream + multi-file dump.

Measures, in uncompressed (XML) MB per second per core:
- bz2 decompression alone (the ceiling: nothing can read the dump faster),
- pass 1 (parse + clean + tokenize + count unigrams/bigrams + keep the normalized text) and pass 2
  (phrase matching in the kept text; and, as before, reading the dump again), each single-process
  in CPU seconds; end to end = both passes,
- pass 1 and the whole `queries.build` on Ray with 2 workers (wall clock), pass 1 checked equal to
  the single-process run (tests/queries/test_scale.py checks it against the plain counter),
and projects the time for the full English Wikipedia dump (~95 GB of XML) on 32 cores.

    python bench/queries.py [--mb 200] [--workers 2] [--out bench/results/queries.json]
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

from core.artifacts import versions  # noqa: E402

ENWIKI_XML_BYTES = 95e9  # pages-articles, uncompressed
PROJECTED_CORES = 32


def decompress_rate(paths: list[str]) -> tuple[float, float]:
    """(XML bytes, CPU seconds) for decompressing every file once, 1 MiB at a time."""
    total, started = 0, time.process_time()
    for path in paths:
        with bz2.open(path, "rb") as stream:
            while data := stream.read(1 << 20):
                total += len(data)
    return total, time.process_time() - started


def peak_rss_of_one_unit(unit_args: str) -> float:
    """Peak RSS (MB) of a fresh process running one pass-1 map task on the largest unit."""
    # VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's high-water mark across exec
    code = ("import json,sys; from queries.count import count_unit; from queries.dump import DumpUnit;"
            "count_unit(DumpUnit(**json.loads(sys.argv[1])), 32, True);"
            "print([int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code, unit_args], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default="/tmp/wit-bench-queries", help="where the generated dump goes (reused)")
    parser.add_argument("--out", default="bench/results/queries.json")
    parser.add_argument("--range-mb", type=float, default=8, help="compressed MB per multistream range")
    args = parser.parse_args()

    import dataclasses

    import ray

    from queries.build import build, phrases_to_count
    from queries.config import QueriesConfig, demo_config
    from queries.count import count_dumps, count_phrases, count_phrases_in_texts
    from queries.dump import DumpUnit, plan_units
    from queries.select import select_bigrams
    from queries.synth import generate
    from queries.wordnet import noun_lemmas

    out_dir = Path(args.dir) / f"{args.mb:g}mb"
    marker = out_dir / "_DONE"
    if marker.is_file():
        dumps = json.loads(marker.read_text())
    else:
        started = time.perf_counter()
        dumps = generate(out_dir, demo_config().dumps[0], args.mb, files=2, single_stream=True)
        marker.write_text(json.dumps(dumps))
        print(f"generated {args.mb:g} MB in {time.perf_counter() - started:.0f} s", flush=True)
    wordnet = "/work/shared/data/wordnet" if Path("/work/shared/data/wordnet/index.noun").is_file() \
        else demo_config().wordnet_dir
    cfg = QueriesConfig(dumps=tuple(dumps), wordnet_dir=wordnet, stream_range_bytes=int(args.range_mb * 2**20))
    units = plan_units(cfg.dumps, cfg.stream_range_bytes)
    figures: dict[str, object] = {"units": len(units), "compressed_bytes": sum(Path(p).stat().st_size for p in dumps)}

    xml, seconds = decompress_rate(dumps)
    figures |= {"xml_bytes": xml, "bz2_decompress_mb_s_per_core": round(xml / seconds / 1e6, 2)}
    print(f"bz2 alone: {xml / 1e6:.0f} MB in {seconds:.1f} CPU s", flush=True)

    # Single-process rates use CPU seconds (process_time): the machine's cores are shared, and a
    # core-second is what a dedicated worker would spend.
    started, wall = time.process_time(), time.perf_counter()
    reference = count_dumps(units, cfg.bigram_min_count, cfg.bigram_skip_stopwords, cfg.bigram_partitions,
                            use_ray=False)
    pass1, pass1_wall = time.process_time() - started, time.perf_counter() - wall
    print(f"pass 1 (single process): {pass1:.1f} CPU s, {pass1_wall:.1f} s wall", flush=True)
    lemmas = noun_lemmas(wordnet)
    frequent = reference.bigrams
    bigram_pmi = select_bigrams(reference.unigrams, frequent, cfg, reference.bigram_positions)
    phrases = phrases_to_count(reference.titles, lemmas, bigram_pmi, reference.unigrams, cfg.min_title_count)
    started, wall = time.process_time(), time.perf_counter()
    from_texts = count_phrases_in_texts(reference.texts, phrases, use_ray=False)
    pass2, pass2_wall = time.process_time() - started, time.perf_counter() - wall
    started = time.process_time()
    from_dump = count_phrases([DumpUnit(p) for p in dumps], phrases, use_ray=False)
    pass2_dump = time.process_time() - started
    print(f"pass 2 reading the dump again (before): {pass2_dump:.1f} CPU s, same counts: {from_texts == from_dump}",
          flush=True)
    print(f"pass 2 (single process, {len(phrases):,} phrases): {pass2:.1f} CPU s, {pass2_wall:.1f} s wall",
          flush=True)
    figures |= {
        "pass1_mb_s_per_core": round(xml / pass1 / 1e6, 2),
        "pass2_mb_s_per_core": round(xml / pass2 / 1e6, 2),
        "end_to_end_mb_s_per_core": round(xml / (pass1 + pass2) / 1e6, 2),
        "pass2_phrases": len(phrases),
        "pass1_cpu_seconds": round(pass1, 1), "pass1_wall_seconds": round(pass1_wall, 1),
        "pass2_cpu_seconds": round(pass2, 1), "pass2_wall_seconds": round(pass2_wall, 1),
        "pass2_rereading_dump_mb_s_per_core": round(xml / pass2_dump / 1e6, 2),
        "end_to_end_rereading_dump_mb_s_per_core": round(xml / (pass1 + pass2_dump) / 1e6, 2),
        "pass2_from_texts_equals_rereading_dump": from_texts == from_dump,
        "kept_text_bytes": sum(len(t) for t in reference.texts),
        "bz2_cpu_seconds": round(seconds, 1),
    }

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    on_ray = count_dumps(units, cfg.bigram_min_count, cfg.bigram_skip_stopwords, cfg.bigram_partitions,
                         use_ray=True, progress=True)
    ray_pass1 = time.perf_counter() - started
    equal = (on_ray.unigrams == reference.unigrams and on_ray.bigrams == frequent
             and on_ray.titles == reference.titles and on_ray.bigram_positions == reference.bigram_positions)
    print(f"pass 1 on {args.workers} Ray workers: {ray_pass1:.1f} s, equal to one process: {equal}", flush=True)
    on_ray.texts = []
    out = Path(args.dir) / "queries.parquet"
    if out.exists():
        out.unlink()
    started = time.perf_counter()
    build(dataclasses.replace(cfg), out, use_ray=True, progress=True)
    ray_build = time.perf_counter() - started
    ray.shutdown()
    print(f"build on {args.workers} Ray workers: {ray_build:.1f} s", flush=True)
    largest = max(units, key=lambda u: (u.end or Path(u.path).stat().st_size) - u.start)
    per_core = xml / ray_build / 1e6 / args.workers
    figures |= {
        "ray_workers": args.workers,
        "ray_pass1_seconds": round(ray_pass1, 1),
        "ray_pass1_equals_single_process": equal,
        "ray_build_seconds": round(ray_build, 1),
        "ray_build_mb_s_per_core_wall": round(per_core, 2),
        "peak_rss_mb_one_map_task": round(peak_rss_of_one_unit(json.dumps(dataclasses.asdict(largest))), 0),
        "largest_unit_compressed_bytes": (largest.end or Path(largest.path).stat().st_size) - largest.start,
        "projected_enwiki_hours_on_32_cores_single_process_rate": round(
            ENWIKI_XML_BYTES / (xml / (pass1 + pass2)) / PROJECTED_CORES / 3600, 2),
        "projected_enwiki_hours_on_32_cores_ray_wall_rate": round(ENWIKI_XML_BYTES / (per_core * 1e6) / PROJECTED_CORES / 3600, 2),
        "projected_enwiki_hours_on_32_cores_bz2_ceiling": round(
            ENWIKI_XML_BYTES / (xml / seconds) / PROJECTED_CORES / 3600, 2),
    }
    record = {
        "benchmark": "queries: parse + clean + count, end to end",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/queries.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor(), "memory_gb": round(
                        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "loadavg_at_end": os.getloadavg(),
                    "note": "CPU shared with other jobs: single-process rates are per CPU second; "
                            "the Ray figures are wall clock and so lower bounds"},
        "input": {"generator": "queries.synth (real excerpt pages replicated)", "mb": args.mb,
                  "files": [Path(p).name for p in dumps], "range_mb": args.range_mb},
        "target_mb_s_per_core": 5,
        "figures": figures,
        "versions": versions(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
