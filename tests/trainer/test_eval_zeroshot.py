import io
import json
import pickle
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import trainer.eval.checks
import trainer.eval.embed
from trainer.eval.cli import register
from trainer.eval.zeroshot import TEMPLATES_DIR, ZeroShotConfig, default_templates, zeroshot
from trainer.tokenizer import train_tokenizer
from core.errors import WitError

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@dataclass(frozen=True)
class _Vision:
    image_size: int = 16


@dataclass(frozen=True)
class _Cfg:
    vision: _Vision = _Vision()


class ColourCLIP(torch.nn.Module):
    """A hand-built 'CLIP' whose answer is known: an image's feature is its mean RGB, a prompt's
    feature is the RGB of the colour word in it; so each class's images and its name share one
    direction. `misread` maps a whole prompt to the colour the model wrongly reads in it."""

    cfg = _Cfg()

    def __init__(self, tokenizer, misread: dict[str, str] | None = None):
        super().__init__()
        self.tokenizer, self.misread = tokenizer, misread or {}

    def encode_image(self, images):                                      # [B, 3, H, W] normalized
        return images.mean(dim=(2, 3)) - images.mean(dim=(1, 2, 3))[:, None]

    def encode_text(self, text):
        feats = []
        for row in text.tolist():
            prompt = " ".join(self.tokenizer.decode(row).split())
            words = [w.strip(".") for w in prompt.split()]
            colour = self.misread.get(prompt) or next((w for w in words if w in COLOURS), None)
            rgb = COLOURS.get(colour, (1, 1, 1))
            feats.append(torch.tensor(rgb, dtype=torch.float32) - sum(rgb) / 3)
        return torch.stack(feats)


@pytest.fixture
def tokenizer():
    return train_tokenizer([t.format(c) for t in default_templates() for c in COLOURS], vocab_size=400)


@pytest.fixture
def colour_checkpoint(monkeypatch, tokenizer):
    monkeypatch.setattr(trainer.eval.embed, "load_checkpoint", lambda path: (ColourCLIP(tokenizer), tokenizer, None))
    monkeypatch.setattr(trainer.eval.checks, "check_checkpoint", lambda path: path)   # no checkpoint files either


def _images(root, per_class=3, broken=0):
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20 + i, 16), rgb).save(root / name / f"{i}.png")
    for i in range(broken):
        (root / "red" / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    return root


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_known_answer_and_unreadable_images_are_counted(tmp_path, colour_checkpoint):
    images = _images(tmp_path / "images", broken=2)
    for templates in ("ensemble", "single", "both"):
        result = zeroshot(ZeroShotConfig("unused", str(images), templates=templates))
        assert result["top1"] == 1.0 and result["top5"] == 1.0
        assert result["n"] == 9 and result["num_classes"] == 3 and result["chance"] == pytest.approx(1 / 3)
        assert result["skipped"] == 2 and result["per_class"] == {"blue": 1.0, "green": 1.0, "red": 1.0}
        assert len(result["skipped_files"]) == 2 and not result["ray_data"]          # 9 rows: in-process


def test_ensembling_gain_is_reported_side_by_side(tmp_path, monkeypatch, tokenizer):
    # The model misreads only the single baseline prompt for green as blue. Single template: the green
    # and blue weights coincide, green images tie everywhere and go to class 0 (blue) -> 6/9. Ensemble:
    # 9 of 10 green prompts are right, the green weight stays green -> 9/9. Gain: exactly 1/3.
    model = ColourCLIP(tokenizer, misread={"a photo of a green.": "blue"})
    monkeypatch.setattr(trainer.eval.embed, "load_checkpoint", lambda path: (model, tokenizer, None))
    result = zeroshot(ZeroShotConfig("unused", str(_images(tmp_path / "images")), templates="both"))
    assert result["top1"] == 1.0 and result["templates"] == 10
    assert result["single"]["top1"] == pytest.approx(2 / 3) and result["single"]["templates"] == 1
    assert result["single"]["per_class"]["green"] == 0.0
    assert result["ensemble_gain_top1"] == pytest.approx(1 / 3)


def test_classes_json_renames_and_checks(tmp_path, colour_checkpoint):
    images = _images(tmp_path / "images")
    spec = tmp_path / "classes.json"
    spec.write_text(json.dumps({"classes": {"red": "green", "green": "red", "blue": "blue"},
                                "templates": ["a photo of a {}."]}))
    result = zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))
    assert result["per_class"] == {"green": 0.0, "red": 0.0, "blue": 1.0}       # swapped names are wrong
    spec.write_text(json.dumps({"classes": ["red", "green"]}))
    with pytest.raises(WitError, match="blue"):                                  # a class without a name
        zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))
    spec.write_text(json.dumps({"classes": ["red", "green", "blue"], "templates": ["a photo"]}))
    with pytest.raises(WitError, match="slot"):                                  # a template without {}
        zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))
    with pytest.raises(WitError, match="no classes JSON"):
        zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(tmp_path / "missing.json")))


