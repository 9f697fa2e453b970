"""Zero-shot image-text retrieval (CLIP paper, section 3.1.6, Table 13): recall@1/5/10 both ways.

Image -> text: an image is a hit at K when one of its own captions is among the K captions most
similar to it. Text -> image: a caption is a hit at K when its image is among the K images most
similar to it. Ties are counted against the model (an equal score ranks ahead of the right
answer), so a model that scores everything alike gets chance, not 100%.
"""

from __future__ import annotations

import numpy as np

from trainer.eval.datasets import read_captions
from trainer.eval.config import EmbedConfig, RetrievalConfig
from trainer.eval.embed import Embedder, normalize
from core.errors import WitError

KS = (1, 5, 10)


def recall_at_k(similarity: np.ndarray, caption_image: np.ndarray, ks=KS) -> dict:
    """similarity: [I, T] image-caption scores; caption_image: [T] the image of each caption."""
    n_images, n_captions = similarity.shape
    own = caption_image[None, :] == np.arange(n_images)[:, None]                   # [I, T]
    # image -> text: rank of the image's best own caption among the other captions
    best_own = np.where(own, similarity, -np.inf).max(axis=1)                       # [I]
    i2t_rank = ((similarity >= best_own[:, None]) & ~own).sum(axis=1)               # [I]
    # text -> image: rank of the caption's image among the other images
    own_score = similarity[caption_image, np.arange(n_captions)]                     # [T]
    t2i_rank = ((similarity >= own_score[None, :]) & ~own).sum(axis=0)              # [T]
    return {"image_to_text": {f"R@{k}": float((i2t_rank < k).mean()) for k in ks},
            "text_to_image": {f"R@{k}": float((t2i_rank < k).mean()) for k in ks}}


def retrieval(cfg: RetrievalConfig) -> dict:
    data = read_captions(cfg.captions, cfg.images)
    if len(data.rows) < 2:
        raise WitError(f"{cfg.captions} describes {len(data.rows)} image(s)", hint="retrieval needs >= 2")
    embedder = Embedder(EmbedConfig(cfg.checkpoint, cfg.batch_size, cfg.local_max_rows, cfg.actors))
    raw, ok = embedder.images(data.rows)
    if ok.sum() < 2:
        raise WitError(f"fewer than 2 readable images for {cfg.captions}", hint="check --images (the image root)")
    kept = np.flatnonzero(ok)                                   # unreadable images leave with their captions
    new_index = np.full(len(ok), -1)
    new_index[kept] = np.arange(len(kept))
    caption_ok = ok[data.caption_image]
    captions = [c for c, keep in zip(data.captions, caption_ok) if keep]
    text = normalize(embedder.texts(captions))                  # [T, E]
    image = normalize(raw[kept])                                # [I, E]
    result = recall_at_k(image @ text.T, new_index[data.caption_image[caption_ok]])
    skipped = [data.rows[i]["path"] or f"row {i}" for i in np.flatnonzero(~ok)]
    return {**result, "n_images": int(len(kept)), "n_captions": len(captions),
            "captions_per_image": len(captions) / len(kept), "skipped": len(skipped),
            "skipped_files": skipped[:20], "ray_data": embedder.used_ray}
