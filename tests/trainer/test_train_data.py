import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from PIL import Image

from shapes_corpus import jpeg, write_corpus
from trainer.data import (CLIP_MEAN, corpus_files, epoch_order, normalize_images, preprocess_batch, read_captions,
                          shard_rows, step_batch)
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


def _step_kwargs(corpus, tok_path, world=2):
    return {"shards": shard_rows(corpus), "batch_size": 4, "world": world, "seed": 3,
            "tokenizer": str(tok_path), "image_size": 16}


def test_step_batches_are_a_function_of_seed_step_and_rank(tmp_path):
    """What exact resume rests on: a step's batch is recomputed identically, workers get disjoint slices,
    an epoch visits each row at most once, and the next epoch draws a new order."""
    corpus = write_corpus(tmp_path / "corpus", 24, size=24)
    tok = train_tokenizer(read_captions(corpus), vocab_size=300).save(tmp_path / "tok.json")
    kw = _step_kwargs(corpus, tok)                                       # 24 rows / (4 x 2) = 3 steps per epoch
    a, b = step_batch(1, rank=0, **kw), step_batch(1, rank=0, **kw)
    for column in a:
        np.testing.assert_array_equal(a[column], b[column])
    assert a["image"].shape == (4, 16, 16, 3) and a["text"].shape == (4, 77) and set(a["step"]) == {1}
    epoch0 = [step_batch(s, rank=r, **kw)["index"] for s in range(3) for r in range(2)]
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(24))    # every row once, no overlap
    epoch1 = [step_batch(s, rank=r, **kw)["index"] for s in range(3, 6) for r in range(2)]
    assert np.concatenate(epoch1).tolist() != np.concatenate(epoch0).tolist()
    assert epoch_order((12, 12), 3, 0)[1].tolist() != epoch_order((12, 12), 4, 0)[1].tolist()   # seeded


def test_undecodable_jpegs_are_replaced_and_counted(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 16, size=24, shards=1)
    table = pq.read_table(corpus / "00000.parquet").to_pydict()
    table["jpg"] = [b"not a jpeg" if i % 4 == 0 else jpg for i, jpg in enumerate(table["jpg"])]
    table["jpg"][1] = None
    pq.write_table(pa.Table.from_pydict(table), corpus / "00000.parquet")
    tok = train_tokenizer(read_captions(corpus), vocab_size=300).save(tmp_path / "tok.json")
    kw = _step_kwargs(corpus, tok, world=1)
    batches = [step_batch(s, rank=0, **kw) for s in range(4)]
    assert all(b["image"].shape == (4, 16, 16, 3) for b in batches)     # every worker keeps B rows
    assert sum(int(b["skipped"].sum()) for b in batches) >= 5           # 5 bad rows met at least once
    bad = {k for k in range(16) if k % 4 == 0 or k == 1}
    keys = {int(i) for b in batches for i in b["index"]}
    assert not keys & bad                                               # no bad row made it into a batch
