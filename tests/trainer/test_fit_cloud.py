"""`wit train` with its corpus, run dir and Ray Train checkpoints in a bucket (a real S3 API on loopback,
moto's server): a stopped run resumes from the bucket alone, on a machine without its local files, and
`wit eval` reads the finished checkpoint from the bucket."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest
import torch

from fit_results import exact_config
from kill_runs import checkpoints, kill_driver, start_driver, wait_for_checkpoint
from shapes_corpus import write_corpus, write_image_folder
from trainer.checkpoint import load_checkpoint
from trainer.fit import fit
from trainer.metrics import read_metrics
from trainer.rundir import local_run_dir
from core import storage
from core.artifacts import is_done
from wit.cli import main


@pytest.fixture(scope="module")
def prompt_reports():
    """Ray Train's controller collects reported checkpoints when it polls the workers (every 2 s by
    default); the test kills a worker one step after a checkpoint, so poll before that can happen."""
    saved = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.1"
    yield
    if saved is None:
        os.environ.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    else:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = saved


@pytest.fixture(scope="module")
def ray_after_s3(s3, prompt_reports, ray_local):
    """Ray started after the S3 fixture set the environment, so train workers reach the same endpoint."""
    return s3


@pytest.mark.slow
def test_stopped_run_resumes_from_the_bucket(ray_after_s3, ray_local, tmp_path, capsys):
    s3 = ray_after_s3
    # A run dir no earlier session used: its node-local mirror (keyed by the URI) starts empty.
    corpus, run = f"{s3}/train/corpus", f"{s3}/train/{uuid.uuid4().hex}/run"
    storage.copy_tree(write_corpus(tmp_path / "corpus", 32, size=40), corpus)
    cfg = exact_config(corpus, run, steps=6, warmup_steps=1, max_failures=0)
    driver = start_driver(cfg, ray_local.get_runtime_context().gcs_address, tmp_path / "driver.log")
    wait_for_checkpoint(f"{run}/ray", alive=lambda: driver.poll() is None)
    kill_driver(driver)                                                 # `wit train` killed after a checkpoint
    assert storage.is_file(f"{run}/tokenizer.json") and not is_done(run)
    stopped_at = read_metrics(checkpoints(f"{run}/ray")[-1])            # the newest checkpoint's rows
    assert [r["step"] for r in stopped_at] in ([1, 2], [1, 2, 3, 4])

    # Another machine: nothing local.
    mirror = local_run_dir(run)
    shutil.rmtree(mirror, ignore_errors=True)
    result = fit(cfg, resume=True)
    rows = read_metrics(result["metrics_path"])
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[:len(stopped_at)] == stopped_at  # continued from the bucket, or redone exactly as it was
    assert result["run_dir"] == run and result["checkpoint"] == f"{run}/checkpoints/latest"
    assert is_done(run) and storage.is_file(f"{run}/checkpoints/latest/model.pt")
    assert storage.is_file(f"{run}/metrics.csv") and result["tokenizer"] == f"{run}/tokenizer.json"

    # The checkpoint in the bucket is the one the run ended with, and eval reads it from there.
    model, _, loaded_cfg = load_checkpoint(run)
    last = torch.load(mirror / "checkpoints" / "latest" / "model.pt", weights_only=True)
    assert loaded_cfg == cfg and all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    images = write_image_folder(tmp_path / "eval", per_class=2, size=40)
    assert (
        main(
            [
                "eval",
                "zeroshot",
                "--checkpoint",
                run,
                "--images",
                str(images),
                "--out",
                f"{run}/zeroshot.json",
            ]
        )
        == 0
    )
    assert json.loads(storage.read_text(f"{run}/zeroshot.json"))["n"] == 16

    # Finished: a rerun reuses the run from the bucket without training.
    marker = storage.stat(f"{run}/_SUCCESS.json")
    assert fit(cfg, resume=True) == result and storage.stat(f"{run}/_SUCCESS.json") == marker
