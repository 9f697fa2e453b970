"""The measured rates a plan stands on, each read from a benchmark result with the file and key it came from.

Every `Figure` says where its number came from: `bench/results/<file>.json: <key path>` for a
measurement, `assumption: <why>` for a number we have not measured. Reports print the source next to
the figure, so every line of SCALING.md can be traced back. Other benchmarks keep adding keys to these
files; a figure reads only its own key and ignores the rest. match.json and download.json predate
bench/common.py's `figures` section, so their keys are looked up at the top level and under
`figures.` alike, for when they move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import WitError
from wit.plan.memory_law import SCALE_FILE, MemoryLaw, memory_laws

# The bench results a plan reads: a copy of bench/results/*.json shipped as package data (written by
# `python bench/publish_rates.py`; tests/test_bench_results.py checks the copy is current), so `wit plan`
# needs no checkout. `--results DIR` reads another directory of the same files.
RESULTS_DIR = Path(__file__).resolve().parent / "data" / "results"

# How to (re)create each results file when it is missing.
BENCH_COMMANDS = {
    "queries.json": "python bench/queries.py --mb 200 --range-mb 8",
    "match_per_core.json": "python bench/match.py --rows 0 --out bench/results/match_per_core.json",
    "match.json": "python bench/match.py",
    "download.json": "python bench/download.py --images 2000",
    "tokenizer.json": "python bench/tokenizer.py",
    "step_cuda.json": "python bench/step.py --device cuda --batch 256 --precision bf16 (on a GPU)",
    "train.json": "python bench/train.py (and --gpu --no-ray --compile on a GPU)",
    "memory_cuda.json": "python bench/memory.py --device cuda --batch 256 --precision bf16 (on a GPU)",
    "overheads.json": "python bench/overheads.py",
    "query_zipf.json": "python bench/query_zipf.py",
    "local_rates.json": "python bench/local_rates.py",
    "scale.json": "python bench/scale.py --sizes 1e6,4e6,1e7",
}
PUBLISHED = tuple(BENCH_COMMANDS)           # every file a plan reads: what bench/publish_rates.py ships


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    source: str                       # "bench/results/x.json: a.b.c" or "assumption: ..."

    @property
    def assumed(self) -> bool:
        return self.source.startswith("assumption")


def assumption(value: float, unit: str, why: str) -> Figure:
    return Figure(float(value), unit, f"assumption: {why}")


class Results:
    """The JSON files of bench/results, read once each, with errors that say which bench to run."""

    def __init__(self, results_dir: str | Path = RESULTS_DIR):
        self.dir = Path(results_dir)
        self._cache: dict[str, Any] = {}

    def load(self, name: str) -> Any:
        if name not in self._cache:
            path = self.dir / name
            if not path.is_file():
                raise WitError(f"benchmark result {path} is missing",
                               hint=f"run `{BENCH_COMMANDS.get(name, 'the bench that writes it')}` and "
                                    "`python bench/publish_rates.py`, or pass --results DIR with the results files")
            try:
                self._cache[name] = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise WitError(f"benchmark result {path} is not valid JSON ({err})",
                               hint=f"rerun `{BENCH_COMMANDS.get(name, 'its bench')}`") from err
        return self._cache[name]

    def figure(self, name: str, keys: str | tuple[str, ...], unit: str) -> Figure:
        """The number at the first of `keys` (dotted paths; list items by index) found in `name`."""
        data = self.load(name)
        for key in (keys,) if isinstance(keys, str) else keys:
            value = dig(data, key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return Figure(float(value), unit, f"bench/results/{name}: {key}")
        raise WitError(f"bench/results/{name} has no number at {' or '.join((keys,) if isinstance(keys, str) else keys)}",
                       hint=f"rerun `{BENCH_COMMANDS.get(name, 'its bench')}` (the file may predate that figure)")


def dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def ratio(top: Figure, bottom: Figure, unit: str) -> Figure:
    """A derived figure keeps both sources."""
    return Figure(top.value / bottom.value, unit, f"{top.source} / {bottom.source.split(': ', 1)[-1]}")


@dataclass(frozen=True)
class StageOverhead:
    """A stage's fixed cost on a near-empty input (bench/overheads.py), and for CPU training the step."""

    seconds: dict[str, Figure]            # by stage: queries, match, balance, download, train, eval
    train_step_floor_s: Figure            # tiny CLIP on this machine: seconds per step at batch 0 ...
    train_step_per_sample_s: Figure       # ... plus this per sample of the per-worker batch


