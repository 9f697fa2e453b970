import numpy as np
import pytest
import torch

from PIL import Image

from shapes_corpus import jpeg, write_corpus
from trainer.data import CLIP_MEAN, corpus_files, normalize_images, preprocess_batch, read_captions
from trainer.tokenizer import train_tokenizer
from wit.errors import WitError


def test_corpus_files_ignore_failures(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 8)
    files = corpus_files(corpus)
    assert len(files) == 2 and all("failures" not in f for f in files)
    assert len(read_captions(corpus)) == 8
    with pytest.raises(WitError):
        corpus_files(tmp_path / "nothing")


def test_preprocess_is_reproducible_per_epoch(tmp_path):
    tok_path = train_tokenizer(["a red circle", "a wide image"], vocab_size=300).save(tmp_path / "tok.json")
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, :, 0] = np.arange(120, dtype=np.uint8)[None, :] * 2         # a horizontal ramp
    batch = {"key": np.array(["k1", "k2"]), "jpg": np.array([jpeg(Image.fromarray(wide))] * 2, dtype=object),
             "caption": np.array(["a wide image", "a red circle"])}
    kw = {"tokenizer_path": str(tok_path), "image_size": 16}
    a, b = preprocess_batch(batch, **kw), preprocess_batch(batch, **kw)
    assert a["image"].shape == (2, 16, 16, 3) and a["image"].dtype == np.uint8
    assert a["text"].shape == (2, 77) and a["text"].dtype == np.int64
    np.testing.assert_array_equal(a["image"], b["image"])                 # same seed, epoch, key
    crops = [preprocess_batch(batch, epoch=e, **kw)["image"][0] for e in range(6)]
    assert len({c.tobytes() for c in crops}) > 1                          # epochs draw new crops


def test_normalize_on_device():
    images = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    x = normalize_images(images)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == pytest.approx((1 - CLIP_MEAN[0]) / 0.26862954, rel=1e-5)
