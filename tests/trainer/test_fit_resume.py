"""Checkpoints that continue exactly: a worker killed mid-run and a run stopped and resumed both end with
the same step count, data order and weights (bit for bit: CPU, fp32, 2 gloo workers) as an
uninterrupted run with the same seed. Exact because each step's batch is a function of (seed, step,
rank) (trainer/data.py) and model, optimizer, scheduler, scaler and RNG states are restored."""

import dataclasses

import pytest
import torch

from fit_results import assert_same_run, exact_config, final_weights, metric_rows
from shapes_corpus import write_corpus
from trainer.fit import fit


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
    killed = dataclasses.replace(cfg, run_dir=str(root / "killed"), fail_at_step=5, max_failures=1,
                                 tokenizer_path=ref["tokenizer"])
    result = fit(killed)
    assert (root / "killed" / "_failed_at_5").exists()                  # the worker really died once
    rows, ref_rows = metric_rows(result), metric_rows(ref)
    assert [r["step"] for r in rows] == list(range(1, 9))               # steps 5 and 6 redone, none counted twice
    assert [r["first_index"] for r in rows] == [r["first_index"] for r in ref_rows]
    for name, tensor in final_weights(ref).items():
        assert torch.equal(tensor, final_weights(result)[name]), name


@pytest.mark.slow
def test_stopped_run_resumes_mid_epoch(reference):
    cfg, ref, root = reference
    stopped = dataclasses.replace(cfg, run_dir=str(root / "stopped"), fail_at_step=3, max_failures=0,
                                  tokenizer_path=ref["tokenizer"])
    with pytest.raises(Exception):
        fit(stopped)                                                    # dies after step 3; last checkpoint: 2
    result = fit(stopped, resume=True)
    assert_same_run(result, ref, steps=8)
    assert result["loss_last"] == ref["loss_last"]
