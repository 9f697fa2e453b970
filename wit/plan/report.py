"""The printed plan: Markdown tables (readable in a terminal, pasted as they are into SCALING.md)."""

from __future__ import annotations

from wit.plan.model import Plan, Stage
from wit.plan.rates import Figure, Rates
from wit.plan.training import (
    USABLE_GPU_MEMORY, MemoryRates, allreduce_bandwidth, gpu_memory, gpus_needed, model_facts, similarity_bytes, step_time,
)


def duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} s"


def size(n: float) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:,.3g}{unit}"
    return f"{n:,.0f}"


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:,.2f}" if h else "-"


def _memory(s: Stage) -> str:
    driver = size(s.driver_bytes) if s.driver_bytes else "-"
    worker = size(s.peak_worker_bytes) if s.peak_worker_bytes else "-"
    return f"{driver} / {worker}" if s.driver_bytes else worker


def stage_table(plan: Plan) -> str:
    priced = any(s.cost is not None for s in plan.stages)
    head = "| stage | work | wall | core-h | GPU-h | stored | moved | peak mem: driver / worker | nodes | bottleneck |"
    rows = [head + (" cost |" if priced else ""), "|" + " --- |" * (head.count("|") - 1 + priced)]
    for s in plan.stages:
        wall = "(in train)" if s.name == "ingest" else duration(s.wall_s)
        row = (f"| {s.name} | {s.work} | {wall} | {_hours(s.core_hours)} | {_hours(s.gpu_hours)} | "
               f"{size(s.stored_bytes) if s.stored_bytes else '-'} | {size(s.moved_bytes) if s.moved_bytes else '-'} | "
               f"{_memory(s)} | {s.nodes} x {s.node_type} | {s.bottleneck} |")
        rows.append(row + (f" {'$' + format(s.cost, ',.0f') if s.cost is not None else '-'} |" if priced else ""))
    total_cost = sum(s.cost or 0 for s in plan.stages)
    rows.append(f"| **total** | stages one after another | **{duration(plan.total_wall_s)}** | "
                f"{_hours(sum(s.core_hours for s in plan.stages))} | {_hours(sum(s.gpu_hours for s in plan.stages))} | "
                f"{size(sum(s.stored_bytes for s in plan.stages))} | | | | |" + (f" **${total_cost:,.0f}** |" if priced else ""))
    return "\n".join(rows)


def balance_section(plan: Plan) -> str:
    b, w = plan.workload.balance, plan.workload
    return "\n".join([
        f"- candidate pairs to match: **{count(w.matched)}** (from a pool of {count(w.pool_rows)} rows) to select "
        f"**{count(w.selected)}** under a cap of {b.cap:,} per query over {b.queries:,} queries",
        f"- query frequency ∝ rank^-{b.exponent:.3f}; {b.mean_queries_per_pair:.2f} queries per pair (both measured)",
        f"- head: {b.saturated_queries:,} queries saturated ({b.saturated_queries / max(b.reached_queries, 1):.1%} of the "
        f"{b.reached_queries:,} reached), making {b.head_claims_share:.1%} of all claims",
        f"- tail: {b.tail_queries:,} queries below the cap keep every pair; {b.unreached_queries:,} queries get none",
    ])


