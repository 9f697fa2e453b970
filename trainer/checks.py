"""Input checks of `wit train`, `wit tokenizer train`, `wit plot` and the checkpoint every eval reads,
run at the top of each handler: before Ray starts, a model is built or any image is decoded."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.rundir import EVAL_FILES, LATEST
from core import storage, validate
from core.config import to_dict
from core.errors import WitError

CORPUS_COLUMNS = ("key", "jpg", "caption")          # what trainer/data.py reads from each shard
CORPUS_MAKER = "wit pipeline download"
CHECKPOINT_HINT = "pass a checkpoint dir (model.pt, train_state.json, tokenizer.json) or a `wit train` run dir"
ZIP_MAGIC = b"PK\x03\x04"                            # torch.save's format


def check_corpus(corpus_dir: str) -> list[str]:
    """A finished corpus whose every shard has the columns training reads; returns the shards."""
    return validate.check_stage_dir(corpus_dir, "corpus", CORPUS_MAKER, CORPUS_COLUMNS, pattern="*.parquet")


def check_train(cfg, resume: bool) -> None:
    """`cfg`: a trainer TrainConfig (its constructor already refused unknown models and dtypes)."""
    check_corpus(cfg.corpus_dir)
    validate.check_output(cfg.run_dir, "--run-dir")
    if cfg.storage_path:
        validate.check_output(cfg.storage_path, "--storage-path")
    if cfg.tokenizer_path:
        validate.check_file(cfg.tokenizer_path, "tokenizer", hint="a tokenizer.json from `wit tokenizer train`")
    check_run_dir(cfg, resume)


def check_run_dir(cfg, resume: bool) -> None:
    """A run dir made by another config is named as such: training there would overwrite a finished
    run, and resuming would load weights trained otherwise."""
    made_with = _finished_config(cfg.run_dir)
    if made_with is None and resume:
        made_with = _checkpoint_config(cfg.storage_path or storage.join(cfg.run_dir, "ray"))
    if made_with is None:
        return
    now = to_dict(cfg)
    differs = [k for k in sorted(set(now) | set(made_with)) if now.get(k) != made_with.get(k)]
    if differs:
        changes = "; ".join(f"{k}: {made_with.get(k)!r} there, {now.get(k)!r} now" for k in differs[:6])
        raise WitError(f"run dir {storage.display(cfg.run_dir)} was made by another config ({changes})",
                       hint="pass a new --run-dir, or the options that run was made with")


def _finished_config(run_dir: str) -> dict | None:
    marker = storage.join(run_dir, validate.MARKER)
    return _json(marker).get("config") if storage.is_file(marker) else None


def _checkpoint_config(storage_path: str) -> dict | None:
    """The config of the newest checkpoint of the newest attempt in Ray Train's storage, if any."""
    attempts = storage.glob(storage_path, "attempt-*", dirs=True)
    for attempt in reversed(attempts):
        checkpoints = storage.glob(attempt, "checkpoint_*", dirs=True)
        if checkpoints:
            state = storage.join(checkpoints[-1], "train_state.json")
            return _json(state).get("train_config") if storage.is_file(state) else None
    return None


def _json(path: str) -> dict:
    try:
        return json.loads(storage.read_text(path))
    except (ValueError, UnicodeDecodeError) as err:
        raise WitError(f"{storage.display(path)} is not readable JSON ({err})",
                       hint="it was damaged; remove the run dir or pass a new one") from err


def check_checkpoint(path: str) -> str:
    """A checkpoint with everything eval loads, checked before any eval data is read: the dir itself
    or its run dir's checkpoints/latest. Returns that dir."""
    validate.check_dir(path, "checkpoint", hint=CHECKPOINT_HINT)
    directory = path if storage.is_file(storage.join(path, "model.pt")) else storage.join(path, *LATEST)
    for name in EVAL_FILES:
        if not storage.is_file(storage.join(directory, name)):
            raise WitError(f"checkpoint {storage.display(path)} has no {name}", hint=CHECKPOINT_HINT)
    if "model_config" not in _json(storage.join(directory, "train_state.json")):
        raise WitError(f"{storage.display(storage.join(directory, 'train_state.json'))} has no model_config",
                       hint="a `wit train` checkpoint records its model config there")
    validate.check_magic(storage.join(directory, "model.pt"), ZIP_MAGIC, "model file", "a torch.save file",
                         hint="the checkpoint is damaged; pass another one")
    return directory


def check_tokenizer(captions: str | None, merges: str | None, out: str, vocab_size: int) -> None:
    validate.check_output(out, "--out", directory=False)
    if merges:
        validate.check_file(merges, "merges file", hint="an OpenAI-format bpe_simple_vocab_16e6.txt(.gz)")
        return
    validate.check_at_least({"--vocab-size": vocab_size}, 258)   # 256 bytes + start and end of text
    validate.check_exists(captions, "captions", hint="a text file (one caption a line) or a corpus dir")
    if storage.is_dir(captions):
        validate.check_stage_dir(captions, "corpus", CORPUS_MAKER, ("caption",), pattern="*.parquet")
        return
    with storage.open_input_stream(captions) as f:
        head = f.read(4096)
    if b"\x00" in head or head.startswith(b"PAR1"):
        raise WitError(f"captions file {storage.display(captions)} is not a text file",
                       hint="one caption a line (UTF-8), or pass a corpus dir")


def check_plot(run_dir: str, out: str | None) -> None:
    validate.check_dir(run_dir, "run dir", hint="a `wit train` run dir")
    if storage.is_uri(run_dir):
        raise WitError(f"wit plot reads a local run dir, not {run_dir}", hint="copy the run dir here first")
    validate.check_file(str(Path(run_dir) / "metrics.jsonl"), "metrics file",
                        hint="pass a `wit train` run dir that has trained at least one step")
    validate.check_output(out or str(Path(run_dir) / "metrics.png"), "--out", directory=False)
