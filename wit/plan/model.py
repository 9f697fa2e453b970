"""The plan: per stage, core-hours or GPU-hours, wall time on the cluster, bytes, memory, bottleneck, cost.

Each stage's wall time = its fixed overhead (bench/overheads.py: the stage on a near-empty input) +
node start-up (cloud clusters, an assumption) + its work divided by the parallel rate:
  queries   XML MB / (MB/s/core x cores), never below the largest task alone
  match     pool rows / (texts/s/core x cores) + one automaton build per actor
  balance   matched rows / (rows/s/core x cores), both passes
  download  max(selected URLs / (images/s/core x cores), bytes fetched / the nodes' network)
  train     steps x step time (GPU: FLOPs at the measured MFU + all-reduce; CPU: measured step cost),
            never faster than the CPUs can decode (ingest)
  ingest    runs during training: decode + tokenize core-hours, and whether the cores keep up
  eval      zero-shot forward passes at the measured FLOP/s
Rates are per core of the machine they were measured on (bench/results/*.json, see wit/plan/rates.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from wit.plan.balance_sim import BalanceSim, PairModel
from wit.plan.config import Cluster, PlanConfig
from wit.plan.rates import Figure, Rates, assumption
from wit.plan.training import (
    USABLE_GPU_MEMORY, MemoryRates, allreduce_bandwidth, gpu_memory, gpus_needed, model_facts, step_time,
)

GB = 1e9
BLOCK_ROWS = 100_000                      # assumption: rows per Ray Data block of matched/ (one task each)
QUERY_ROW_BYTES = assumption(40, "B", "a queries.parquet row (id, text, sources, count), compressed")
DOWNLOAD_WORKER_BYTES = assumption(1e9, "B", "an img2dataset shard task: 32 threads of images + the process")
NETWORK_USE = assumption(0.5, "", "share of a node's network bandwidth a crawl sustains")
EVAL_IMAGE_BYTES = assumption(110_000, "B", "an ImageNet validation JPEG")
DATA_CPUS_PER_GPU = assumption(1, "cores", "cores a GPU's train worker keeps for itself, not for decoding")


@dataclass(frozen=True)
class Stage:
    name: str
    work: str                             # what the stage processes, in words
    wall_s: float
    core_hours: float = 0.0
    gpu_hours: float = 0.0
    stored_bytes: float = 0.0
    moved_bytes: float = 0.0              # read + written + fetched
    peak_worker_bytes: float = 0.0
    driver_bytes: float = 0.0             # the stage's driver process (on the head node), when measured
    bottleneck: str = ""
    node_type: str = ""
    nodes: int = 0
    cost: float | None = None
    figures: tuple[Figure, ...] = ()      # what the estimate stood on
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    xml_mb: float
    pool_rows: float
    matched: float
    selected: float
    corpus: float
    steps: int
    samples: float
    balance: BalanceSim


@dataclass(frozen=True)
class Plan:
    config: PlanConfig
    cluster: Cluster
    workload: Workload
    stages: tuple[Stage, ...]
    training: dict = field(default_factory=dict)   # memory table and step figures (see training_table)
    slowdown: float = 1.0

    @property
    def total_wall_s(self) -> float:
        return sum(s.wall_s for s in self.stages if s.name != "ingest")   # ingest runs inside train

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def download_success(cfg: PlanConfig, rates: Rates) -> Figure:
    """The share of selected URLs that download: measured where the web is at hand (local plans), else
    the plan's assumption."""
    if rates.download_success is not None:
        return rates.download_success
    return assumption(cfg.corpus.download_success, "", "share of selected URLs that still serve an image")


