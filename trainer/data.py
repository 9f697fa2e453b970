"""Corpus shards -> training batches: Ray Data decodes, crops and tokenizes on CPU; the device normalizes.

A batch is `{"image": uint8 [B, H, W, 3], "text": int64 [B, 77], "step", "index", "skipped"}`.
Each (micro-)step's batch is a pure function of (seed, step, rank), so a restarted or resumed run
sees exactly the batches an uninterrupted one would:

- `corpus_parts(corpus_dir)`: each part's bytes and rows per row group, from its footer (the driver
  reads it once; the plan is O(row groups)).
- `epoch_order(parts, seed, epoch)`: runs of RUN_GROUPS consecutive row groups of a part
  in a seeded order per epoch, each run's groups in a seeded order; the rows of each window of
  SHUFFLE_WINDOW consecutive visited groups in a seeded order (a bounded shuffle). An epoch
  is `rows // (B * world)` steps; the tail is dropped, and the next epoch draws a new order.
- micro-step m (global) is epoch m // steps_per_epoch; worker `rank` takes the positions
  [j*B*world + rank*B, +B) of that epoch's order (j = m % steps_per_epoch), and reads only the row
  groups those rows are in (`ParquetFile.read_row_groups`): about B + SHUFFLE_WINDOW * group rows.
  The whole-part reader this replaced read a 256 MB part for a 15 MB slice.
- Ray Data runs one item per micro-step (`ray.data.range(start, stop)`) through `decode_steps`
  with `preserve_order`, so the stream arrives in step order and a resume starts at the
  checkpoint's step. The batch carries its `step` so the trainer can assert it.

The only augmentation is the paper's: a random square crop drawn from a generator seeded by
(seed, epoch, key). A JPEG that does not decode is counted (`skipped`) and replaced by a row of the
same row group drawn from (seed, epoch, position), so every worker keeps B rows (the contrastive loss
gathers equal-sized batches). Normalization with CLIP's mean/std happens on the training device
(`normalize_images`), which keeps the data stage's output 4x smaller than float32. Only
`corpus_dir/*.parquet` is read: `failures/` is not training data.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from trainer.tokenizer import Tokenizer
from core import storage
from core.errors import WitError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)   # OpenAI CLIP's image statistics
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def corpus_files(corpus_dir: str | Path) -> list[str]:
    """The corpus shards: `corpus_dir/*.parquet` only (`failures/` and other subfolders are not data).
    corpus_dir may be a cloud URI (core.storage); the shards are then URIs, read by every worker."""
    files = storage.glob(corpus_dir, "*.parquet")
    if not files:
        raise WitError(f"no *.parquet shards in {corpus_dir}", hint="point --corpus at a `wit pipeline download` output")
    return files


def corpus_rows(corpus_dir: str | Path) -> int:
    return sum(storage.num_rows(f) for f in corpus_files(corpus_dir))


TOKENIZER_CAPTIONS = 2_000_000   # a BPE's merges settle long before this; a paper corpus has 400M


def read_captions(corpus_dir: str | Path, limit: int = TOKENIZER_CAPTIONS, seed: int = 0) -> list[str]:
    """Up to `limit` captions to train the tokenizer on: parts in a seeded order, each read by row
    group (the caption column only) until the limit, so the driver never holds a paper corpus's
    captions; a corpus under the limit is read whole."""
    files = corpus_files(corpus_dir)
    captions: list[str] = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        with storage.open_input_file(files[i]) as f:
            part = pq.ParquetFile(f)
            for group in range(part.num_row_groups):
                captions += part.read_row_group(group, columns=["caption"])["caption"].to_pylist()
                if len(captions) >= limit:
                    return captions[:limit]
    return captions


def _row_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}:{epoch}:{key}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(left, top, side) of the random square crop: the paper's only augmentation. Both decode paths
    (PIL on CPU, torchvision on the GPU) draw it here, so they crop the same pixels."""
    side = min(width, height)
    return int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side


