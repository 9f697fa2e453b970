"""Checkpoints that continue exactly: a worker killed mid-run and a run stopped and resumed both end with
the same step count, data order and weights (bit for bit: CPU, fp32, 2 gloo workers) as an
uninterrupted run with the same seed. Exact because each step's batch is a function of (seed, step,
rank) (trainer/data.py) and model, optimizer, scheduler, scaler and RNG states are restored.

The failures are real and come from outside: the test SIGKILLs a Ray Train worker process by pid, or
the whole driver process of a run it started, once the run has written a checkpoint."""

import dataclasses
import os
import signal
import threading

import pytest
import torch

from fit_results import assert_same_run, exact_config, final_weights, metric_rows
from kill_runs import kill_driver, start_driver, train_worker_pids, wait_for_checkpoint
from shapes_corpus import write_corpus
from trainer.fit import fit
from trainer.metrics import read_metrics
from core.artifacts import is_done


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """8 steps, 4 per epoch (64 rows / (8 x 2 workers)): the runs cross an epoch boundary."""
    root = tmp_path_factory.mktemp("resume")
    corpus = write_corpus(root / "corpus", 64, size=40)
    cfg = exact_config(str(corpus), str(root / "ref"), steps=8)
    return cfg, fit(cfg), root


@pytest.mark.slow
def test_killed_worker_restarts_from_the_last_checkpoint(reference):
    cfg, ref, root = reference
    killed = dataclasses.replace(cfg, run_dir=str(root / "killed"), max_failures=1, tokenizer_path=ref["tokenizer"])
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(result=fit(killed)))
    run.start()
    wait_for_checkpoint(str(root / "killed" / "ray"), alive=run.is_alive)
    victims = train_worker_pids()
    live_steps = [r["step"] for r in read_metrics(root / "killed" / "metrics.jsonl")]   # rank 0's live rows
    os.kill(victims[-1], signal.SIGKILL)
    run.join(timeout=600)
    assert len(victims) == 2 and max(live_steps) < 8                    # a worker of this run died mid-run
    rows, ref_rows = metric_rows(outcome["result"]), metric_rows(ref)
    assert [r["step"] for r in rows] == list(range(1, 9))               # steps redone are not counted twice
    assert [r["first_index"] for r in rows] == [r["first_index"] for r in ref_rows]
    for name, tensor in final_weights(ref).items():
        assert torch.equal(tensor, final_weights(outcome["result"])[name]), name


@pytest.mark.slow
def test_stopped_run_resumes_mid_epoch(reference, ray_local):
    cfg, ref, root = reference
    stopped = dataclasses.replace(cfg, run_dir=str(root / "stopped"), max_failures=0, tokenizer_path=ref["tokenizer"])
    driver = start_driver(stopped, ray_local.get_runtime_context().gcs_address, root / "stopped.log")
    wait_for_checkpoint(str(root / "stopped" / "ray"), alive=lambda: driver.poll() is None)
    kill_driver(driver)                                                 # `wit train` killed after a checkpoint
    assert not is_done(stopped.run_dir)
    result = fit(stopped, resume=True)
    assert_same_run(result, ref, steps=8)
    assert result["loss_last"] == ref["loss_last"]