@dataclass(frozen=True)
class Rates:
    queries_mb_s_per_core: Figure
    queries_peak_rss_mb: Figure
    dump_compression: Figure              # bz2 bytes per XML byte
    match_texts_s_per_core: Figure
    match_share: Figure                   # share of real captions matching >= 1 query
    automaton_build_s: Figure             # 500k queries, one per actor
    automaton_rss_mb: Figure
    balance_rows_s_per_core: Figure
    memory_laws: dict[tuple[str, str], MemoryLaw]   # (stage, "driver" | "largest worker") -> peak RSS law
    download_images_s_per_core: Figure
    source_image_bytes: Figure
    decode_images_s_per_core: Figure
    tokenize_captions_s_per_core: Figure
    gpu_flops: Figure                     # achieved FLOP/s per GPU (training step)
    cpu_flops: Figure                     # achieved FLOP/s of one CPU training process (this machine)
    gpu_name: str
    bytes_per_param: dict[str, Figure]
    activation_bytes_per_sample: dict[bool, Figure]   # by gradient checkpointing
    activation_model: str
    zipf_exponent: Figure
    queries_per_pair: dict[int, int]      # measured: captions by number of matched queries
    queries_per_pair_source: str
    overheads: StageOverhead
    # Plans of a run over the demo's loopback web on this machine (PlanConfig.local_rates): its rates
    # replace the stage benches' (with_local_rates), and these are set.
    download_image_size: int = 256        # the output size download_images_s_per_core was measured at
    eval_images_s_per_core: Figure | None = None   # zero-shot on CPU, both prompt sets
    measured_law: dict | None = None      # the pool's pairs by query set (bench/probe.py: query_law)
    download_success: Figure | None = None   # measured share of selected URLs that download (local plans)
    cpu_train_step_s: Figure | None = None   # a CPU step with the corpus streaming, at this per-worker batch:
    cpu_train_batch_per_worker: int = 0


def load_rates(results_dir: str | Path = RESULTS_DIR, compiled: bool = True, gpu: str = "H100") -> Rates:
    """The rates for a plan whose GPUs are `gpu` (a name as in the benches' device, e.g. H100)."""
    r = Results(results_dir)
    q, mp, d = "queries.json", "match_per_core.json", "download.json"
    either = _either
    balance_rate = _pipeline_rate(r, "balance")
    coco_rows = r.figure(mp, either("per_core.coco.rows"), "rows")
    coco_matched = r.figure(mp, either("per_core.coco.matched"), "rows")
    batch = r.figure("memory_cuda.json", "figures.batch", "samples")
    memory = r.load("memory_cuda.json").get("figures", {})
    zipf = r.load("query_zipf.json").get("figures", {})
    return Rates(
        queries_mb_s_per_core=r.figure(q, "figures.end_to_end_mb_s_per_core", "MB/s/core"),
        queries_peak_rss_mb=r.figure(q, "figures.peak_rss_mb_one_map_task", "MB"),
        dump_compression=ratio(r.figure(q, "figures.compressed_bytes", "B"), r.figure(q, "figures.xml_bytes", "B"), ""),
        match_texts_s_per_core=_pipeline_rate(r, "match"),
        match_share=ratio(coco_matched, coco_rows, ""),
        automaton_build_s=r.figure(mp, either("automaton.build_s"), "s"),
        automaton_rss_mb=r.figure(mp, either("automaton.rss_mb"), "MB"),
        balance_rows_s_per_core=balance_rate,
        memory_laws=memory_laws(r.load(SCALE_FILE), f"bench/results/{SCALE_FILE}"),
        download_images_s_per_core=r.figure(d, either("results.wit.images_per_s_per_core"), "images/s/core"),
        source_image_bytes=r.figure(d, either("input.mean_jpeg_bytes"), "B"),
        decode_images_s_per_core=_decode_rate(r, gpu),
        tokenize_captions_s_per_core=r.figure("tokenizer.json", "figures.coco_captions_per_s", "captions/s/core"),
        gpu_flops=_gpu_flops(r, compiled, gpu),
        cpu_flops=_cpu_flops(r),
        gpu_name=gpu,
        bytes_per_param={dtype: r.figure("memory_cuda.json", f"figures.bytes_per_param_{dtype}_states", "B/param")
                         for dtype in ("fp32", "fp16")},
        activation_bytes_per_sample={
            on: _per_sample(r.figure("memory_cuda.json", f"figures.activation_mib_checkpointing_{'on' if on else 'off'}",
                                     "MiB"), batch)
            for on in (False, True)},
        activation_model=str(memory.get("model", "ViT-B/32")),
        zipf_exponent=r.figure("query_zipf.json", "figures.zipf_exponent", ""),
        queries_per_pair={int(k): int(n) for k, n in (zipf.get("queries_per_caption") or {}).items()},
        queries_per_pair_source="bench/results/query_zipf.json: figures.queries_per_caption",
        overheads=_overheads(r),
    )