def training_section(plan: Plan, rates: Rates, models: tuple[str, ...]) -> str:
    t, gpu = plan.config.train, plan.cluster.gpu
    if gpu is None:
        return "CPU training on this machine: no GPU memory plan."
    memory_rates = MemoryRates(rates.bytes_per_param, rates.activation_bytes_per_sample, rates.activation_model)
    g = plan.training["gpus"]
    bandwidth = allreduce_bandwidth(g, gpu.gpus, gpu.interconnect_gbps).value
    rows = [f"Global batch {t.global_batch:,}; {gpu.gpu_name} {gpu.gpu_memory_gib:g} GiB, "
            f"{USABLE_GPU_MEMORY:.0%} usable; memory per GPU on the plan's {g} GPUs (local batch {-(-t.global_batch // g):,}).",
            "",
            "| model | params | fwd GFLOP | GPUs needed: fp32 states, ckpt off / on | fp16 states, ckpt off / on "
            "| memory per GPU: ckpt off / on (fp16 states) | similarity [b, B] + features | step on plan GPUs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in models:
        facts = model_facts(name)
        need = {(c, d): gpus_needed(facts, memory_rates, t.global_batch, gpu.gpu_memory_gib, c, d)
                for c in (False, True) for d in ("fp32", "fp16")}
        mem = {c: gpu_memory(facts, memory_rates, t.global_batch, g, c, "fp16") for c in (False, True)}
        fit = {c: need[(c, "fp16")] is not None and need[(c, "fp16")] <= g for c in (False, True)}
        ckpt = not fit[False]
        step = step_time(facts, t.global_batch, g, rates.gpu_flops.value, ckpt, bandwidth)
        show = lambda n: "-" if n is None else f"{n:,}"                                    # noqa: E731
        rows.append(
            f"| {name} | {facts.params / 1e6:,.0f}M | {facts.forward_flops / 1e9:,.1f} | "
            f"{show(need[(False, 'fp32')])} / {show(need[(True, 'fp32')])} | "
            f"{show(need[(False, 'fp16')])} / {show(need[(True, 'fp16')])} | "
            f"{size(mem[False].total_bytes)} / {size(mem[True].total_bytes)} | "
            f"{size(similarity_bytes(t.global_batch, mem[False].local_batch, facts.embed_dim))} | "
            f"{step.seconds:.2f} s{' (ckpt)' if ckpt else ''} |")
    return "\n".join(rows)


def sources_section(plan: Plan) -> str:
    figures: dict[str, Figure] = {}
    for stage in plan.stages:
        for f in stage.figures:
            figures.setdefault(f.source, f)
    measured = sorted((f for f in figures.values() if not f.assumed), key=lambda f: f.source)
    assumed = sorted((f for f in figures.values() if f.assumed), key=lambda f: f.source)
    c = plan.config.corpus
    lines = ["Measured (bench/results):", *(f"- {_value(f)} - {f.source}" for f in measured), "",
             "Assumed (not measured; change them in the plan config):",
             *(f"- {_value(f)} - {f.source}" for f in assumed),
             f"- pool rows usable (English, non-empty alt-text): {c.usable_alt_text_share:.0%}",
             f"- selected URLs that download: {c.download_success:.0%}",
             f"- a pool row {c.pool_row_bytes} B; Wikipedia XML {c.wikipedia_xml_gb:g} GB",
             f"- cloud node start-up per stage: {plan.cluster.node_start_s:g} s",
             "- instance memory, network and GPU interconnect: vendor spec sheets (wit/plan/config.py)"]
    if plan.config.prices:
        lines.append("- prices, $/h: " + ", ".join(f"{k} {v:g}" for k, v in plan.config.prices.items())
                     + " (on-demand list prices; yours differ)")
    if plan.slowdown != 1.0:
        lines.append(f"- CPU times scaled by {plan.slowdown:.2f} (machine busier than when bench/ ran)")
    return "\n".join(lines)


def _value(f: Figure) -> str:
    v = f.value
    text = f"{v:,.4g}" if abs(v) < 1e6 else f"{v:.3g}"
    return f"{text} {f.unit}".strip()


def notes(plan: Plan) -> str:
    return "\n".join(f"- {s.name}: {n}" for s in plan.stages for n in s.notes)


def format_plan(plan: Plan, rates: Rates, models: tuple[str, ...] = ()) -> str:
    t, cl = plan.config.train, plan.cluster
    gpu = f", {cl.gpu.count} x {cl.gpu.instance} ({cl.gpu.gpus} x {cl.gpu.gpu_name})" if cl.gpu else ""
    parts = [f"## Plan: {plan.config.name}", "",
             f"Cluster {cl.name}: {cl.cpu.count} x {cl.cpu.instance} ({cl.cpu.cpus} cores){gpu}. "
             f"Corpus: {count(plan.workload.corpus)} pairs; training: {t.model}, "
             f"{count(plan.workload.samples)} samples seen ({plan.workload.steps:,} steps of {t.global_batch:,}).", "",
             stage_table(plan), "", "### Balancing", "", balance_section(plan)]
    if cl.gpu is not None:
        parts += ["", "### Training memory and step time", "", training_section(plan, rates, models or (t.model,))]
    parts += ["", "### Notes", "", notes(plan), "", "### Where the figures come from", "", sources_section(plan)]
    return "\n".join(parts)


def stage_seconds(plan: Plan) -> dict[str, float]:
    return {s.name: s.wall_s for s in plan.stages if s.name != "ingest"}

