"""What a plan is asked: the corpus to build, the model to train, the cluster to do it on, and prices.

A plan config is a YAML or JSON file with the sections `corpus`, `train`, `cluster` (and `name`,
`prices`), or one of the built-in presets (`paper`, `b32-budget`, `demo`, `demo-smoke`). Every
default below is either the paper's figure or a stated assumption; the report prints the
assumptions it used next to the figures measured by bench/.
"""

from __future__ import annotations

import bz2
import json
import os
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from queries.config import demo_config
from core.config import from_dict
from wit.demo.config import DemoConfig, smoke_config
from core.errors import WitError

# The cluster YAMLs the presets name (cluster/aws.yaml, cluster/gcp.yaml), shipped with the package
# (copied by bench/publish_rates.py), so `wit plan` needs no checkout.
PACKAGED_CLUSTERS = Path(__file__).resolve().parent / "data" / "cluster"


@dataclass(frozen=True)
class CorpusPlan:
    target_pairs: int = 400_000_000       # image-text pairs in the corpus (the paper's WIT)
    pool_rows: int | None = None          # None: as many candidate rows as target_pairs needs; set: the pool you have
    pool_source: str = "url + alt-text rows extracted from Common Crawl WAT files, as Parquet"
    queries: int = 500_000                # the paper's query list
    cap_per_query: int = 20_000           # the paper's balance cap
    usable_alt_text_share: float = 0.5    # assumption: pool rows with an English, non-empty alt-text
    download_success: float = 0.7         # assumption: share of selected URLs that still serve an image
    pool_row_bytes: int = 200             # assumption: a Parquet (url, alt-text) row, compressed
    stored_image_bytes: int = 30_000      # assumption: a 256 px JPEG q95 with its row in the corpus
    image_size: int = 256                 # stored images' shorter side (DownloadConfig.image_size)
    wikipedia_xml_gb: float = 95.0        # assumption: enwiki pages-articles XML (BENCHMARKS.md)
    wikipedia_units: int | None = None    # parallel tasks of `wit queries build`; None: from the range size
    largest_unit_mb: float | None = None  # XML MB of the biggest task; None: total / units


@dataclass(frozen=True)
class TrainPlan:
    model: str = "ViT-L/14"               # a name from `wit models`
    epochs: float = 32                    # passes over target_pairs (the paper: 32)
    steps: int | None = None              # set: optimizer steps instead of epochs (demo runs)
    global_batch: int = 32_768            # the paper's contrastive batch
    precision: str = "bf16"
    compile: bool = True                  # use the measured torch.compile step rate when there is one
    state_dtype: str = "fp16"             # Adam states: fp32 (16 bytes/param) or fp16 (12)
    grad_checkpointing: bool | None = None  # None: on only when the batch does not fit without it
    workers: int | None = None            # None: every GPU of the cluster (CPU runs: given)
    eval_images: int = 50_000             # ImageNet val for zero-shot (retrieval sets are smaller)
    eval_classes: int = 1_000
    eval_templates: int = 80              # the paper's prompt ensemble


@dataclass(frozen=True)
class ClusterPlan:
    config: str = "cluster/aws.yaml"      # a Ray cluster YAML, or "local" (this machine)
    cpu_nodes: int | None = None          # None: max_workers of the CPU node type
    gpu_nodes: int | None = None          # None: max_workers of the GPU node type
    node_start_s: float = 300.0           # assumption: autoscaler launch + image pull + setup per stage


@dataclass(frozen=True)
class PlanConfig:
    name: str = "custom"
    corpus: CorpusPlan = CorpusPlan()
    train: TrainPlan = TrainPlan()
    cluster: ClusterPlan = ClusterPlan()
    prices: dict[str, float] = field(default_factory=dict)  # $/hour per instance type; empty: no cost column
    local_rates: bool = False             # a run over the demo's loopback web on this machine: its measured
                                          # rates (bench/results/local_rates.json), not the stage benches'