def _either(key: str) -> tuple[str, str]:
    """A key at the top level or under `figures.` (files older than bench/common.py's layout)."""
    return key, f"figures.{key}"


def _pipeline_rate(r: Results, stage: str) -> Figure:
    """Rows/s/core of a whole pipeline stage on Ray (bench/match.py's 1M-row run): reading, the stage's
    work, staging by key range and merging, not the matching kernel alone (4-10x faster)."""
    m = "match.json"
    rows = r.figure(m, _either("pipeline.rows"), "rows")
    seconds = r.figure(m, _either(f"pipeline.{stage}.stage_s"), "s")
    cpus = r.figure(m, _either("machine.cpus"), "cores")
    return Figure(rows.value / seconds.value / cpus.value, "rows/s/core",
                  f"bench/results/{m}: pipeline.rows / pipeline.{stage}.stage_s / machine.cpus")


LOCAL_STAGES = {"queries": "queries_mb_s_per_core", "match": "match_texts_s_per_core",
                "balance": "balance_rows_s_per_core", "download": "download_images_s_per_core",
                "eval": "eval_images_s_per_core"}


def with_local_rates(rates: Rates, results_dir: str | Path = RESULTS_DIR, usable_share: float = 1.0) -> Rates:
    """`rates` with this machine's per-item costs on the demo's data (bench/local_rates.py) in place of
    the stage benches': for plans of runs over the demo's loopback web here, not for clusters. Each
    is scaled by this machine's speed when bench/overheads.py last ran against its speed then (the
    same fixed CPU job, timed by both)."""
    r = Results(results_dir)
    name = "local_rates.json"
    figures = r.load(name)["figures"]
    then = r.figure(name, "figures.cpu_reference_s", "s")
    now = r.figure("overheads.json", "figures.cpu_reference_s", "s")       # measured just before the plan's run
    speed = then.value / now.value                                         # > 1: faster now than then

    def at_speed_now(key: str, unit: str, is_rate: bool = True) -> Figure:
        """A rate times the speed-up since it was measured; a time divided by it."""
        f = r.figure(name, key, unit)
        op = "x" if is_rate else "/"
        return Figure(f.value * speed if is_rate else f.value / speed, unit, f"{f.source} {op} ({then.source} / {now.source})")

    local = {field: at_speed_now(f"figures.per_core.{stage}", figures["units"][stage] + "/s/core")
             for stage, field in LOCAL_STAGES.items()}
    matched = r.figure(name, "figures.matched_share", "")
    match_share = Figure(matched.value / usable_share, "", f"{matched.source} / the plan's usable_alt_text_share")
    step = at_speed_now("figures.train_step_s", "s", is_rate=False)
    downloaded = r.figure(name, "figures.downloaded_share", "")
    return replace(rates, **local, match_share=match_share, download_success=downloaded,
                   download_image_size=int(figures["image_size"]),
                   cpu_train_step_s=step, cpu_train_batch_per_worker=int(figures["train_batch_per_worker"]),
                   measured_law=figures["law"], queries_per_pair_source=f"bench/results/{name}: figures.law")


