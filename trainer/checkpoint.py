"""Training checkpoints: what a run needs to continue exactly where it stopped, and to be evaluated.

A checkpoint directory holds model.pt (OpenAI CLIP parameter names), optimizer.pt, scheduler.pt,
scaler.pt, rng.pt, tokenizer.json, metrics.jsonl (rank 0's rows up to this step) and
train_state.json: the optimizer step, the data position (the next micro-step: data is a function of
(seed, micro-step), see trainer/data.py), the train and model configs, and provenance. Ray Train keeps
them under `storage_path/<attempt>/checkpoint_*` (a local dir or a pyarrow-fs URI); `fit` copies the
last one to `run_dir/checkpoints/latest/`, which is what `load_checkpoint` and eval read.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs
import torch

from trainer.config import TrainConfig
from trainer.metrics import metrics_text, read_metrics
from trainer.model import CLIP, CLIPConfig
from trainer.parallel import load_full_state
from trainer.rundir import local_checkpoint
from trainer.tokenizer import Tokenizer
from core import storage
from core.artifacts import provenance, read_json, write_json
from core.config import from_dict, to_dict
from core.errors import WitError


def save(directory: Path, *, clip: CLIP, optimizer, scheduler, scaler, step: int, micro_step: int, cfg: TrainConfig,
         tokenizer_json: str, metrics: list[dict], model_state: dict | None = None,
         optimizer_state: dict | None = None, **extra) -> None:
    """`model_state`/`optimizer_state`: whole state dicts gathered beforehand (a sharded model's, see
    trainer/parallel.py full_state); None: `clip`'s and `optimizer`'s own."""
    model_state = clip.state_dict() if model_state is None else model_state
    optimizer_state = optimizer.state_dict() if optimizer_state is None else optimizer_state
    torch.save(model_state, directory / "model.pt")
    torch.save(optimizer_state, directory / "optimizer.pt")
    torch.save(scheduler.state_dict(), directory / "scheduler.pt")
    torch.save(scaler.state_dict(), directory / "scaler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, directory / "rng.pt")
    (directory / "tokenizer.json").write_text(tokenizer_json)
    (directory / "metrics.jsonl").write_text(metrics_text(metrics))
    state = {"step": step, "micro_step": micro_step, "train_config": to_dict(cfg),
             "model_config": to_dict(clip.cfg), **extra}
    write_json(provenance("train", cfg, **state), directory / "train_state.json")


def restore(directory: Path, *, clip: CLIP, optimizer, scheduler, scaler) -> tuple[dict, list[dict]]:
    """Load a checkpoint into freshly built objects (`clip` may be FSDP-sharded: every worker then
    calls this); returns (train_state, metrics rows so far)."""
    load = lambda name: torch.load(directory / name, map_location="cpu", weights_only=False)   # noqa: E731
    load_full_state(clip, optimizer, load("model.pt"), load("optimizer.pt"))
    scheduler.load_state_dict(load("scheduler.pt"))
    scaler.load_state_dict(load("scaler.pt"))
    rng = load("rng.pt")
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return read_json(directory / "train_state.json"), read_metrics(directory)


def latest_attempt(storage_path: str) -> str | None:
    """The newest Ray Train run folder (`attempt-*`) under storage_path that holds a checkpoint, or None."""
    fs, root = storage.resolve(storage_path)      # the same filesystem (endpoint, credentials) as the run
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    for info in sorted((i for i in infos if i.base_name.startswith("attempt-")), key=lambda i: i.base_name,
                       reverse=True):
        children = fs.get_file_info(pyarrow.fs.FileSelector(info.path))
        if any(c.base_name.startswith("checkpoint_") for c in children):
            return info.base_name
    return None


def load_checkpoint(path: str | Path) -> tuple[CLIP, Tokenizer, TrainConfig]:
    """(model in eval mode on CPU, tokenizer, TrainConfig) from a checkpoint dir or a run dir (= its latest)."""
    path = local_checkpoint(path)             # a cloud URI is downloaded to node-local scratch first
    if not (path / "model.pt").is_file() and (path / "checkpoints" / "latest" / "model.pt").is_file():
        path = path / "checkpoints" / "latest"
    if not (path / "model.pt").is_file():
        raise WitError(f"no checkpoint at {path}", hint="pass a checkpoint dir (with model.pt) or a run dir")
    state = read_json(path / "train_state.json")
    model = CLIP(from_dict(CLIPConfig, state["model_config"]))
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), Tokenizer.load(path / "tokenizer.json"), from_dict(TrainConfig, state["train_config"])