@dataclass(frozen=True)
class NodeType:
    name: str                             # the node type's name in the cluster YAML
    instance: str                         # InstanceType / machineType
    cpus: int
    gpus: int
    count: int                            # nodes of this type the plan may use
    memory_gib: float
    network_gbps: float
    gpu_name: str = ""
    gpu_memory_gib: float = 0.0
    interconnect_gbps: float = 0.0        # GPU-to-GPU across nodes (EFA / GPUDirect-TCPX)


@dataclass(frozen=True)
class Cluster:
    name: str
    cpu: NodeType                         # runs queries, match, balance, download, decode
    gpu: NodeType | None                  # runs training and eval; None: CPU training (local)
    node_start_s: float
    head: NodeType | None = None          # where a submitted job's driver runs (head_node_type)

    @property
    def cpu_cores(self) -> int:
        return self.cpu.cpus * self.cpu.count


# Facts about instance types the Ray YAMLs do not carry (vendor spec sheets; stated as assumptions
# in the report). (memory GiB, network Gbps, GPU, GPU memory GiB, GPU interconnect Gbps)
INSTANCE_SPECS: dict[str, tuple[float, float, str, float, float]] = {
    "m7i.2xlarge": (32, 12.5, "", 0, 0),
    "m7i.8xlarge": (128, 12.5, "", 0, 0),
    "p5.48xlarge": (2048, 100, "H100", 80, 3200),
    "n2-standard-8": (32, 16, "", 0, 0),
    "n2-standard-32": (128, 32, "", 0, 0),
    "a3-highgpu-8g": (1872, 200, "H100", 80, 1600),
}

# Example on-demand prices, $/hour (assumption: public list prices, 2025; pass your own in `prices`).
EXAMPLE_PRICES = {"m7i.8xlarge": 1.61, "p5.48xlarge": 55.04, "n2-standard-32": 1.55, "a3-highgpu-8g": 88.25}


@dataclass(frozen=True)
class ProbeSizes:
    """A run of every stage on this machine over the demo's web, by its sizes (bench/probe.py runs it;
    the `plan-check` preset plans it)."""

    wikipedia_mb: float = 0.0             # 0: the vendored table-markup excerpt alone; else a generated dump
    wikipedia_files: int = 2              # of that many multistream files (queries.synth)
    pool_rows: int = 160                  # of the demo's loopback web (wit.demo.web.pool)
    cap_per_query: int = 20
    rows_per_download_shard: int = 50
    image_size: int = 64
    train_runs: tuple[tuple[int, int], ...] = ((8, 10), (24, 10))   # (batch per worker, steps), one fit each
    workers: int = 2
    # x 8 colours, both prompt sets; 65 x 8 = 520 is past trainer.eval.config.LOCAL_MAX_ROWS (512), so even
    # the near-empty run embeds through Ray Data actors, as every larger eval does: the same start-up
    eval_images_per_class: int = 65


# The reality check's run: every stage long enough on 2 cores that its start-up jitter (1-4 s run to
# run) is well under 30%. Balance got 4.5x faster per row (2026-12-07) and at 800k pool rows had
# shrunk to ~5 s, 60% start-up: a 3.8 s stall in one pass failed the check (-48%). 2.4M rows give it
# ~10 s (match ~25 s); 30 steps instead of 40 pay back part of the time.
PLAN_CHECK = ProbeSizes(wikipedia_mb=150, wikipedia_files=2, pool_rows=2_400_000, cap_per_query=300,
                        rows_per_download_shard=1_000, train_runs=((24, 30),), eval_images_per_class=600)


def presets() -> dict[str, Callable[[], PlanConfig]]:
    """Built-in plans by name (factories: the demo ones read the vendored dump's size)."""
    return {
        "paper": lambda: PlanConfig(
            name="paper: WIT 400M pairs, ViT-L/14, 32 epochs, batch 32,768",
            prices=EXAMPLE_PRICES,
        ),
        "b32-budget": lambda: PlanConfig(
            name="b32-budget: 400M pairs, ViT-B/32, 32 epochs, batch 32,768",
            train=TrainPlan(model="ViT-B/32"),
            prices=EXAMPLE_PRICES,
        ),
        "demo": lambda: demo_plan(smoke=False),
        "demo-smoke": lambda: demo_plan(smoke=True),
        "plan-check": plan_check_plan,
    }


