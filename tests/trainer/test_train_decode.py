"""Decoding on the train worker's device (trainer/data.py device_images) against the PIL path on CPU.

The data stage draws each crop box from the same seeded generator on both paths, so a step's rows and
boxes are the same (checked exactly). On CPU both decode with libjpeg-turbo, so the pixels differ only
by the resize: PIL's BICUBIC vs torch's antialiased bicubic on the same crop; tolerance: at most 2 grey
levels anywhere, mean < 0.25 (measured here: max 1, mean 0.04; uint8, images of 60-200 pixels resized
to 32). nvJPEG's IDCT differs from libjpeg-turbo's, so the CUDA test allows a mean < 1 level and 2% of
pixels more than 8 apart. The CUDA test runs only where torch.cuda.is_available(), decided before it
runs."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from shapes_corpus import draw, jpeg
from trainer.data import _row_rng, corpus_parts, crop_box, device_images, image_box, step_batch
from trainer.tokenizer import train_tokenizer

SIZE = 32


def _corpus(root, n=24, bad=(5, 17)):
    """Non-square JPEGs of several sizes (so crop boxes vary), two of them not JPEGs at all."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        w, h = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        img = draw("red" if i % 2 else "blue", "circle", "gray", rng, size=max(w, h)).resize((w, h))
        data = b"not a jpeg" if i in bad else jpeg(img)
        rows.append({"key": f"{i:04d}", "jpg": data, "caption": f"image {i}"})
    root.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "00000.parquet")
    return corpus_parts(root)


def _kwargs(tmp_path):
    tokenizer = train_tokenizer([f"image {i}" for i in range(24)], vocab_size=300).save(tmp_path / "tok.json")
    return {"shards": _corpus(tmp_path / "corpus"), "batch_size": 8, "world": 1, "rank": 0, "seed": 7,
            "tokenizer": str(tokenizer), "image_size": SIZE}


def test_header_box_is_the_pil_paths_box():
    jpg = jpeg(Image.new("RGB", (150, 90), (10, 20, 30)))
    boxes = [image_box(jpg, np.random.default_rng(s)) for s in range(20)]
    assert boxes == [crop_box(150, 90, np.random.default_rng(s)) for s in range(20)]
    assert len({b[0] for b in boxes}) > 1 and all(b[1] == 0 and b[2] == 90 for b in boxes)
    assert image_box(b"not a jpeg", np.random.default_rng(0)) is None and image_box(None, None) is None


def test_device_path_batches_match_the_pil_path_on_cpu(tmp_path):
    kwargs = _kwargs(tmp_path)
    for step in range(3):                                   # 24 rows, 8 a step: every row, the bad ones too
        pil = step_batch(step, **kwargs)
        raw = step_batch(step, on_device=True, **kwargs)
        for key in ("text", "step", "index", "skipped"):
            np.testing.assert_array_equal(raw[key], pil[key])           # same rows, same replacements
        assert raw["box"].shape == (8, 3) and "image" not in raw
        images, failed = device_images(raw["jpg"], raw["box"], SIZE, torch.device("cpu"))
        assert images.shape == pil["image"].shape and images.dtype == torch.uint8 and not failed.any()
        diff = np.abs(images.numpy().astype(int) - pil["image"].astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.25, (diff.max(), diff.mean())
    assert sum(step_batch(s, **kwargs)["skipped"].sum() for s in range(3)) >= 2          # bad rows replaced


def test_boxes_follow_the_row_generator(tmp_path):
    kwargs = _kwargs(tmp_path)
    raw = step_batch(0, on_device=True, **kwargs)
    table = pq.read_table(kwargs["shards"][0].path).to_pydict()
    for jpg, box, index in zip(raw["jpg"], raw["box"], raw["index"]):
        key = table["key"][index]
        with Image.open(io.BytesIO(jpg)) as img:
            assert tuple(box) == crop_box(*img.size, _row_rng(7, 0, key))


def test_an_undecodable_body_is_counted_and_black():
    good = jpeg(Image.new("RGB", (64, 48), (200, 10, 10)))
    broken = good[:30] + bytes(len(good) - 30)                         # the header parses, the body does not
    images, failed = device_images([good, broken], [(0, 0, 48), (0, 0, 48)], SIZE, torch.device("cpu"))
    assert failed.tolist() == [False, True]
    assert images[1].max() == 0 and images[0, ..., 0].float().mean() > 150


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (nvJPEG decode)")
def test_cuda_decode_matches_the_cpu_tensor_path(tmp_path):
    kwargs = _kwargs(tmp_path)
    raw = step_batch(0, on_device=True, **kwargs)
    cpu, _ = device_images(raw["jpg"], raw["box"], SIZE, torch.device("cpu"))
    gpu, failed = device_images(raw["jpg"], raw["box"], SIZE, torch.device("cuda"))
    assert gpu.device.type == "cuda" and not failed.any()
    diff = (gpu.cpu().int() - cpu.int()).abs().float()                   # nvJPEG's IDCT vs libjpeg-turbo's
    assert diff.mean() < 1.0 and (diff > 8).float().mean() < 0.02


@pytest.mark.slow
def test_ray_stream_carries_bytes_and_boxes_to_the_worker(ray_local, tmp_path):
    """The Ray Data stream of the device path (JPEG bytes as an object column) through worker_batches,
    decoded with the tensor path on CPU, gives the PIL stream's batches."""
    from trainer.data import build_step_dataset, worker_batches

    kwargs = _kwargs(tmp_path)
    streams = []
    for on_device in (False, True):
        ds = build_step_dataset(kwargs["shards"], 0, 3, cpus=1.0,
                                on_device=on_device, **{k: v for k, v in kwargs.items() if k != "shards"})
        streams.append(list(worker_batches(ds, batch_size=8, device=torch.device("cpu"), image_size=SIZE,
                                           on_device=on_device)))
    assert len(streams[0]) == len(streams[1]) == 3
    for pil, raw in zip(*streams):
        for key in ("text", "step", "index", "skipped"):
            assert torch.equal(pil[key], raw[key]), key
        assert (pil["image"].int() - raw["image"].int()).abs().max() <= 2
