"""`wit train`: CLIP on a corpus with Ray Train (DDP or FSDP2 workers), each fed by its own Ray Data stream.

The driver trains or loads the tokenizer and starts a TorchTrainer; each worker rebuilds the config
from a plain dict, restores the latest checkpoint if there is one (a restart after a worker died,
or `--resume`), builds its Ray Data stream from the checkpoint's micro-step, trains, and reports a
checkpoint every `checkpoint_every` steps and at the end (trainer/checkpoint.py). Rank 0 writes
`run_dir/metrics.jsonl` live (the driver's progress bar reads it); at the end the driver copies the
last checkpoint to `run_dir/checkpoints/latest/` and writes metrics.jsonl/csv from it.

Exactness: a step's batches are a function of (seed, step, rank) (trainer/data.py), and model,
optimizer, scheduler, scaler and RNG states are restored, so on CPU in fp32 a killed-and-restarted
run ends with the same weights as an uninterrupted one (tests/trainer/test_fit_resume.py).

Parallelism (trainer/parallel.py): `parallel="ddp"` replicates the model, which fits every tower in
MODELS on one GPU; `parallel="fsdp"` shards parameters, gradients and Adam states over the workers
(FSDP2, per residual block) for towers that crowd a device. Checkpoints are whole either way: all
workers gather the state, rank 0 writes it in one layout, and resume loads it back into the shards.
`text_dtype="bf16"|"fp16"` keeps the text encoder's weights in half precision, updated with
stochastic rounding (the paper's largest runs; trainer/optim.py store_text_tower). `accumulation=K`
keeps the contrastive batch at K x workers x batch (a gradient cache: accumulate_gradients). On GPU
workers JPEGs are decoded, cropped and resized on the GPU (trainer/data.py worker_batches).
The config is trainer/config.py's TrainConfig (importable from here too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from trainer import checkpoint, rundir
from trainer.config import TrainConfig
from trainer.data import _tokenizer as _tokenizer_from
from trainer.data import Part, build_step_dataset, corpus_parts, normalize_images, read_captions, worker_batches
from trainer.loss import clip_loss
from trainer.metrics import Progress, metrics_text, mfu, peak_flops, read_metrics, summarize, write_metrics
from trainer.model import CLIP, build_model
from trainer.optim import OptimConfig, build_optimizer, store_text_tower
from trainer.parallel import average_replicated_grads, full_state, gradient_sync, local_param_bytes, wrap
from trainer.tokenizer import Tokenizer, train_tokenizer
from core import storage as wit_storage  # `storage` names the Ray Train storage path below
from core.config import from_dict, to_dict
from core.errors import WitError
from core.raylocal import ensure_ray
from core.stage import StageRun, reuse_or_run

__all__ = ["TrainConfig", "fit", "train_step"]   # TrainConfig is defined in trainer/config.py

# ---------------------------------------------------------------------------------------------
# On each worker


def _autocast_and_scaler(precision: str, device: torch.device):
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    return autocast, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def train_step(model, clip: CLIP, batches, optimizer, scheduler, scaler, autocast, rank: int, world: int):
    """One optimizer step over `batches` (one batch, or a list of K micro-batches forming one contrastive
    batch of K x B x world pairs); returns the loss over that batch."""
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, clip, batches, scaler, autocast, rank, world)
    average_replicated_grads(clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    with torch.no_grad():                 # the paper clips the temperature so logits scale <= 100
        clip.logit_scale.clamp_(0, math.log(100))
    return loss


def accumulate_gradients(model, clip: CLIP, batches, scaler, autocast, rank: int, world: int) -> torch.Tensor:
    """Gradients (scaled by `scaler`) of the contrastive loss over all of `batches` and all workers.

    One batch: forward and backward. K micro-batches: a gradient cache, so accumulation keeps every
    pair's negatives across the whole K x B x world batch (the paper's 32k batch on fewer devices):
      1. each micro-batch's features, without a graph (activation memory of one micro-batch);
      2. the loss over all of them (gathered across workers), backward to the features only;
      3. each micro-batch again with a graph, backward from its slice of those feature gradients.
    The sum over micro-batches is the big batch's gradient (tests/trainer/test_fit_step.py); the cost
    is one extra forward. DDP and FSDP reduce gradients on the last micro-batch only.
    """
    if isinstance(batches, dict) or len(batches) == 1:
        batch = batches if isinstance(batches, dict) else batches[0]
        with autocast():
            image_features, text_features, _ = model(normalize_images(batch["image"]), batch["text"])
        loss = clip_loss(image_features.float(), text_features.float(), clip.logit_scale, rank, world)
        scaler.scale(loss).backward()
        return loss.detach()

    with torch.no_grad(), autocast():
        cached = [model(normalize_images(b["image"]), b["text"])[:2] for b in batches]
    image_all = torch.cat([i.float() for i, _ in cached]).requires_grad_()     # [K*B, E], leaves
    text_all = torch.cat([t.float() for _, t in cached]).requires_grad_()
    log_scale = clip.logit_scale.detach().requires_grad_()
    loss = clip_loss(image_all, text_all, log_scale, rank, world)
    scaler.scale(loss).backward()         # -> image_all.grad, text_all.grad, log_scale.grad (all scaled)
    rows = 0
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        n = batch["text"].shape[0]
        with gradient_sync(model, clip, sync=last):
            with autocast():
                image_features, text_features, scale = model(normalize_images(batch["image"]), batch["text"])
            # logit_scale's gradient enters once, through the model's exp(logit_scale) output, so DDP
            # and FSDP see it like any parameter's (d loss / d exp(s) = d loss / d s / exp(s)).
            scale_grad = log_scale.grad / scale.detach() if last else torch.zeros_like(scale)
            torch.autograd.backward([image_features.float(), text_features.float(), scale],
                                    [image_all.grad[rows:rows + n], text_all.grad[rows:rows + n], scale_grad])
        rows += n
    return loss.detach()


def _compiles(cfg: TrainConfig) -> bool:
    """Compile on GPU by default: eager B/32 at batch 256 spends most of its step launching kernels.
    CPU runs stay eager (compiling costs more than the short CPU runs gain)."""
    return cfg.compile if cfg.compile is not None else cfg.use_gpu


def train_loop_per_worker(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch
    import torch.distributed as dist
    from ray.train import Checkpoint

    cfg = from_dict(TrainConfig, config["train"])
    total_steps, shards, A = config["total_steps"], config["shards"], cfg.accumulation
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if not cfg.use_gpu:
        torch.set_num_threads(max(1, int(config["cpus_per_worker"])))
    torch.manual_seed(cfg.seed)

    tokenizer = _tokenizer_from(config["tokenizer_json"])
    device = ray.train.torch.get_device()
    clip = build_model(cfg.model, tokenizer.vocab_size, cfg.grad_checkpointing)
    store_text_tower(clip, cfg.text_dtype)
    model = wrap(clip, cfg.parallel, device)                            # DDP around clip, or clip sharded in place
    optimizer, scheduler = build_optimizer(clip, OptimConfig(**cfg.optim_args(total_steps)))
    step_model = torch.compile(model) if _compiles(cfg) else model      # same parameters, compiled kernels
    autocast, scaler = _autocast_and_scaler(cfg.precision, device)

    step, rows = 0, []
    if (resumed := ray.train.get_checkpoint()) is not None:
        with resumed.as_directory() as d:
            state, rows = checkpoint.restore(Path(d), clip=clip, optimizer=optimizer, scheduler=scheduler,
                                             scaler=scaler)
        step = state["step"]
        if state["train_config"] != to_dict(cfg):
            raise WitError("the checkpoint to resume was trained with another config",
                           hint="resume with the same config, or start a new run dir")
    nodes = [ray.get_runtime_context().get_node_id()] * world          # where each rank runs, for the record
    if world > 1:
        dist.all_gather_object(nodes, nodes[0])
    if rank == 0:                         # live rows for the driver's progress bar (a shared or local run dir)
        rundir.local_run_dir(cfg.run_dir).mkdir(parents=True, exist_ok=True)   # URI run dir: a local mirror
    live = open(rundir.local_run_dir(cfg.run_dir) / "metrics.jsonl", "w") if rank == 0 else None
    if live:
        live.write(metrics_text(rows))

    image_size = clip.cfg.vision.image_size
    on_device = cfg.decodes_on_gpu() and device.type == "cuda"
    batches = iter(worker_batches(build_step_dataset(
        shards, step * A, total_steps * A, cpus=config["data_cpus_per_worker"], batch_size=cfg.batch_size,
        world=world, rank=rank, seed=cfg.seed, tokenizer=config["tokenizer_json"], image_size=image_size,
        on_device=on_device,
    ), batch_size=cfg.batch_size, device=device, image_size=image_size, on_device=on_device))
    samples = cfg.batch_size * A * world                                # one contrastive batch per step
    peak = peak_flops(device, cfg.precision) * world
    skipped = rows[-1]["skipped_images"] if rows else 0

    def report(metrics: dict, save: bool) -> None:   # a barrier: every worker calls it at the same steps
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if save:                      # FSDP: every worker takes part in gathering the whole state
                model_state, optimizer_state = full_state(clip, optimizer)
            if save and rank == 0:
                checkpoint.save(Path(tmp), clip=clip, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                step=step, micro_step=step * A, cfg=cfg, tokenizer_json=config["tokenizer_json"],
                                metrics=rows, model_state=model_state, optimizer_state=optimizer_state,
                                worker_nodes=nodes, param_bytes_per_worker=local_param_bytes(clip))
                ckpt = Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)

    tick = time.perf_counter()
    while step < total_steps:
        micro = [next(batches) for _ in range(A)]
        waited = time.perf_counter() - tick          # the device idles while the data stage catches up
        assert all(int(b["step"][0]) == step * A + i for i, b in enumerate(micro)), "data out of step order"
        loss = train_step(step_model, clip, micro, optimizer, scheduler, scaler, autocast, rank, world)
        step += 1
        skipped += int(sum(b["skipped"].sum() for b in micro))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        rows.append({"step": step, "loss": float(loss), "lr": scheduler.get_last_lr()[0],
                     "logit_scale": clip.logit_scale.detach().exp().item(), "step_time_s": now - tick,
                     "data_wait_s": waited, "samples_per_s": samples / (now - tick),
                     "mfu": mfu(cfg.model, tokenizer.vocab_size, samples / (now - tick), peak),
                     "skipped_images": skipped,
                     "first_index": int(micro[0]["index"][0])})
        if live:
            live.write(metrics_text(rows[-1:]))
            live.flush()
        save = step == total_steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        if save or step % cfg.log_every == 0:
            report(rows[-1], save)
        tick = time.perf_counter()                   # checkpoint time counts in neither data wait nor step time
    if live:
        live.close()


# ---------------------------------------------------------------------------------------------
# On the driver


def _tokenizer(cfg: TrainConfig, run_dir: Path, resume: bool) -> Path:
    if cfg.tokenizer_path:
        Tokenizer.load(cfg.tokenizer_path)                              # validate before starting workers
        return Path(cfg.tokenizer_path).resolve()
    path = run_dir / "tokenizer.json"
    if resume and path.exists():
        return path                                                     # the one the checkpoints were trained with
    return train_tokenizer(read_captions(cfg.corpus_dir), cfg.tokenizer_vocab_size).save(path)


def _resources(cfg: TrainConfig) -> tuple[dict[str, float], float]:
    """(resources per train worker, data CPUs per worker). Train workers must leave CPUs to Ray Data,
    or a decode task never schedules and the first batch never comes (a deadlock on small machines)."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if cfg.use_gpu:
        worker = {"CPU": cfg.cpus_per_worker or 1, "GPU": 1}
        data = cfg.data_cpus if cfg.data_cpus is not None else cpus - worker["CPU"] * cfg.num_workers
    else:
        data = cfg.data_cpus if cfg.data_cpus is not None else 1.0
        worker = {"CPU": cfg.cpus_per_worker or round((cpus - data) / cfg.num_workers, 3)}
    if worker["CPU"] <= 0 or data <= 0:
        raise WitError(f"{cpus:g} CPUs cannot hold {cfg.num_workers} train workers and data_cpus={data:g}",
                       hint="lower --data-cpus / --cpus-per-worker or add CPUs")
    return worker, round(data / cfg.num_workers, 3)


