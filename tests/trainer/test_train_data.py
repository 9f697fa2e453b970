import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from PIL import Image

from shapes_corpus import jpeg, write_corpus
from trainer.data import (CLIP_MEAN, corpus_files, epoch_order, normalize_images, preprocess_batch, read_captions,
                          corpus_parts, read_groups, step_batch, step_rows)
from trainer.tokenizer import train_tokenizer
from core import storage
from core.errors import WitError


def test_corpus_files_ignore_failures(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 8)
    files = corpus_files(corpus)
    assert len(files) == 2 and all("failures" not in f for f in files)
    assert len(read_captions(corpus)) == 8
    with pytest.raises(WitError):
        corpus_files(tmp_path / "nothing")


def test_tokenizer_captions_are_bounded_and_seeded(tmp_path):
    """The tokenizer's captions stop at the limit (the driver never holds a whole paper corpus's),
    come from the corpus, and are the same for the same seed."""
    corpus = write_corpus(tmp_path / "corpus", 40)
    every = read_captions(corpus)
    some = read_captions(corpus, limit=5, seed=3)
    assert len(every) == 40 and len(some) == 5 and set(some) <= set(every)
    assert read_captions(corpus, limit=5, seed=3) == some


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
    return {"shards": corpus_parts(corpus), "batch_size": 4, "world": world, "seed": 3,
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
    parts = tuple(corpus_parts(_grouped_corpus(tmp_path / "grouped")))
    assert epoch_order(parts, 3, 0)[0].tolist() != epoch_order(parts, 4, 0)[0].tolist()   # seeded


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


# ---------------------------------------------------------------------------------------------
# Reading by row group: exactly-once epochs, pure functions, bytes read per sample


def _noise_jpeg(rng: np.random.Generator, side: int = 72) -> bytes:
    """A real JPEG of about 6 kB (noise compresses badly, like a photo). Above 4 kB, as photos are, so
    Parquet keeps no min/max of the jpg column in the footer."""
    return jpeg(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))


def _grouped_corpus(root, part_rows=(37, 23, 40), group_rows=5, seed=0):
    """Parts of several row groups (the last of each part short); key = the row's corpus index."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    first = 0
    for p, n in enumerate(part_rows):
        keys = [f"{first + i:08d}" for i in range(n)]
        pq.write_table(pa.table({"key": keys, "caption": [f"photo {k}" for k in keys],
                                 "jpg": [_noise_jpeg(rng) for _ in keys]}),
                       root / f"part-{p:05d}.parquet", row_group_size=group_rows)
        first += n
    return root


def _epoch_indices(parts, epoch, batch_size, world, seed=3):
    """Corpus rows of every (step, rank) of one epoch, from the data plan alone."""
    steps = sum(p.rows for p in parts) // (batch_size * world)
    out = []
    for step in range(epoch * steps, (epoch + 1) * steps):
        for rank in range(world):
            _, _, groups, rows = step_rows(step, shards=parts, batch_size=batch_size, world=world, rank=rank,
                                           seed=seed)
            out.append((first_rows(parts)[groups] + rows).tolist())
    return out


def first_rows(parts):
    rows = np.asarray([n for p in parts for n in p.group_rows if n])
    return np.cumsum(rows) - rows


def test_parts_come_from_footers(tmp_path):
    parts = corpus_parts(_grouped_corpus(tmp_path / "corpus"))
    assert [p.group_rows for p in parts] == [(5,) * 7 + (2,), (5,) * 4 + (3,), (5,) * 8]
    assert [p.bytes for p in parts] == [(tmp_path / "corpus" / f"part-{i:05d}.parquet").stat().st_size
                                        for i in range(3)]


def test_every_row_once_per_epoch_across_ranks_and_steps(tmp_path):
    """100 rows, B=4 x 3 ranks: 8 steps per epoch use 96 distinct rows, the 4 dropped ones differ by
    epoch, and epochs visit in different orders."""
    parts = corpus_parts(_grouped_corpus(tmp_path / "corpus"))
    epochs = [_epoch_indices(parts, e, batch_size=4, world=3) for e in range(3)]
    for slices in epochs:
        used = [i for s in slices for i in s]
        assert all(len(s) == 4 for s in slices)
        assert len(used) == 96 and len(set(used)) == 96 and set(used) <= set(range(100))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    # a step's rows are shuffled across row groups, not read in file order
    assert any(s != sorted(s) for s in epochs[0])


def _indices_in_fresh_process(corpus: str) -> list:
    from trainer.data import corpus_parts as parts_of

    return _epoch_indices(parts_of(corpus), 1, batch_size=4, world=3)


def test_batches_are_the_same_in_an_independent_build(tmp_path):
    """A restarted worker on another node recomputes the plan from the footers: same rows, same order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    corpus = _grouped_corpus(tmp_path / "corpus")
    here = _epoch_indices(corpus_parts(corpus), 1, batch_size=4, world=3)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(_indices_in_fresh_process, str(corpus)).result()
    assert here == there