def _per_sample(mib: Figure, batch: Figure) -> Figure:
    return Figure(mib.value * 2**20 / batch.value, "B/sample", f"{mib.source} / figures.batch")


def _decode_rate(r: Results, gpu: str) -> Figure:
    """JPEG decode + crop + resize + tokenize per process on a GPU host (the plan's GPU type when
    measured there), the slowest of its runs."""
    runs = r.load("train.json").get("runs") or []
    found = [(i, run) for i, run in enumerate(runs)
             if "cpu" not in str(dig(run, "machine.device") or "cpu").lower()
             and isinstance(dig(run, "figures.decode.images_per_s_per_process"), (int, float))]
    same = [(i, run) for i, run in found if gpu and gpu in str(dig(run, "machine.device"))]
    if not found:
        return r.figure("train.json", "runs.0.figures.decode.images_per_s_per_process", "images/s/core")
    i, _ = min(same or found, key=lambda item: item[1]["figures"]["decode"]["images_per_s_per_process"])
    return r.figure("train.json", f"runs.{i}.figures.decode.images_per_s_per_process", "images/s/core")


def _gpu_flops(r: Results, compiled: bool, gpu: str) -> Figure:
    """Achieved FLOP/s per GPU = MFU x the peak it was measured against: the torch.compile run on
    the plan's GPU type with the largest batch (a 32k global batch gives every GPU hundreds of samples),
    else on any GPU; else the eager step of step_cuda.json."""
    if compiled:
        found = [(i, run) for i, run in enumerate(r.load("train.json").get("runs") or [])
                 if isinstance(dig(run, "figures.synthetic_compiled.mfu"), (int, float))
                 and isinstance(dig(run, "figures.synthetic_compiled.peak_tflops"), (int, float))]
        same = [(i, run) for i, run in found if gpu and gpu in str(dig(run, "machine.device"))]
        if same or found:
            i, run = max(same or found, key=lambda item: item[1].get("batch") or 0)
            key = f"runs.{i}.figures.synthetic_compiled"
            mfu, peak = dig(run, "figures.synthetic_compiled.mfu"), dig(run, "figures.synthetic_compiled.peak_tflops")
            return Figure(mfu * peak * 1e12, "FLOP/s/GPU", f"bench/results/train.json: {key}.mfu x {key}.peak_tflops")
    mfu = r.figure("step_cuda.json", "figures.ours_mfu", "")
    peak = r.figure("step_cuda.json", "figures.peak_matmul_tflops_measured", "TFLOP/s")
    return Figure(mfu.value * peak.value * 1e12, "FLOP/s/GPU",
                  "bench/results/step_cuda.json: figures.ours_mfu x figures.peak_matmul_tflops_measured")


def _cpu_flops(r: Results) -> Figure:
    """Achieved FLOP/s of the synthetic training step on a CPU (MFU x the measured matmul peak)."""
    for i, run in enumerate(r.load("train.json").get("runs") or []):
        mfu, peak = dig(run, "figures.synthetic.mfu"), dig(run, "figures.synthetic.peak_tflops")
        if str(dig(run, "machine.device")) == "cpu" and isinstance(mfu, (int, float)) and isinstance(peak, (int, float)):
            key = f"runs.{i}.figures.synthetic"
            return Figure(mfu * peak * 1e12, "FLOP/s", f"bench/results/train.json: {key}.mfu x {key}.peak_tflops")
    raise WitError("bench/results/train.json has no CPU run", hint="run `python bench/train.py` on this machine")


STAGES = ("queries", "match", "balance", "download", "train", "eval")


def _overheads(r: Results) -> StageOverhead:
    name = "overheads.json"
    return StageOverhead(
        seconds={stage: r.figure(name, f"figures.overhead_s.{stage}", "s") for stage in STAGES},
        train_step_floor_s=r.figure(name, "figures.train_step.floor_s", "s"),
        train_step_per_sample_s=r.figure(name, "figures.train_step.per_sample_s", "s/sample"),
    )
