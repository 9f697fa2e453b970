"""`wit train`: CLIP on a corpus with Ray Train (DDP workers) fed by Ray Data.

The driver trains or loads the tokenizer, builds the data stream and starts a TorchTrainer; each
worker rebuilds the config from a plain dict, trains, appends metrics (rank 0) to
`run_dir/metrics.jsonl` and reports checkpoints. The latest checkpoint is copied to
`run_dir/checkpoints/latest/` (model.pt with OpenAI parameter names, optimizer.pt, scheduler.pt,
scaler.pt, train_state.json, tokenizer.json), which is what `load_checkpoint` and eval read.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.data import build_dataset, corpus_rows, normalize_images, read_captions
from trainer.loss import clip_loss
from trainer.model import CLIP, CLIPConfig, build_model, model_config
from trainer.optim import OptimConfig, build_optimizer
from trainer.tokenizer import Tokenizer, train_tokenizer
from wit.artifacts import is_done, mark_done, provenance, read_json, write_json
from wit.config import from_dict, to_dict
from wit.errors import WitError

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    corpus_dir: str
    run_dir: str
    model: str = "tiny"                   # a name in trainer.model.MODELS
    batch_size: int = 64                  # per worker; the contrastive batch is batch_size * num_workers
    steps: int | None = None              # None: `epochs` passes over the corpus
    epochs: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.2
    warmup_steps: int | None = None       # None: 10% of the steps, at most the paper's 2,000
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    state_dtype: str = "fp32"
    precision: str = "fp32"               # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler)
    grad_checkpointing: bool = False
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float | None = None  # None: GPU runs 1; CPU runs share what data_cpus leaves
    data_cpus: float | None = None        # CPUs for Ray Data decode/crop/tokenize; None: 1 on CPU runs,
                                          # on GPU runs all the CPUs the workers do not hold
    seed: int = 0
    checkpoint_every: int = 0             # steps; 0 = only at the end
    log_every: int = 10                   # steps between ray.train.report calls (metrics.jsonl: every step)
    tokenizer_path: str | None = None     # None: train a BPE on the corpus captions into run_dir
    tokenizer_vocab_size: int = 49_152

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise WitError(f"precision {self.precision!r} is unknown", hint=f"one of {PRECISIONS}")
        if self.batch_size < 2 or self.num_workers < 1:
            raise WitError("batch_size must be >= 2 and num_workers >= 1")
        model_config(self.model)          # fail on the driver, not in a worker

    def optim(self, total_steps: int) -> OptimConfig:
        warmup = self.warmup_steps if self.warmup_steps is not None else min(2_000, total_steps // 10)
        return OptimConfig(self.lr, self.weight_decay, self.betas, self.eps, warmup, total_steps, self.state_dtype)


# ---------------------------------------------------------------------------------------------
# On each worker


def _autocast_and_scaler(precision: str, device: torch.device):
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    return autocast, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def train_step(model, clip: CLIP, batch, optimizer, scheduler, scaler, autocast, rank: int, world: int):
    images = normalize_images(batch["image"])                           # [B, 3, H, W] float
    with autocast():
        image_features, text_features, _ = model(images, batch["text"])
    loss = clip_loss(image_features.float(), text_features.float(), clip.logit_scale, rank, world)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    with torch.no_grad():                 # the paper clips the temperature so logits scale <= 100
        clip.logit_scale.clamp_(0, math.log(100))
    return loss.detach()


def _save_checkpoint(directory: Path, clip: CLIP, optimizer, scheduler, scaler, step: int,
                     cfg: TrainConfig, tokenizer_path: str) -> None:
    torch.save(clip.state_dict(), directory / "model.pt")
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    torch.save(scheduler.state_dict(), directory / "scheduler.pt")
    torch.save(scaler.state_dict(), directory / "scaler.pt")
    shutil.copy(tokenizer_path, directory / "tokenizer.json")
    state = {"step": step, "train_config": to_dict(cfg), "model_config": to_dict(clip.cfg)}
    write_json(provenance("train", cfg, **state), directory / "train_state.json")


def train_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint
    from torch.nn.parallel import DistributedDataParallel

    cfg = from_dict(TrainConfig, config["train"])
    total_steps = config["total_steps"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if not cfg.use_gpu:
        torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    torch.manual_seed(cfg.seed)

    tokenizer = Tokenizer.load(config["tokenizer_path"])
    model = build_model(cfg.model, tokenizer.vocab_size, cfg.grad_checkpointing)
    model = ray.train.torch.prepare_model(model)                        # device + DDP (gloo on CPU)
    clip = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer, scheduler = build_optimizer(clip, cfg.optim(total_steps))
    autocast, scaler = _autocast_and_scaler(cfg.precision, ray.train.torch.get_device())
    metrics_file = open(Path(cfg.run_dir) / "metrics.jsonl", "w") if rank == 0 else None

    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=cfg.batch_size, drop_last=True, prefetch_batches=4,
        local_shuffle_buffer_size=8 * cfg.batch_size, local_shuffle_seed=cfg.seed + rank,
        dtypes={"image": torch.uint8, "text": torch.int64})
    def report(metrics: dict, save: bool) -> None:   # a barrier: every worker calls it at the same steps
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if save and rank == 0:
                _save_checkpoint(Path(tmp), clip, optimizer, scheduler, scaler, metrics["step"], cfg,
                                 config["tokenizer_path"])
                checkpoint = Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)

    step, tick, metrics = 0, time.perf_counter(), {}
    for batch in batches:
        loss = train_step(model, clip, batch, optimizer, scheduler, scaler, autocast, rank, world)
        step += 1
        now = time.perf_counter()
        metrics = {"step": step, "loss": float(loss), "lr": scheduler.get_last_lr()[0],
                   "logit_scale": clip.logit_scale.detach().exp().item(), "step_time_s": now - tick,
                   "samples_per_s": cfg.batch_size * world / (now - tick)}
        tick = now
        if metrics_file:
            metrics_file.write(json.dumps(metrics) + "\n")
            metrics_file.flush()
        save = step >= total_steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        if save or step % cfg.log_every == 0:
            report(metrics, save)
        if step >= total_steps:
            break
    else:
        if metrics:                       # the stream ended before total_steps: keep what was learned
            report(metrics, save=True)
    if metrics_file:
        metrics_file.close()


# ---------------------------------------------------------------------------------------------
# On the driver


def _tokenizer(cfg: TrainConfig, run_dir: Path) -> Path:
    if cfg.tokenizer_path:
        Tokenizer.load(cfg.tokenizer_path)                              # validate before starting workers
        return Path(cfg.tokenizer_path).resolve()
    path = run_dir / "tokenizer.json"
    return train_tokenizer(read_captions(cfg.corpus_dir), cfg.tokenizer_vocab_size).save(path)


def _resources(cfg: TrainConfig) -> dict[str, float]:
    """Train workers must leave `data_cpus` free, or Ray Data can never schedule a decode task and
    the first batch never comes (a deadlock on small machines)."""
    import ray

    if cfg.use_gpu:
        return {"CPU": cfg.cpus_per_worker or 1, "GPU": 1}
    if cfg.cpus_per_worker:
        return {"CPU": cfg.cpus_per_worker}
    free = ray.cluster_resources().get("CPU", 0) - _data_cpus(cfg)
    if free <= 0:
        raise WitError(f"data_cpus={_data_cpus(cfg)} leaves no CPU for {cfg.num_workers} train workers",
                       hint="lower --data-cpus or add CPUs")
    return {"CPU": round(free / cfg.num_workers, 3)}


def _data_cpus(cfg: TrainConfig) -> float | None:
    return cfg.data_cpus if cfg.data_cpus is not None or cfg.use_gpu else 1.0


def _data_config(cfg: TrainConfig):
    """Ray Data's CPU budget, set explicitly: with Train's workers holding every CPU, Data would wait forever."""
    import ray.data
    from ray.train import DataConfig

    cpus = _data_cpus(cfg)
    if cpus is None:
        return DataConfig()               # GPU runs: Data takes what Train's workers leave
    return DataConfig(execution_options=ray.data.ExecutionOptions(resource_limits=ray.data.ExecutionResources(cpu=cpus)))


def fit(cfg: TrainConfig) -> dict:
    """Train CLIP on `cfg.corpus_dir`; returns where the checkpoint, metrics and tokenizer are."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from wit.raylocal import ensure_ray

    run_dir = Path(cfg.run_dir).resolve()
    if is_done(run_dir) and read_json(run_dir / "_SUCCESS.json").get("config") == to_dict(cfg):
        return read_json(run_dir / "_SUCCESS.json")["result"]          # same config, finished: reuse
    rows = corpus_rows(cfg.corpus_dir)
    steps_per_epoch = rows // cfg.num_workers // cfg.batch_size
    if steps_per_epoch == 0:
        raise WitError(f"the corpus has {rows} rows, fewer than one global batch "
                       f"({cfg.batch_size} x {cfg.num_workers} workers)", hint="lower --batch-size")
    total_steps = cfg.steps or cfg.epochs * steps_per_epoch
    cfg_dict = to_dict(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = _tokenizer(cfg, run_dir)
    ensure_ray()

    resources = _resources(cfg)
    image_size = model_config(cfg.model).vision.image_size
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": cfg_dict, "total_steps": total_steps, "tokenizer_path": str(tokenizer_path),
                           "cpus_per_worker": resources["CPU"]},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(storage_path=str(run_dir), name="ray",
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets={"train": build_dataset(cfg.corpus_dir, str(tokenizer_path), image_size,
                                         math.ceil(total_steps / steps_per_epoch), cfg.seed)},
        dataset_config=_data_config(cfg),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training reported no checkpoint; see {run_dir / 'ray'}")

    latest = run_dir / "checkpoints" / "latest"
    staging = latest.with_name("latest.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(result.checkpoint.path, staging)
    shutil.rmtree(latest, ignore_errors=True)
    staging.rename(latest)

    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = {
        "run_dir": str(run_dir), "checkpoint": str(latest), "steps": len(losses),
        "loss_first": losses[0], "loss_last": sum(losses[-10:]) / len(losses[-10:]),   # mean of the last 10
        "metrics_path": str(run_dir / "metrics.jsonl"), "tokenizer": str(tokenizer_path),
    }
    mark_done(run_dir, provenance("train", cfg, result=summary))
    return summary


def load_checkpoint(path: str | Path) -> tuple[CLIP, Tokenizer, TrainConfig]:
    """(model in eval mode on CPU, tokenizer, config) from a checkpoint dir or a run dir (= its latest)."""
    path = Path(path)
    if not (path / "model.pt").is_file() and (path / "checkpoints" / "latest" / "model.pt").is_file():
        path = path / "checkpoints" / "latest"
    if not (path / "model.pt").is_file():
        raise WitError(f"no checkpoint at {path}", hint="pass a checkpoint dir (with model.pt) or a run dir")
    state = read_json(path / "train_state.json")
    model = CLIP(from_dict(CLIPConfig, state["model_config"]))
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), Tokenizer.load(path / "tokenizer.json"), from_dict(TrainConfig, state["train_config"])