def demo_plan(smoke: bool) -> PlanConfig:
    """`wit demo` (or `wit demo --smoke`) on this machine, described as a plan."""
    demo = smoke_config("demo_out") if smoke else DemoConfig()
    xml_mb, largest_mb, units = demo_dump_sizes()
    return _local_plan(f"demo{'-smoke' if smoke else ''}: `wit demo{' --smoke' if smoke else ''}` on this machine",
                       CorpusPlan(pool_rows=demo.pool_rows, cap_per_query=demo.cap_per_query, image_size=demo.image_size,
                                  wikipedia_xml_gb=xml_mb / 1000, wikipedia_units=units, largest_unit_mb=largest_mb),
                       TrainPlan(model=demo.model, steps=demo.train_steps, global_batch=demo.batch_size * demo.num_workers,
                                 workers=demo.num_workers, eval_images=8 * demo.eval_images_per_class))


def plan_check_plan() -> PlanConfig:
    """The reality check's run (PLAN_CHECK): every stage long enough to time to 30%."""
    p = PLAN_CHECK
    (batch, steps), = p.train_runs
    return _local_plan("plan-check: every stage on this machine, sized to outlast its start-up",
                       CorpusPlan(pool_rows=p.pool_rows, cap_per_query=p.cap_per_query, image_size=p.image_size,
                                  wikipedia_xml_gb=p.wikipedia_mb / 1000),
                       TrainPlan(model="tiny", steps=steps, global_batch=batch * p.workers, workers=p.workers,
                                 eval_images=8 * p.eval_images_per_class))


def _local_plan(name: str, corpus: CorpusPlan, train: TrainPlan) -> PlanConfig:
    """A run over the demo's loopback web on this machine: CPU training, rates of here. Which rows match
    and which download is not told here but measured (bench/results/local_rates.json: the shares of
    pool rows that matched and of selected URLs that downloaded, on the web bench/local_rates.py ran):
    every pool row counts as usable, since the measured matched share already counts the bad ones."""
    return PlanConfig(
        name=name,
        corpus=replace(corpus, target_pairs=0, pool_source="the demo's loopback web", queries=20_000,
                       usable_alt_text_share=1.0, stored_image_bytes=4_000),
        train=replace(train, precision="fp32", compile=False, state_dtype="fp32", grad_checkpointing=False,
                      eval_classes=8, eval_templates=2),
        cluster=ClusterPlan(config="local", node_start_s=0.0),
        local_rates=True,
    )


def demo_dump_sizes() -> tuple[float, float, int]:
    """(total XML MB, largest file's XML MB, files) of the vendored Wikipedia excerpt: one task per file."""
    sizes = [xml_mb([path]) for path in demo_config().dumps]
    return sum(sizes), max(sizes), len(sizes)


def xml_mb(paths: list[str]) -> float:
    """Uncompressed MB (10^6 bytes) of the .bz2 dumps at `paths`: the queries stage's measure of work."""
    total = 0
    for path in paths:
        with bz2.open(path, "rb") as f:
            total += sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
    return total / 1e6