def workload(cfg: PlanConfig, rates: Rates) -> Workload:
    """Rows through each stage: backwards from target_pairs, or forwards from a given pool."""
    c, t = cfg.corpus, cfg.train
    if rates.measured_law:                # the pool's own pairs (a plan of the demo web here)
        pairs = PairModel.from_law(rates.measured_law, c.cap_per_query)
    else:
        pairs = PairModel(c.queries, rates.zipf_exponent.value, rates.queries_per_pair, c.cap_per_query)
    keep = c.usable_alt_text_share * rates.match_share.value
    success = download_success(cfg, rates)
    if c.pool_rows is not None:
        matched = c.pool_rows * keep
        selected = pairs.selected(matched)
        pool = float(c.pool_rows)
    else:
        selected = c.target_pairs / success.value
        matched = pairs.candidates_for(selected)
        pool = matched / keep
    corpus = selected * success.value
    steps = t.steps if t.steps is not None else math.ceil(t.epochs * corpus / t.global_batch)
    return Workload(c.wikipedia_xml_gb * 1000, pool, matched, selected, corpus, steps, steps * t.global_batch,
                    pairs.summarize(matched))


def plan(cfg: PlanConfig, rates: Rates, cluster: Cluster, slowdown: float = 1.0) -> Plan:
    """`slowdown` scales every time measured on a CPU (1.0: as fast as when bench/ ran), for a busy machine."""
    load = workload(cfg, rates)
    train, training = train_stage(cfg, rates, cluster, load, slowdown)
    stages = (queries_stage(cfg, rates, cluster, load, slowdown), match_stage(cfg, rates, cluster, load, slowdown),
              balance_stage(cfg, rates, cluster, load, slowdown), download_stage(cfg, rates, cluster, load, slowdown),
              ingest_stage(cfg, rates, cluster, load, train, training.get("gpus", 0)), train,
              eval_stage(cfg, rates, cluster, slowdown))
    return Plan(cfg, cluster, load, tuple(_priced(s, cfg, cluster) for s in stages), training, slowdown)


def _priced(stage: Stage, cfg: PlanConfig, cluster: Cluster) -> Stage:
    price = cfg.prices.get(stage.node_type)
    if price is None or stage.name == "ingest":
        return stage
    return replace(stage, cost=stage.nodes * stage.wall_s / 3600 * price)


def _bound(busy_s: float, fixed_s: float, work: str) -> str:
    """What the stage waits on: its work, or (when the work is shorter) starting nodes, actors, processes."""
    return work if busy_s > fixed_s else "start-up (nodes, actors, processes)"


def _cpu_nodes(cluster: Cluster, parallel_tasks: float) -> int:
    """CPU nodes the autoscaler brings up for this many parallel tasks (at most the type's count)."""
    return max(1, min(cluster.cpu.count, math.ceil(parallel_tasks / max(cluster.cpu.cpus, 1))))


def queries_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, slow: float) -> Stage:
    c, rate = cfg.corpus, rates.queries_mb_s_per_core
    compressed = load.xml_mb * 1e6 * rates.dump_compression.value
    units = c.wikipedia_units or max(1, math.ceil(compressed / (16 << 20)))   # QueriesConfig.stream_range_bytes
    largest = c.largest_unit_mb or load.xml_mb / units
    nodes = _cpu_nodes(cluster, units)
    cores = min(nodes * cluster.cpu.cpus, units)
    cpu_s = load.xml_mb / rate.value * slow
    busy = max(cpu_s / cores, largest / rate.value * slow)
    overhead = rates.overheads.seconds["queries"]
    return Stage("queries", f"{load.xml_mb / 1000:,.3g} GB Wikipedia XML in {units:,} tasks",
                 overhead.value * slow + cluster.node_start_s + busy, core_hours=cpu_s / 3600,
                 stored_bytes=c.queries * QUERY_ROW_BYTES.value, moved_bytes=compressed,
                 peak_worker_bytes=rates.queries_peak_rss_mb.value * 1e6,
                 bottleneck=_bound(busy, overhead.value + cluster.node_start_s, "CPU: wikitext parse + counting"),
                 node_type=cluster.cpu.instance, nodes=nodes,
                 figures=(rate, rates.dump_compression, rates.queries_peak_rss_mb, overhead, QUERY_ROW_BYTES))