def random_square_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    left, top, side = crop_box(*image.size, rng)
    return image.crop((left, top, left + side, top + side))


def center_square_crop(image: Image.Image) -> Image.Image:
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """A square RGB image resized to `size`: uint8 [size, size, 3]."""
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def _tokenizer(path_or_json: str) -> Tokenizer:
    """Once per Ray worker process, not once per batch. Train workers and decode tasks get the JSON text
    itself: on a cluster the driver's tokenizer file is not on their nodes."""
    if path_or_json.lstrip().startswith("{"):
        import tokenizers

        return Tokenizer(tokenizers.Tokenizer.from_str(path_or_json))
    return Tokenizer.load(path_or_json)


def preprocess_batch(batch: dict, *, tokenizer_path: str, image_size: int, epoch: int = 0,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """{key, jpg, caption} columns -> {image uint8 [B, H, W, 3], text int64 [B, 77]}."""
    images, captions = [], []
    for key, jpg, caption in zip(batch["key"], batch["jpg"], batch["caption"]):
        if jpg is None:
            continue                      # download failures live in failures/; never here
        with Image.open(io.BytesIO(jpg)) as img:
            crop = random_square_crop(img, _row_rng(seed, epoch, str(key)))
            images.append(to_array(crop, image_size))
        captions.append(str(caption))
    text = _tokenizer(tokenizer_path).encode_batch(captions)
    image = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return {"image": image, "text": text}


def decode_image(jpg: bytes | None, rng: np.random.Generator, image_size: int) -> np.ndarray | None:
    """JPEG bytes -> random square crop resized to uint8 [size, size, 3]; None when it does not decode."""
    if jpg is None:
        return None
    try:
        with Image.open(io.BytesIO(jpg)) as img:
            return to_array(random_square_crop(img, rng), image_size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def image_box(jpg: bytes | None, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """For decoding on the train worker's GPU: the crop box of an image from its header alone (no pixel
    decode), drawn from the same generator as `decode_image`; None when the header does not parse."""
    if jpg is None:
        return None
    try:
        with Image.open(io.BytesIO(jpg)) as img:
            return crop_box(*img.size, rng)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def prepare_image(jpg: bytes | None, rng: np.random.Generator, image_size: int, on_device: bool):
    """The data stage's part of one image: decoded pixels (CPU path), or (bytes, crop box) to decode on
    the worker's device; None when it does not decode."""
    if not on_device:
        return decode_image(jpg, rng, image_size)
    box = image_box(jpg, rng)
    return None if box is None else (jpg, box)


def stack_images(images: list, on_device: bool) -> dict[str, np.ndarray]:
    """A batch's image columns: `image` uint8 [B, H, W, 3], or `jpg` (bytes) and `box` int64 [B, 3]."""
    if not on_device:
        return {"image": np.stack(images)}
    jpgs = np.empty(len(images), dtype=object)
    jpgs[:] = [jpg for jpg, _ in images]
    return {"jpg": jpgs, "box": np.asarray([box for _, box in images], np.int64).reshape(-1, 3)}


def resize_square(image: torch.Tensor, box: tuple[int, int, int], size: int) -> torch.Tensor:
    """uint8 [3, H, W] -> its `box` crop resized to uint8 [3, size, size]: bicubic with antialiasing, as
    PIL's BICUBIC (a = -0.5, the kernel widened by the scale when shrinking)."""
    left, top, side = box
    crop = image[:, top:top + side, left:left + side].unsqueeze(0).float()
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode="bicubic", antialias=True,
                                          align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)[0]


def _decode_with_pil(data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """One image the batched GPU decode refused (not a JPEG, CMYK, a broken body): PIL on the CPU."""
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return torch.from_numpy(pixels).permute(2, 0, 1).to(device)


def device_images(jpgs, boxes, image_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """JPEG bytes + crop boxes -> (uint8 [B, size, size, 3] on `device`, bool [B]: did not decode).

    torchvision decodes the batch at once (nvJPEG on CUDA; libjpeg-turbo on CPU, which the tests use
    to compare with the PIL path), then each image is cropped and resized on the device. Images the
    batched decode refuses go through PIL one by one; one that PIL cannot decode either (its header
    parsed in the data stage, its body is broken) becomes a black image and is counted: the CPU path
    would have replaced that row, the one place where the two paths can differ.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpgs]
    try:
        decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        decoded = [_decode_jpeg_or_pil(d, device) for d in data]
    out = [torch.zeros(3, image_size, image_size, dtype=torch.uint8, device=device) if image is None
           else resize_square(image, tuple(box), image_size) for image, box in zip(decoded, np.asarray(boxes).tolist())]
    failed = torch.tensor([image is None for image in decoded], device=device)
    return torch.stack(out).permute(0, 2, 3, 1).contiguous(), failed


BATCH_DTYPES = {"image": torch.uint8, "text": torch.int64, "step": torch.int64, "index": torch.int64,
                "skipped": torch.int64}


def worker_batches(dataset, *, batch_size: int, device: torch.device, image_size: int,
                   on_device: bool) -> Iterator[dict[str, torch.Tensor]]:
    """A worker's step stream (build_step_dataset's) as tensors on `device`. With `on_device` the
    stream carries JPEG bytes and crop boxes, decoded here on the device (`device_images`)."""
    if not on_device:
        yield from dataset.iter_torch_batches(batch_size=batch_size, prefetch_batches=4, device=device,
                                              dtypes=BATCH_DTYPES)
        return
    for batch in dataset.iter_batches(batch_size=batch_size, prefetch_batches=4, batch_format="numpy"):
        images, failed = device_images(batch["jpg"], batch["box"], image_size, device)
        out = {k: torch.as_tensor(batch[k], dtype=BATCH_DTYPES[k]).to(device) for k in ("text", "step", "index")}
        out["skipped"] = torch.as_tensor(batch["skipped"], dtype=torch.int64).to(device) + failed
        yield {"image": images, **out}


def _decode_jpeg_or_pil(data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return _decode_with_pil(data, device)


# ---------------------------------------------------------------------------------------------
# Deterministic per-step batches, read by row group

RUN_GROUPS = 16        # consecutive row groups of one part that an epoch visits together: a worker's
                       # B rows come from a few parts, so it reads a few footers (~0.4 MB each at paper
                       # size) per step, while a global batch still draws B * world / run rows runs at random
SHUFFLE_WINDOW = 2     # visited row groups whose rows are shuffled together: a worker-step reads about
                       # B + SHUFFLE_WINDOW * group rows for its B rows (the windows at its two edges)
READ_COLUMNS = ["key", "jpg", "caption"]


@dataclass(frozen=True)
class Part:
    """A corpus part as the data plan sees it, from its Parquet footer only."""
    path: str
    bytes: int
    footer: int                       # bytes of its Parquet metadata: a reader fetches exactly these
    group_rows: tuple[int, ...]       # rows of each row group, in file order

    @property
    def rows(self) -> int:
        return sum(self.group_rows)


def _read_part(path: str) -> Part:
    with storage.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
        return Part(path, f.size(), meta.serialized_size,
                    tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups)))


def corpus_parts(corpus_dir: str | Path) -> list[Part]:
    """Each part's size and rows per row group: one footer read per part (threads: at a cloud URI a
    paper-size corpus has ~24k parts, each footer a round trip)."""
    files = corpus_files(corpus_dir)
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        return list(pool.map(_read_part, files))


@dataclass(frozen=True)
class _Groups:
    """The corpus's non-empty row groups, numbered 0..G-1 in (part, group) order, cut into runs."""
    part: np.ndarray          # int64 [G]
    index: np.ndarray         # int64 [G]: the group's number inside its part (read_row_groups' argument)
    rows: np.ndarray          # int64 [G]
    first_row: np.ndarray     # int64 [G]: the corpus row (a batch's `index`) of the group's first row
    run_first: tuple[int, ...]  # [runs + 1]: runs are groups [run_first[r], run_first[r + 1])


@functools.lru_cache(maxsize=2)
def _groups(parts: tuple[Part, ...]) -> _Groups:
    """Vectorized: ~6M groups at paper size, built once per process."""
    counts = np.asarray([len(p.group_rows) for p in parts], np.int64)
    rows = np.fromiter(itertools.chain.from_iterable(p.group_rows for p in parts), np.int64, counts.sum())
    part = np.repeat(np.arange(len(parts), dtype=np.int64), counts)
    index = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rows > 0                                                     # an empty part has an empty group
    part, index, rows = part[keep], index[keep], rows[keep]
    part_first = np.flatnonzero(np.diff(part, prepend=-1))              # each part's first kept group
    in_part = np.arange(len(part)) - np.repeat(part_first, np.diff(np.append(part_first, len(part))))
    run_first = np.append(np.flatnonzero(in_part % RUN_GROUPS == 0), len(part))
    return _Groups(part, index, rows, np.cumsum(rows) - rows, tuple(run_first.tolist()))


@functools.lru_cache(maxsize=2)
def epoch_order(parts: tuple[Part, ...], seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row groups in the order the epoch visits them, the epoch position where each visited group
    starts, the epoch position where each shuffle window starts; both end with the epoch's rows).

    Runs of RUN_GROUPS groups in a seeded order, each run's groups in a seeded order; the rows of each
    window of SHUFFLE_WINDOW visited groups are then permuted by `_window_rows`. O(row groups), never
    O(rows): a paper-size corpus has ~400M rows and ~6M row groups."""
    groups = _groups(parts)
    rng = np.random.default_rng([seed, epoch])
    run_sizes = np.diff(groups.run_first)
    run_place = np.empty(len(run_sizes), np.int64)
    run_place[rng.permutation(len(run_sizes))] = np.arange(len(run_sizes))
    # by run, then at random within the run: one float key (run place + a fraction) and one argsort
    visit = np.argsort(np.repeat(run_place, run_sizes) + rng.random(len(groups.rows)))
    starts = np.concatenate([[0], np.cumsum(groups.rows[visit])])
    windows = starts[::SHUFFLE_WINDOW]
    if len(visit) % SHUFFLE_WINDOW:                                     # the last window is short
        windows = np.append(windows, starts[-1])
    return visit, starts, windows


def _window_rows(rows: int, seed: int, epoch: int, window: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, window, 1]).permutation(rows)


def step_rows(step: int, *, shards: list[Part], batch_size: int, world: int, rank: int,
              seed: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(epoch, epoch positions, row group, row in group) of the B rows worker `rank` trains on at
    (micro-)step `step`: metadata only, a pure function of its arguments.

    Epoch e visits the row groups in a seeded order (`epoch_order`); consecutive windows of
    SHUFFLE_WINDOW groups have their rows permuted; (micro-)step j of the epoch takes positions
    [j*B*world, +B*world), and worker `rank` the slice [rank*B, +B) of those. An epoch is
    rows // (B * world) steps (the tail is dropped; the next epoch draws a new order)."""
    groups = _groups(tuple(shards))
    steps_per_epoch = int(groups.rows.sum()) // (batch_size * world)
    epoch, j = divmod(step, steps_per_epoch)
    visit, starts, window_starts = epoch_order(tuple(shards), seed, epoch)
    positions = np.arange(batch_size, dtype=np.int64) + j * batch_size * world + rank * batch_size
    window = np.searchsorted(window_starts, positions, side="right") - 1
    shuffled = np.empty_like(positions)
    for w in range(window[0], window[-1] + 1):
        first, last = window_starts[w], window_starts[w + 1]
        mine = window == w
        shuffled[mine] = first + _window_rows(int(last - first), seed, epoch, int(w))[positions[mine] - first]
    visited = np.searchsorted(starts, shuffled, side="right") - 1
    return epoch, positions, visit[visited], shuffled - starts[visited]


def read_groups(shards: list[Part], wanted: np.ndarray) -> dict[int, dict[str, list]]:
    """The columns of row groups `wanted` (numbers from step_rows), each part opened once."""
    groups = _groups(tuple(shards))
    out: dict[int, dict[str, list]] = {}
    for p in np.unique(groups.part[wanted]):
        mine = np.unique(wanted[groups.part[wanted] == p])
        part = shards[p]
        with storage.open_input_file(part.path) as f:
            # The footer in one exact read (pyarrow alone reads the last 64 kB, then the rest of it).
            meta = pq.read_metadata(pa.py_buffer(f.read_at(part.footer + 8, part.bytes - part.footer - 8)))
            table = pq.ParquetFile(f, metadata=meta, pre_buffer=True).read_row_groups(
                groups.index[mine].tolist(), columns=READ_COLUMNS)
        at = 0
        for g in mine:
            n = int(groups.rows[g])
            out[int(g)] = table.slice(at, n).to_pydict()
            at += n
    return out


def step_batch(step: int, *, shards: list[Part], batch_size: int, world: int, rank: int,
               seed: int, tokenizer: str, image_size: int, on_device: bool = False) -> dict[str, np.ndarray]:
    """The B rows worker `rank` trains on at (micro-)step `step`, decoded: a pure function of its arguments.
    Reads only the row groups those rows are in."""
    epoch, positions, group_of, row_of = step_rows(step, shards=shards, batch_size=batch_size, world=world,
                                                   rank=rank, seed=seed)
    tables = read_groups(shards, group_of)
    first_row = _groups(tuple(shards)).first_row
    images, captions, skipped, index = [], [], [], []
    for position, group, row in zip(positions.tolist(), group_of.tolist(), row_of.tolist()):
        table = tables[group]
        rng = np.random.default_rng([seed, epoch, position])        # replacements, when a JPEG is bad
        for attempt in range(16):
            key = str(table["key"][row])
            image = prepare_image(table["jpg"][row], _row_rng(seed, epoch, key), image_size, on_device)
            if image is not None:
                break
            row = int(rng.integers(len(table["key"])))                # another row of the same group
        else:
            part = shards[_groups(tuple(shards)).part[group]]
            raise WitError(f"16 undecodable JPEGs in a row in {part.path}", hint="is this a corpus shard?")
        images.append(image)
        captions.append(str(table["caption"][row]))
        skipped.append(attempt)
        index.append(first_row[group] + row)
    return {**stack_images(images, on_device), "text": _tokenizer(tokenizer).encode_batch(captions),
            "step": np.full(batch_size, step, np.int64), "index": np.asarray(index, np.int64),
            "skipped": np.asarray(skipped, np.int64)}


def decode_steps(items: dict[str, np.ndarray], *, start: int, **kwargs) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data transform (a generator): item ids -> one decoded batch per micro-step `start + id`."""
    for item in items["id"]:
        yield step_batch(start + int(item), **kwargs)


def build_step_dataset(shards: list[Part], start: int, stop: int, *, cpus: float, **kwargs):
    """Micro-steps [start, stop) of one worker, as a Ray Data stream in step order.

    Built inside each train worker (so a restart rebuilds it from the checkpoint's step); its decode
    tasks are scheduled on any node with CPUs, within a budget of `cpus`. One block per step up to 4,096
    steps, so the first batch streams after one decode task. `ray.data.read_parquet` is not used:
    its block boundaries follow files and row groups, not steps, and it has no random access.
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True                        # steps arrive in order
    ctx.execution_options.resource_limits = ray.data.ExecutionResources(cpu=cpus)
    ctx.enable_progress_bars = False
    ds = ray.data.range(stop - start, override_num_blocks=max(1, min(stop - start, 4096)))
    return ds.map_batches(decode_steps, batch_size=1, batch_format="numpy", num_cpus=min(1.0, cpus),
                          fn_kwargs={"start": start, "shards": shards, **kwargs})

def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] with CLIP's mean/std, on the images' device."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