def test_step_batch_reads_its_rows_by_row_group(tmp_path):
    """Each worker-step reads at most 1.25x the stored bytes of the rows it trains on (row groups of 4
    rows, B = 96; a whole 256-row part would be 2.7x), and the batch holds the rows the plan names."""
    from bench.ingest import count_reads

    corpus = _grouped_corpus(tmp_path / "corpus", part_rows=(256, 250, 256, 262), group_rows=4)
    parts = corpus_parts(corpus)
    stored_per_row = sum(p.bytes for p in parts) / sum(p.rows for p in parts)
    tok = train_tokenizer([f"photo {i:08d}" for i in range(50)], vocab_size=300).save(tmp_path / "tok.json")
    kw = {"shards": parts, "batch_size": 96, "world": 2, "seed": 3, "tokenizer": str(tok), "image_size": 16}
    batches, read = [], []
    for step in range(5):                                               # 1,024 rows // (96 x 2): one epoch
        for rank in range(2):
            with count_reads() as counted:                      # as if each step ran in a fresh process
                batches.append(step_batch(step, rank=rank, **kw))
            read.append(counted["bytes"] / 96 / stored_per_row)
    assert max(read) <= 1.25, read
    expected = _epoch_indices(parts, 0, batch_size=96, world=2)
    assert [b["index"].tolist() for b in batches] == expected
    assert all(int(b["skipped"].sum()) == 0 for b in batches)
    _, _, groups, rows = step_rows(1, shards=parts, batch_size=96, world=2, rank=1, seed=3)
    tables = read_groups(parts, groups)
    keys = [tables[g]["key"][r] for g, r in zip(groups.tolist(), rows.tolist())]
    assert keys == [f"{i:08d}" for i in expected[3]]                   # the rows read are the rows named


def test_step_batch_reads_a_corpus_at_a_cloud_uri(s3, tmp_path):
    """Through core.storage's filesystem: an s3:// corpus gives the batches a local copy does."""
    corpus = _grouped_corpus(tmp_path / "corpus")
    for f in sorted(corpus.glob("*.parquet")):
        storage.write_bytes(storage.join(s3, "corpus", f.name), f.read_bytes())
    tok = train_tokenizer([f"photo {i:08d}" for i in range(50)], vocab_size=300).save(tmp_path / "tok.json")
    local, remote = corpus_parts(corpus), corpus_parts(storage.join(s3, "corpus"))
    assert [p.group_rows for p in remote] == [p.group_rows for p in local]
    kw = {"batch_size": 4, "world": 3, "rank": 2, "seed": 3, "tokenizer": str(tok), "image_size": 16}
    for step in (0, 9):
        a, b = step_batch(step, shards=local, **kw), step_batch(step, shards=remote, **kw)
        for column in a:
            np.testing.assert_array_equal(a[column], b[column])