def _process_memory(rates: Rates, stage: str, rows: float) -> tuple[float, float, tuple[Figure, ...]]:
    """(driver bytes, largest worker bytes, the figures) of a pipeline stage at `rows` input rows, from
    bench/scale.py's laws (wit.plan.memory_law); zeros when the results hold none for the stage."""
    laws = [rates.memory_laws.get((stage, process)) for process in ("driver", "largest worker")]
    if None in laws:
        return 0.0, 0.0, ()
    driver, worker = peaks = tuple(law.bytes_at(rows) for law in laws)
    figures = tuple(Figure(peak, "B", f"{law.source} (rows {law.rows[0]:,.0f} -> {law.rows[1]:,.0f}: "
                           f"{law.mib[0]:,.0f} -> {law.mib[1]:,.0f} MiB, x{law.growth:.2f}: "
                           f"{'bounded, the largest measured peak' if law.bounded else 'grows, extrapolated'} "
                           f"at {rows:,.0f} rows)")
                    for law, peak in zip(laws, peaks))
    return driver, worker, figures


def _memory_bound(driver: float, worker: float, cluster: Cluster) -> str | None:
    """A bottleneck line when a process would not fit its node."""
    head = cluster.head or cluster.cpu
    if head.memory_gib and driver > head.memory_gib * 2**30:
        return f"driver memory: {driver / 2**30:,.1f} GiB on a {head.memory_gib:g} GiB head node"
    if cluster.cpu.memory_gib and worker > cluster.cpu.memory_gib * 2**30 / max(cluster.cpu.cpus, 1):
        return f"worker memory: {worker / 2**30:,.1f} GiB per task over a core's share of the node"
    return None


def match_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, slow: float) -> Stage:
    c, rate = cfg.corpus, rates.match_texts_s_per_core
    nodes = _cpu_nodes(cluster, load.pool_rows / 4096)                        # MatchConfig.batch_size rows a task
    cores = nodes * cluster.cpu.cpus
    build = rates.automaton_build_s.value * c.queries / 500_000                # measured at 500k queries
    cpu_s = (load.pool_rows / rate.value + cores * build) * slow
    busy = load.pool_rows / (rate.value * cores) * slow + build * slow
    overhead = rates.overheads.seconds["match"]
    matched_row = c.pool_row_bytes + 4 * load.balance.mean_queries_per_pair + 32     # + query_ids, key
    driver, worker, memory = _process_memory(rates, "match", load.pool_rows)
    worker = max(worker, rates.automaton_rss_mb.value * 1e6 * c.queries / 500_000)
    return Stage("match", f"{load.pool_rows:,.0f} pool rows against {c.queries:,} queries",
                 overhead.value * slow + cluster.node_start_s + busy, core_hours=cpu_s / 3600,
                 stored_bytes=load.matched * matched_row,
                 moved_bytes=load.pool_rows * c.pool_row_bytes + load.matched * matched_row,
                 peak_worker_bytes=worker, driver_bytes=driver,
                 bottleneck=_memory_bound(driver, worker, cluster)
                 or _bound(busy, overhead.value + cluster.node_start_s, "CPU: normalize + word-trie match"),
                 node_type=cluster.cpu.instance, nodes=nodes,
                 figures=(rate, rates.match_share, rates.automaton_build_s, rates.automaton_rss_mb, *memory, overhead),
                 notes=(f"pool source: {c.pool_source}; {c.usable_alt_text_share:.0%} of rows usable (assumption) x "
                        f"{rates.match_share.value:.0%} of captions match a query (measured)",))


