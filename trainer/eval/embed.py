"""Image and text embeddings of a checkpoint, in batches: Ray Data batch inference by default.

`EmbedBatch` is a Ray Data callable class: each actor of the pool loads the checkpoint once and
embeds batches of rows (`{"path", "data"}` images or `{"text"}` prompts/captions), one GPU per actor
when CUDA is present. Inputs of at most `local_max_rows` rows are embedded in this process instead:
starting a Ray actor pool and loading the model in it costs seconds, more than embedding a few hundred
small images on a CPU. Unreadable images come back with `ok == False` and a zero embedding.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from trainer.checkpoint import load_checkpoint
from trainer.data import center_square_crop, normalize_images, to_array
from trainer.eval.config import EmbedConfig


def _decode(row_path: str, row_data: bytes, size: int) -> np.ndarray | None:
    try:
        source = io.BytesIO(row_data) if len(row_data) else row_path
        with Image.open(source) as img:
            return to_array(center_square_crop(img), size)      # uint8 [size, size, 3]
    except (UnidentifiedImageError, OSError, ValueError):
        return None


class EmbedBatch:
    """Ray Data callable class: the model is loaded once per actor, not once per batch."""

    def __init__(self, checkpoint: str):
        self.model, self.tokenizer, _ = load_checkpoint(checkpoint)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.size = self.model.cfg.vision.image_size

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        index = np.asarray(batch["index"], dtype=np.int64)
        if "text" in batch:
            tokens = torch.from_numpy(self.tokenizer.encode_batch([str(t) for t in batch["text"]]))
            features = self.model.encode_text(tokens.to(self.device))               # [b, E]
            ok = np.ones(len(index), dtype=bool)
        else:
            arrays = [_decode(p, d, self.size) for p, d in zip(batch["path"], batch["data"])]
            ok = np.array([a is not None for a in arrays], dtype=bool)
            blank = np.zeros((self.size, self.size, 3), np.uint8)
            pixels = torch.from_numpy(np.stack([a if a is not None else blank for a in arrays]))
            features = self.model.encode_image(normalize_images(pixels.to(self.device)))  # [b, E]
            features[torch.from_numpy(~ok).to(self.device)] = 0
        return {"index": index, "ok": ok, "embedding": features.float().cpu().numpy()}


def _pool_size(cfg: EmbedConfig) -> int:
    import ray

    if cfg.actors:
        return cfg.actors
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return max(1, gpus) if torch.cuda.is_available() or gpus else 1


def _embed_ray(rows: list[dict], cfg: EmbedConfig) -> list[dict]:
    # Here, not at the top, with Ray itself: core.raylocal imports ray, and an eval of at most
    # local_max_rows rows runs in-process without paying for Ray's import.
    import ray.data

    from core.raylocal import ensure_ray

    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = cfg.progress
    use_gpu = torch.cuda.is_available() or ray.cluster_resources().get("GPU", 0) > 0
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // cfg.batch_size, 200)))
    ds = ds.map_batches(EmbedBatch, fn_constructor_kwargs={"checkpoint": cfg.checkpoint},
                        batch_size=cfg.batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=_pool_size(cfg)),
                        num_gpus=1 if use_gpu else 0, num_cpus=1)
    return list(ds.iter_batches(batch_size=None, batch_format="numpy"))


def _embed_local(rows: list[dict], cfg: EmbedConfig, model: EmbedBatch | None) -> list[dict]:
    from tqdm import tqdm

    model = model or EmbedBatch(cfg.checkpoint)
    columns = [k for k in rows[0] if k != "index"]
    out = []
    for start in tqdm(range(0, len(rows), cfg.batch_size), desc="embed", unit="batch",
                      disable=None if cfg.progress else True, leave=False):
        chunk = rows[start:start + cfg.batch_size]
        batch = {"index": np.array([r["index"] for r in chunk])}
        batch.update({k: [r[k] for r in chunk] for k in columns})
        out.append(model(batch))
    return out


class Embedder:
    """Embeds images and texts with one checkpoint; the in-process model is loaded at most once."""

    def __init__(self, cfg: EmbedConfig):
        self.cfg = cfg
        self._local: EmbedBatch | None = None
        self.used_ray = False

    def _run(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Raw embeddings float32 [N, E] in input order, and ok bool [N]."""
        rows = [dict(r, index=i) for i, r in enumerate(rows)]
        if not rows:
            raise ValueError("nothing to embed")
        if len(rows) <= self.cfg.local_max_rows:
            self._local = self._local or EmbedBatch(self.cfg.checkpoint)
            batches = _embed_local(rows, self.cfg, self._local)
        else:
            self.used_ray = True
            batches = _embed_ray(rows, self.cfg)
        dim = batches[0]["embedding"].shape[1]
        features, ok = np.zeros((len(rows), dim), np.float32), np.zeros(len(rows), bool)
        for b in batches:                      # Ray Data may return blocks out of order: scatter by index
            features[b["index"]] = b["embedding"]
            ok[b["index"]] = b["ok"]
        return features, ok

    def images(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return self._run([{"path": r["path"], "data": r["data"]} for r in rows])

    def texts(self, texts: list[str]) -> np.ndarray:
        return self._run([{"text": t} for t in texts])[0]


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