def test_cifar_pickle_batches(tmp_path, colour_checkpoint):
    # CIFAR's python format: data uint8 [N, 3072] as R, G, B planes of 32x32; labels; batches.meta names.
    labels = [0, 1, 2, 2, 1, 0]
    names = [b"red", b"green", b"blue"]
    data = np.stack([np.repeat(np.array(COLOURS[names[y].decode()], np.uint8), 1024) for y in labels])
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    result = zeroshot(ZeroShotConfig("unused", str(tmp_path)))
    assert result["top1"] == 1.0 and result["n"] == 6 and result["num_classes"] == 3
    assert zeroshot(ZeroShotConfig("unused", str(tmp_path / "test_batch")))["n"] == 6    # one batch file
    with pytest.raises(WitError, match="train"):                                     # no data_batch_* here
        zeroshot(ZeroShotConfig("unused", str(tmp_path), split="train"))


def test_parquet_labels_strings_and_ints(tmp_path, colour_checkpoint):
    blobs = [_png(COLOURS[c]) for c in ("red", "green", "blue", "green")] + [b"broken"]
    pq.write_table(pa.table({"jpg": blobs, "label": ["red", "green", "blue", "green", "red"]}), tmp_path / "s.parquet")
    result = zeroshot(ZeroShotConfig("unused", str(tmp_path / "s.parquet")))
    assert result["top1"] == 1.0 and result["n"] == 4 and result["skipped"] == 1
    ints = tmp_path / "ints"
    ints.mkdir()
    pq.write_table(pa.table({"image": blobs[:4], "label": [0, 1, 2, 1]}), ints / "00000.parquet")
    with pytest.raises(WitError, match="no class names"):                            # missing class names
        zeroshot(ZeroShotConfig("unused", str(ints)))
    spec = tmp_path / "classes.json"
    spec.write_text(json.dumps({"classes": ["red", "green", "blue"]}))                 # by position
    assert zeroshot(ZeroShotConfig("unused", str(ints), classes_json=str(spec)))["top1"] == 1.0


def test_bad_image_folder(tmp_path, colour_checkpoint):
    with pytest.raises(WitError):
        zeroshot(ZeroShotConfig("unused", str(tmp_path / "missing")))
    (tmp_path / "only").mkdir()
    with pytest.raises(WitError, match=">= 2 class folders"):
        zeroshot(ZeroShotConfig("unused", str(tmp_path)))


def test_bundled_paper_prompts():
    expected = {"cifar10": (10, 18), "cifar100": (100, 18), "imagenet": (1000, 80)}
    for name, (n_classes, n_templates) in expected.items():
        spec = json.loads((TEMPLATES_DIR / f"{name}.json").read_text())
        assert len(spec["classes"]) == n_classes and len(spec["templates"]) == n_templates
        assert all("{}" in t for t in spec["templates"]) and "openai/CLIP" in spec["source"]
    imagenet = json.loads((TEMPLATES_DIR / "imagenet.json").read_text())
    assert imagenet["classes"][:3] == ["tench", "goldfish", "great white shark"]
    assert imagenet["classes"][-1] == "toilet paper" and "itap of a {}." in imagenet["templates"]
    assert set(default_templates()) <= set(imagenet["templates"])


@pytest.mark.parametrize("command", ["zeroshot", "retrieval", "linear-probe"])
def test_help_teaches_inputs_outputs_and_an_example(command, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", command, "--help"])
    text = capsys.readouterr().out
    for needle in ("Inputs:", "Outputs:", "Example:", "--out", "--markdown", "Ray Data"):
        assert needle in text


def test_cli_writes_json_and_markdown(tmp_path, colour_checkpoint, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers())
    args = parser.parse_args(["eval", "zeroshot", "--checkpoint", "unused", "--images", str(_images(tmp_path / "i")),
                              "--out", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    assert args.run(args) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["top1"] == 1.0 and result["single"]["top1"] == 1.0 and result["ensemble_gain_top1"] == 0.0
    table = (tmp_path / "r.md").read_text()
    assert "| ensemble | 10 | 100.0% |" in table and "| single | 1 | 100.0% |" in table
    assert "top-1 100.0%" in capsys.readouterr().out