def balance_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, slow: float) -> Stage:
    c, rate, sim = cfg.corpus, rates.balance_rows_s_per_core, load.balance
    nodes = _cpu_nodes(cluster, load.matched / BLOCK_ROWS)
    cores = nodes * cluster.cpu.cpus
    cpu_s = load.matched / rate.value * slow
    busy = cpu_s / cores
    # Every pass keeps per-query arrays on the driver and a block or a query-id range in a task
    # (pipeline.balance); their peaks follow the laws bench/scale.py measured.
    driver, worker, memory = _process_memory(rates, "balance", load.matched)
    matched_row = c.pool_row_bytes + 4 * sim.mean_queries_per_pair + 32
    overhead = rates.overheads.seconds["balance"]
    return Stage("balance", f"{load.matched:,.0f} matched pairs, cap {c.cap_per_query:,}",
                 overhead.value * slow + cluster.node_start_s + busy, core_hours=cpu_s / 3600,
                 stored_bytes=load.selected * (matched_row + 4),
                 moved_bytes=2 * load.matched * matched_row + load.selected * (matched_row + 4),
                 peak_worker_bytes=worker, driver_bytes=driver,
                 bottleneck=_memory_bound(driver, worker, cluster)
                 or _bound(busy, overhead.value + cluster.node_start_s, "CPU: two passes over matched"),
                 node_type=cluster.cpu.instance, nodes=nodes,
                 figures=(rate, rates.zipf_exponent, *memory, overhead),
                 notes=(f"{sim.saturated_queries:,} head queries; their cutoffs are computed in tasks per "
                        "query-id range, one row per query reaches the driver",))


def download_rate(rates: Rates, image_size: int) -> Figure:
    """Images/s/core at another output size than measured; resize + re-encode scale with pixels."""
    measured, size = rates.download_images_s_per_core, rates.download_image_size
    if image_size == size:
        return measured
    scale = (size / image_size) ** 2
    return Figure(measured.value * scale, measured.unit, f"assumption: {measured.source.split(': ', 1)[0]} "
                  f"rate x ({size} / {image_size})^2, the cost following the output pixels")


def download_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, slow: float) -> Stage:
    c = cfg.corpus
    rate = download_rate(rates, c.image_size)
    nodes = _cpu_nodes(cluster, load.selected / 10_000)                       # DownloadConfig.rows_per_input_shard
    cores = nodes * cluster.cpu.cpus
    fetched = load.corpus * rates.source_image_bytes.value
    cpu_s = load.selected / rate.value * slow
    cpu_bound = cpu_s / cores
    network = cluster.cpu.network_gbps / 8 * GB * NETWORK_USE.value * nodes
    net_bound = fetched / network if network else 0.0
    overhead = rates.overheads.seconds["download"]
    busy = max(cpu_bound, net_bound)
    bottleneck = _bound(busy, overhead.value + cluster.node_start_s,
                        "network" if net_bound > cpu_bound else "CPU: decode + resize + re-encode")
    stored = load.corpus * c.stored_image_bytes
    success = download_success(cfg, rates)
    driver, _, memory = _process_memory(rates, "download", load.selected)   # planning: footers, per-shard state
    return Stage("download", f"{load.selected:,.0f} URLs -> {load.corpus:,.0f} images "
                 f"({success.value:.0%} succeed, {'assumption' if success.assumed else 'measured'})",
                 overhead.value * slow + cluster.node_start_s + busy, core_hours=cpu_s / 3600,
                 stored_bytes=stored, moved_bytes=fetched + stored, peak_worker_bytes=DOWNLOAD_WORKER_BYTES.value,
                 driver_bytes=driver, bottleneck=_memory_bound(driver, DOWNLOAD_WORKER_BYTES.value, cluster) or bottleneck,
                 node_type=cluster.cpu.instance, nodes=nodes,
                 # an assumed share is listed with the plan's other corpus assumptions (report.py)
                 figures=(rate, *(() if success.assumed else (success,)), rates.source_image_bytes, overhead,
                          NETWORK_USE, DOWNLOAD_WORKER_BYTES, *memory[:1],
                          assumption(c.stored_image_bytes, "B", "a stored 256 px JPEG q95 + its row")))


