"""End to end on a real local Ray (2 CPUs): corpus -> fit with 2 DDP workers -> checkpoint -> zero-shot."""

import argparse
import json
import math

import pytest
import torch

from shapes_corpus import write_corpus, write_image_folder
from trainer.cli import register
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.fit import fit
from trainer.metrics import read_metrics
from core.errors import WitError


@pytest.fixture(scope="module")
def trained(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    corpus = write_corpus(root / "corpus", 128)
    cfg = TrainConfig(corpus_dir=str(corpus), run_dir=str(root / "run"), model="tiny", batch_size=16, steps=20,
                      num_workers=2, warmup_steps=2, lr=1e-3, tokenizer_vocab_size=500)
    return cfg, fit(cfg), root


@pytest.mark.slow
def test_fit_writes_a_checkpoint_and_learns(trained):
    cfg, result, root = trained
    assert result["steps"] == 20
    assert math.isfinite(result["loss_first"]) and math.isfinite(result["loss_last"])
    assert result["loss_last"] < result["loss_first"]
    lines = read_metrics(result["metrics_path"])
    assert [m["step"] for m in lines] == list(range(1, 21))
    assert all(m["logit_scale"] <= 100 for m in lines)

    model, tokenizer, loaded_cfg = load_checkpoint(result["run_dir"])   # a run dir means its latest
    assert loaded_cfg == cfg
    assert model.token_embedding.num_embeddings == tokenizer.vocab_size
    keys = set(torch.load(f"{result['checkpoint']}/model.pt", weights_only=True))
    assert {"logit_scale", "visual.class_embedding", "transformer.resblocks.0.attn.in_proj_weight"} <= keys
    state = json.load(open(f"{result['checkpoint']}/train_state.json"))
    assert state["step"] == 20 and state["versions"]["torch"]
    assert fit(cfg) == result                             # finished run, same config: reused, not retrained


@pytest.mark.slow
def test_cli_zeroshot_on_the_trained_checkpoint(trained, capsys):
    _, result, root = trained
    images = write_image_folder(root / "eval", per_class=4)
    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["eval", "zeroshot", "--checkpoint", result["checkpoint"], "--images", str(images),
                              "--out", str(root / "results.json")])
    assert args.run(args) == 0
    out = json.load(open(root / "results.json"))
    assert out["n"] == 32 and out["num_classes"] == 8 and out["chance"] == 1 / 8
    assert 0 <= out["top1"] <= out["top5"] <= 1
    assert "top-1" in capsys.readouterr().out


def test_too_small_corpus_is_a_user_error(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 8)
    with pytest.raises(WitError, match="global batch"):
        fit(TrainConfig(corpus_dir=str(corpus), run_dir=str(tmp_path / "run"), batch_size=16))
    with pytest.raises(WitError, match="unknown model"):
        TrainConfig(corpus_dir=str(corpus), run_dir=str(tmp_path / "run"), model="ViT-Z/1")


def test_gpu_decode_without_torchvision_is_a_user_error(monkeypatch):
    """nvJPEG comes with the `gpu` extra: a GPU run without it stops on the driver, saying what to install.
    (sys.modules[name] = None is how Python marks a module unimportable; find_spec then answers None.)"""
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)
    with pytest.raises(WitError, match="needs torchvision") as err:
        TrainConfig(corpus_dir="c", run_dir="r", use_gpu=True)
    assert "wit-clip[gpu]" in err.value.hint
    assert not TrainConfig(corpus_dir="c", run_dir="r", use_gpu=True, gpu_decode=False).decodes_on_gpu()
    monkeypatch.undo()
    assert TrainConfig(corpus_dir="c", run_dir="r", use_gpu=True).decodes_on_gpu()   # the extra installed: fine
