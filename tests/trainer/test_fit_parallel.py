"""`wit train --parallel fsdp` (FSDP2, 2 gloo workers on CPU, fp32) trains the same weights as DDP from
the same seed, writes DDP's checkpoint layout, and resumes exactly; `--text-dtype bf16` trains through
Ray with OpenAI-format merges as its tokenizer and keeps the text weights bf16 in the checkpoint."""

import argparse
import dataclasses
import gzip
import json

import pytest
import torch

from fit_results import assert_same_run, exact_config, final_weights, metric_rows
from kill_runs import kill_driver, start_driver, wait_for_checkpoint
from shapes_corpus import write_corpus
from test_bpe_tokenizer import MERGES
from trainer.cli import register
from trainer.checkpoint import load_checkpoint
from trainer.fit import fit


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    """4 steps of 2 workers x 8 rows from one seed, DDP then FSDP, checkpoints every 2 steps."""
    root = tmp_path_factory.mktemp("parallel")
    corpus = write_corpus(root / "corpus", 64, size=40)
    ddp = exact_config(str(corpus), str(root / "ddp"), steps=4)
    ddp_result = fit(ddp)
    fsdp = dataclasses.replace(ddp, run_dir=str(root / "fsdp"), parallel="fsdp",
                               tokenizer_path=ddp_result["tokenizer"])
    return ddp_result, fsdp, fit(fsdp), root


@pytest.mark.slow
def test_fsdp_trains_the_same_weights_as_ddp(runs):
    ddp, _, fsdp, _ = runs
    assert [r["first_index"] for r in metric_rows(fsdp)] == [r["first_index"] for r in metric_rows(ddp)]   # same data
    for a, b in zip(metric_rows(ddp), metric_rows(fsdp)):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    theirs, ours = final_weights(ddp), final_weights(fsdp)
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():          # up to the order of gradient sums (2 workers: bit-equal)
        torch.testing.assert_close(ours[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    ddp_opt = torch.load(f"{ddp['checkpoint']}/optimizer.pt", weights_only=False)
    fsdp_opt = torch.load(f"{fsdp['checkpoint']}/optimizer.pt", weights_only=False)
    assert sorted(fsdp_opt["state"]) == sorted(ddp_opt["state"])                 # keyed by index, as DDP's
    assert [g["params"] for g in fsdp_opt["param_groups"]] == [g["params"] for g in ddp_opt["param_groups"]]
    for i, state in ddp_opt["state"].items():
        torch.testing.assert_close(fsdp_opt["state"][i]["exp_avg"], state["exp_avg"], rtol=1e-4, atol=1e-6)
    held = [json.load(open(f"{r['checkpoint']}/train_state.json"))["param_bytes_per_worker"] for r in (ddp, fsdp)]
    assert held[1] < 0.55 * held[0]                                              # FSDP really sharded
    model, _, cfg = load_checkpoint(fsdp["run_dir"])                            # eval reads it unchanged
    assert cfg.parallel == "fsdp" and model.logit_scale.item() == pytest.approx(ours["logit_scale"].item())


@pytest.mark.slow
def test_stopped_fsdp_run_resumes_exactly(runs, ray_local):
    _, cfg, ref, root = runs
    stopped = dataclasses.replace(cfg, run_dir=str(root / "fsdp-stopped"), max_failures=0)
    driver = start_driver(stopped, ray_local.get_runtime_context().gcs_address, root / "fsdp-stopped.log")
    wait_for_checkpoint(str(root / "fsdp-stopped" / "ray"), alive=lambda: driver.poll() is None)
    kill_driver(driver)                                                 # killed after its first checkpoint
    assert_same_run(fit(stopped, resume=True), ref, steps=4)


@pytest.mark.slow
def test_cli_trains_bf16_text_with_an_openai_merges_tokenizer(runs):
    _, cfg, _, root = runs
    merges = root / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(merges, "wt", encoding="utf-8") as f:
        f.write(MERGES)
    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers(required=True))
    for argv in (["tokenizer", "train", "--openai-merges", str(merges), "--out", str(root / "openai.json")],
                 ["train", "--corpus", cfg.corpus_dir, "--run-dir", str(root / "bf16"), "--steps", "2",
                  "--batch-size", "8", "--workers", "2", "--text-dtype", "bf16", "--tokenizer",
                  str(root / "openai.json")]):
        args = parser.parse_args(argv)
        assert args.run(args) == 0
    weights = torch.load(root / "bf16" / "checkpoints" / "latest" / "model.pt", weights_only=True)
    assert weights["token_embedding.weight"].shape[0] == 256 + 256 + len(MERGES.splitlines()) - 1 + 2
    assert weights["transformer.resblocks.0.attn.in_proj_weight"].dtype == torch.bfloat16
    assert weights["visual.proj"].dtype == weights["logit_scale"].dtype == torch.float32
    model, tokenizer, train_cfg = load_checkpoint(root / "bf16")             # eval: an fp32 model from it
    assert train_cfg.text_dtype == "bf16" and model.text_projection.dtype == torch.float32
    assert torch.equal(model.text_projection, weights["text_projection"].float())