def ingest_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, train: Stage,
                 train_gpus: int) -> Stage:
    """Decode + crop + tokenize for every training sample; runs on CPUs while the GPUs train."""
    per_sample = 1 / rates.decode_images_s_per_core.value + 1 / rates.tokenize_captions_s_per_core.value
    cpu_s = load.samples * per_sample
    moved = load.samples * cfg.corpus.stored_image_bytes
    need = cpu_s / train.wall_s if train.wall_s else 0.0
    free = f" of {decode_cores(cfg, cluster, train_gpus):,.0f}" if cluster.gpu is not None else ""
    return Stage("ingest", f"{load.samples:,.0f} samples decoded and tokenized", train.wall_s,
                 core_hours=cpu_s / 3600, moved_bytes=moved, bottleneck=f"needs {need:,.0f}{free} cores during training",
                 node_type=train.node_type, nodes=train.nodes,
                 figures=(rates.decode_images_s_per_core, rates.tokenize_captions_s_per_core),
                 notes=("runs inside the train stage's wall time",))


def decode_cores(cfg: PlanConfig, cluster: Cluster, gpus: int) -> float:
    gpu = cluster.gpu
    nodes = math.ceil(gpus / gpu.gpus)
    return nodes * gpu.cpus - gpus * DATA_CPUS_PER_GPU.value


def train_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, load: Workload, slow: float) -> tuple[Stage, dict]:
    t = cfg.train
    facts = model_facts(t.model)
    overhead = rates.overheads.seconds["train"]
    if cluster.gpu is None:
        return _cpu_train(cfg, rates, cluster, load, slow, facts, overhead)
    gpu = cluster.gpu
    memory_rates = MemoryRates(rates.bytes_per_param, rates.activation_bytes_per_sample, rates.activation_model)
    gpus = t.workers or gpu.gpus * gpu.count
    table = {(ckpt, dtype): gpus_needed(facts, memory_rates, t.global_batch, gpu.gpu_memory_gib, ckpt, dtype)
             for ckpt in (False, True) for dtype in ("fp32", "fp16")}
    fits = lambda ckpt: (table[(ckpt, t.state_dtype)] or math.inf) <= gpus          # noqa: E731
    ckpt = t.grad_checkpointing if t.grad_checkpointing is not None else not fits(False)
    bandwidth = allreduce_bandwidth(gpus, gpu.gpus, gpu.interconnect_gbps)
    step = step_time(facts, t.global_batch, gpus, rates.gpu_flops.value, ckpt, bandwidth.value)
    decode_per_sample = 1 / rates.decode_images_s_per_core.value + 1 / rates.tokenize_captions_s_per_core.value
    ingest_step = t.global_batch * decode_per_sample / decode_cores(cfg, cluster, gpus)
    step_s = max(step.seconds, ingest_step)
    busy = load.steps * step_s
    memory = gpu_memory(facts, memory_rates, t.global_batch, gpus, ckpt, t.state_dtype)
    usable = gpu.gpu_memory_gib * 2**30 * USABLE_GPU_MEMORY
    bottleneck = ("GPU memory: batch does not fit" if memory.total_bytes > usable
                  else "ingest: CPUs cannot decode fast enough" if ingest_step > step.seconds
                  else "GPU compute" if step.compute_s > step.allreduce_s else "gradient all-reduce")
    nodes = math.ceil(gpus / gpu.gpus)
    checkpoint_bytes = facts.params * rates.bytes_per_param[t.state_dtype].value * 2   # keeps 2
    stage = Stage("train", f"{t.model}: {load.steps:,} steps x {t.global_batch:,} on {gpus} x {gpu.gpu_name}",
                  overhead.value + cluster.node_start_s + busy, gpu_hours=busy * gpus / 3600,
                  stored_bytes=checkpoint_bytes, moved_bytes=load.samples * cfg.corpus.stored_image_bytes,
                  peak_worker_bytes=memory.total_bytes, bottleneck=bottleneck, node_type=gpu.instance, nodes=nodes,
                  figures=(rates.gpu_flops, rates.bytes_per_param[t.state_dtype],
                           rates.activation_bytes_per_sample[ckpt], bandwidth, overhead),
                  notes=(f"gradient checkpointing {'on' if ckpt else 'off'}, Adam states {t.state_dtype}, "
                         f"{t.precision}; step {step_s:.2f} s (compute {step.compute_s:.2f}, all-reduce "
                         f"{step.allreduce_s:.2f}, ingest {ingest_step:.2f})",
                         f"MFU as measured on {rates.activation_model} (an assumption for {t.model})"))
    return stage, {"facts": facts, "gpus_needed": table, "memory": memory, "step": step, "gpus": gpus,
                   "checkpointing": ckpt, "memory_rates": memory_rates, "usable_bytes": usable}


