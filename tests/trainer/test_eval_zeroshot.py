import json
from dataclasses import dataclass

import pytest
import torch
from PIL import Image

import trainer.fit
from trainer.eval.zeroshot import ZeroShotConfig, default_templates, zeroshot
from trainer.tokenizer import train_tokenizer
from wit.errors import WitError

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@dataclass(frozen=True)
class _Vision:
    image_size: int = 16


@dataclass(frozen=True)
class _Cfg:
    vision: _Vision = _Vision()


class ColourCLIP(torch.nn.Module):
    """A hand-built 'CLIP' whose answer is known: an image's feature is its mean RGB, a prompt's
    feature is the RGB of the colour word in it."""

    cfg = _Cfg()

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def encode_image(self, images):                                      # [B, 3, H, W] normalized
        return images.mean(dim=(2, 3)) - images.mean(dim=(1, 2, 3))[:, None]

    def encode_text(self, text):
        feats = []
        for row in text.tolist():
            words = self.tokenizer.decode(row).split()
            rgb = next((COLOURS[w.strip(".")] for w in words if w.strip(".") in COLOURS), (1, 1, 1))
            feats.append(torch.tensor(rgb, dtype=torch.float32) - sum(rgb) / 3)
        return torch.stack(feats)


@pytest.fixture
def colour_checkpoint(monkeypatch):
    tokenizer = train_tokenizer([t.format(c) for t in default_templates() for c in COLOURS], vocab_size=400)
    monkeypatch.setattr(trainer.fit, "load_checkpoint", lambda path: (ColourCLIP(tokenizer), tokenizer, None))


def _images(root, per_class=3, broken=0):
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20 + i, 16), rgb).save(root / name / f"{i}.png")
    for i in range(broken):
        (root / "red" / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    return root


def test_known_answer_and_unreadable_images_are_counted(tmp_path, colour_checkpoint):
    images = _images(tmp_path / "images", broken=2)
    for templates in ("ensemble", "single"):
        result = zeroshot(ZeroShotConfig("unused", str(images), templates=templates))
        assert result["top1"] == 1.0 and result["top5"] == 1.0
        assert result["n"] == 9 and result["num_classes"] == 3 and result["chance"] == pytest.approx(1 / 3)
        assert result["skipped"] == 2 and result["per_class"] == {"blue": 1.0, "green": 1.0, "red": 1.0}


def test_classes_json_renames_and_checks(tmp_path, colour_checkpoint):
    images = _images(tmp_path / "images")
    spec = tmp_path / "classes.json"
    spec.write_text(json.dumps({"classes": {"red": "green", "green": "red", "blue": "blue"},
                                "templates": ["a photo of a {}."]}))
    result = zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))
    assert result["per_class"] == {"green": 0.0, "red": 0.0, "blue": 1.0}       # swapped names are wrong
    spec.write_text(json.dumps({"classes": ["red", "green"]}))
    with pytest.raises(WitError, match="blue"):
        zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))
    spec.write_text(json.dumps({"classes": ["red", "green", "blue"], "templates": ["a photo"]}))
    with pytest.raises(WitError, match="slot"):
        zeroshot(ZeroShotConfig("unused", str(images), classes_json=str(spec)))


def test_bad_image_folder(tmp_path, colour_checkpoint):
    with pytest.raises(WitError):
        zeroshot(ZeroShotConfig("unused", str(tmp_path / "missing")))