def load_plan_config(source: str) -> PlanConfig:
    """A preset name, or a YAML/JSON file; a file may start from a preset with `preset: paper`."""
    known = presets()
    if source in known:
        return known[source]()
    path = Path(source)
    if not path.is_file():
        raise WitError(f"no plan preset or file named {source!r}",
                       hint=f"a preset ({', '.join(known)}) or a YAML/JSON file; see `wit plan --help`")
    data = _read_mapping(path)
    preset = data.pop("preset", "paper")
    if preset not in known:
        raise WitError(f"{path}: unknown preset {preset!r}", hint=f"preset: one of {', '.join(known)}")
    base = known[preset]()
    try:
        merged = {"name": data.get("name", path.stem), "prices": data.get("prices", base.prices),
                  "local_rates": bool(data.get("local_rates", base.local_rates))}
        for section, cls in (("corpus", CorpusPlan), ("train", TrainPlan), ("cluster", ClusterPlan)):
            given = data.get(section) or {}
            if not isinstance(given, dict):
                raise TypeError(f"`{section}` must be a mapping")
            given = {key: _number(cls, key, value) for key, value in given.items()}
            merged[section] = from_dict(cls, {**_fields(getattr(base, section)), **given})
        unknown = set(data) - {"name", "prices", "corpus", "train", "cluster", "local_rates"}
        if unknown:
            raise TypeError(f"unknown top-level key(s) {sorted(unknown)}")
        return PlanConfig(**merged)
    except TypeError as err:
        raise WitError(f"{path}: {err}", hint="see `wit plan --help` for the keys of each section") from err


def _number(cls: type, key: str, value: Any) -> Any:
    """YAML reads `4e9` as a string: numeric fields take it as the number it spells."""
    hint = str(typing.get_type_hints(cls).get(key, ""))
    if not isinstance(value, str) or not ("int" in hint or "float" in hint):
        return value
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        raise TypeError(f"{key}: {value!r} is not a number") from None
    return int(number) if "int" in hint and number.is_integer() else number


def _fields(cfg: Any) -> dict[str, Any]:
    return dict(cfg.__dict__)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise WitError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from err
    if not isinstance(data, dict):
        raise WitError(f"{path} must hold a mapping", hint="sections: name, corpus, train, cluster, prices")
    return data


def load_cluster(plan: ClusterPlan) -> Cluster:
    """The CPU and GPU node types of a Ray cluster YAML (or this machine, for "local")."""
    if plan.config == "local":
        return local_cluster()
    path = Path(plan.config)
    if not path.is_absolute() and not path.exists() and path.parent.name == "cluster":
        path = PACKAGED_CLUSTERS / path.name       # a preset's cluster, outside a checkout
    if not path.is_file():
        raise WitError(f"cluster config {plan.config} not found", hint="e.g. --cluster cluster/aws.yaml, or local")
    data = _read_mapping(path)
    types = data.get("available_node_types") or {}
    cpu = gpu = None
    for name, spec in types.items():
        node = _node_type(name, spec)
        if node.gpus and gpu is None:
            gpu = replace(node, count=plan.gpu_nodes if plan.gpu_nodes is not None else node.count)
        elif node.cpus and not node.gpus and cpu is None:
            cpu = replace(node, count=plan.cpu_nodes if plan.cpu_nodes is not None else node.count)
    if cpu is None:
        raise WitError(f"{path} has no CPU worker type (resources: CPU > 0, no GPU)",
                       hint="add a worker type for the corpus stages, as in cluster/aws.yaml")
    head_name = data.get("head_node_type")
    head = _node_type(head_name, types[head_name]) if head_name in types else None
    return Cluster(data.get("cluster_name", path.stem), cpu, gpu, plan.node_start_s, head)


def _node_type(name: str, spec: dict[str, Any]) -> NodeType:
    resources = spec.get("resources") or {}
    node_config = spec.get("node_config") or {}
    instance = str(node_config.get("InstanceType") or node_config.get("machineType") or name)
    memory, network, gpu_name, gpu_memory, interconnect = INSTANCE_SPECS.get(instance, (0, 10, "", 0, 0))
    return NodeType(name=name, instance=instance, cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0)),
                    count=int(spec.get("max_workers", 1)), memory_gib=memory, network_gbps=network,
                    gpu_name=gpu_name, gpu_memory_gib=gpu_memory, interconnect_gbps=interconnect)


def local_cluster() -> Cluster:
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node = NodeType("local", "this machine", cpus, 0, 1, round(memory, 1), 0.0)
    return Cluster("local", node, None, 0.0, node)