def _cpu_train(cfg, rates, cluster, load, slow, facts, overhead) -> tuple[Stage, dict]:
    """CPU training (this machine): the step cost measured by bench/overheads.py for the tiny model (or,
    with local rates, the step measured with a corpus streaming); a sample of a bigger model costs at
    least its FLOPs at the CPU step's measured rate."""
    t = cfg.train
    workers = t.workers or 1
    o = rates.overheads
    compute = (4 if t.grad_checkpointing else 3) * facts.forward_flops / rates.cpu_flops.value
    per_sample = max(o.train_step_per_sample_s.value, compute)

    def near_empty(batch: float) -> float:
        """The step on the near-empty corpus (data cached): floor + per sample."""
        return o.train_step_floor_s.value + batch * per_sample

    step_s = near_empty(t.global_batch / workers) * slow
    figures = (o.train_step_floor_s, o.train_step_per_sample_s, rates.cpu_flops, overhead)
    streamed = rates.cpu_train_step_s
    if streamed is not None:
        # The step with a real corpus streaming (decoded on the same cores) at the batch it was measured
        # at, scaled to this batch by the near-empty steps' cost law.
        step_s *= streamed.value / near_empty(rates.cpu_train_batch_per_worker)
        figures += (streamed,)
    busy = load.steps * step_s
    return Stage("train", f"{t.model}: {load.steps:,} steps x {t.global_batch:,} on {workers} CPU workers",
                 overhead.value * slow + busy, core_hours=busy * cluster.cpu.cpus / 3600,
                 bottleneck=_bound(busy, overhead.value, "CPU step"),
                 node_type=cluster.cpu.instance, nodes=1,
                 figures=figures, notes=(f"step {step_s:.3f} s on this machine's CPUs",)), {"facts": facts}


def eval_stage(cfg: PlanConfig, rates: Rates, cluster: Cluster, slow: float) -> Stage:
    t = cfg.train
    facts = model_facts(t.model)
    overhead = rates.overheads.seconds["eval"]
    flops = facts.forward_flops * (t.eval_images + t.eval_classes * t.eval_templates)   # towers counted whole: an upper bound
    if cluster.gpu is None:
        rate = rates.eval_images_s_per_core
        busy = t.eval_images / (rate.value * cluster.cpu.cpus) * slow if rate else 0.0
        return Stage("eval", f"zero-shot: {t.eval_images:,} images, {t.eval_classes} classes x {t.eval_templates} prompts",
                     overhead.value * slow + busy, core_hours=busy * cluster.cpu.cpus / 3600, node_type=cluster.cpu.instance,
                     nodes=1, bottleneck=_bound(busy, overhead.value, "CPU: image decode + forward"),
                     figures=(overhead, rate) if rate else (overhead,))
    gpus = cluster.gpu.gpus
    busy = flops / (gpus * rates.gpu_flops.value)
    return Stage("eval", f"zero-shot: {t.eval_images:,} images, {t.eval_classes} classes x {t.eval_templates} prompts",
                 overhead.value + cluster.node_start_s + busy, gpu_hours=busy * gpus / 3600,
                 moved_bytes=t.eval_images * EVAL_IMAGE_BYTES.value, bottleneck=_bound(busy, overhead.value + cluster.node_start_s, "GPU"),
                 node_type=cluster.gpu.instance, nodes=1, figures=(rates.gpu_flops, overhead, EVAL_IMAGE_BYTES))