def _plan(cfg: TrainConfig) -> tuple[list[Part], int]:
    shards = corpus_parts(cfg.corpus_dir)
    rows = sum(p.rows for p in shards)
    steps_per_epoch = rows // (cfg.num_workers * cfg.batch_size * cfg.accumulation)
    if steps_per_epoch == 0:
        raise WitError(f"the corpus has {rows} rows, fewer than one global batch ({cfg.batch_size} x "
                       f"{cfg.num_workers} workers x {cfg.accumulation} micro-steps)", hint="lower --batch-size")
    return shards, cfg.steps or cfg.epochs * steps_per_epoch


def _corpus_digest(shards: list[Part]) -> str:
    """What the run trained on: each shard's name, rows and bytes (the corpus writes parts atomically),
    from the footers `_plan` read: no listing or row scan here."""
    facts = [(wit_storage.name(p.path), p.rows, p.bytes) for p in shards]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def fit(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train CLIP on `cfg.corpus_dir`; returns where the checkpoint, metrics and tokenizer are, and run figures.

    resume=True continues the newest interrupted attempt in the storage path from its last checkpoint
    (same config required); otherwise a new attempt starts from scratch. A finished run with the same
    config is reused either way.
    """
    shards, total_steps = _plan(cfg)
    # Reused when finished with the same config on the same corpus parts; clear=None: --resume needs
    # what an interrupted attempt left.
    return reuse_or_run(StageRun("train", cfg.run_dir, cfg, {"corpus": _corpus_digest(shards)}, result_key="result"),
                        lambda record: _fit(cfg, resume, shards, total_steps))


def _fit(cfg: TrainConfig, resume: bool, shards: list[Part], total_steps: int) -> dict:
    """The training run proper; returns the summary (the marker's result)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = rundir.local_run_dir(cfg.run_dir).resolve()    # for a URI run dir, its node-local mirror
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = cfg.storage_path or (wit_storage.join(cfg.run_dir, "ray") if wit_storage.is_uri(cfg.run_dir)
                                   else str(run_dir / "ray"))
    attempt = checkpoint.latest_attempt(storage) if resume else None
    if resume and attempt is None:
        raise WitError(f"nothing to resume in {storage}", hint="run without --resume to start")
    if resume:
        rundir.pull(cfg.run_dir, run_dir, "tokenizer.json")          # resuming on another machine
    tokenizer_path = _tokenizer(cfg, run_dir, resume)
    rundir.push(run_dir, cfg.run_dir, "tokenizer.json")              # before training: a resume needs it
    ensure_ray()

    worker, data_cpus = _resources(cfg)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": to_dict(cfg), "total_steps": total_steps, "shards": shards,
                           "tokenizer_json": tokenizer_path.read_text(), "cpus_per_worker": worker["CPU"],
                           "data_cpus_per_worker": data_cpus},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=worker,
                                     placement_strategy=cfg.placement_strategy),
        run_config=RunConfig(**rundir.ray_storage(storage), name=attempt or time.strftime("attempt-%Y%m%d-%H%M%S"),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)),
    )
    progress = Progress(run_dir / "metrics.jsonl", total_steps)
    progress.start()
    try:
        result = trainer.fit()
    finally:
        progress.stop()
    if result.checkpoint is None:
        raise RuntimeError(f"training reported no checkpoint; see {storage}")

    latest = run_dir / "checkpoints" / "latest"
    staging = latest.with_name("latest.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    result.checkpoint.to_directory(str(staging))
    shutil.rmtree(latest, ignore_errors=True)
    staging.rename(latest)

    rows = read_metrics(latest)
    jsonl, table = write_metrics(rows, run_dir)
    summary = {"run_dir": str(run_dir), "checkpoint": str(latest), **summarize(rows),
               "metrics_path": str(jsonl), "metrics_csv": str(table), "tokenizer": str(tokenizer_path),
               "storage_path": storage}
    return rundir.publish(run_dir, cfg.run_dir, summary)              # a URI run dir: upload, paths -> URI
