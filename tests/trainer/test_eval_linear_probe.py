import numpy as np
import pytest
import torch
from PIL import Image

import trainer.eval.embed
from trainer.eval.linear_probe import LinearProbeConfig, linear_probe, probe_features, sweep
from core.errors import WitError

from test_eval_zeroshot import COLOURS, ColourCLIP, tokenizer  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: L-BFGS is per-call overhead, and extra threads only fight over a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _blobs(n: int, noise: float, seed: int, d: int = 20):
    """Two classes split by the sign of feature 0 (margin >= 1); a `noise` fraction of labels flipped."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x[:, 0] > 0).astype(np.int64)
    x[:, 0] += np.where(y == 1, 1.0, -1.0)
    flip = rng.random(n) < noise
    return x, np.where(flip, 1 - y, y)


def test_separable_data_is_learned_with_weak_regularization():
    (xt, yt), (xv, yv), (xs, ys) = _blobs(80, 0, 0), _blobs(40, 0, 1), _blobs(200, 0, 2)
    result = probe_features(xt, yt, xv, yv, xs, ys, max_iter=50)
    assert result["test_accuracy"] >= 0.98
    assert result["log10_lambda"] <= -2                       # nothing to regularize against
    tried = [p["log10_lambda"] for p in result["sweep"]]
    assert min(tried) >= -6 and max(tried) <= 6 and len(tried) <= 7 + 2 * 4
    assert any(np.isclose(abs(a - b), 1 / 8) for a in tried for b in tried)   # resolution: 8 steps a decade


def test_label_noise_makes_the_sweep_regularize_more():
    # 40 points in 50 dimensions: clean labels are separable along feature 0; with 30% of them flipped,
    # a weakly regularized fit memorizes the noise and validation prefers a much smaller W.
    clean = sweep(*map(_as_tensors, (*_blobs(40, 0, 3, 50), *_blobs(200, 0, 4, 50))), num_classes=2, max_iter=50)[0]
    noisy = sweep(*map(_as_tensors, (*_blobs(40, 0.3, 3, 50), *_blobs(200, 0.3, 4, 50))), num_classes=2,
                  max_iter=50)[0]
    assert noisy >= clean + 2, (clean, noisy)                # at least 100x stronger L2 on noisy labels


def _as_tensors(a):
    import torch

    return torch.as_tensor(a, dtype=torch.long if a.dtype == np.int64 else torch.float64)


def _folder(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            jitter = rng.integers(-40, 41, 3)
            Image.new("RGB", (16, 16), tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter))).save(
                root / name / f"{i}.png")
    return root


def test_probe_on_images_end_to_end(tmp_path, monkeypatch, tokenizer):  # noqa: F811
    monkeypatch.setattr(trainer.eval.embed, "load_checkpoint", lambda path: (ColourCLIP(tokenizer), tokenizer, None))
    train, test = _folder(tmp_path / "train", 8, 0), _folder(tmp_path / "test", 4, 1)
    (test / "red" / "broken.jpg").write_bytes(b"nope")
    result = linear_probe(LinearProbeConfig("unused", str(train), str(test), max_iter=50))
    assert result["test_accuracy"] == 1.0 and result["num_classes"] == 3
    assert (result["n_train"], result["n_val"], result["n_test"], result["skipped"]) == (19, 5, 12, 1)
    (tmp_path / "odd" / "purple").mkdir(parents=True)
    (tmp_path / "odd" / "red").mkdir(parents=True)
    with pytest.raises(WitError, match="purple"):
        linear_probe(LinearProbeConfig("unused", str(train), str(tmp_path / "odd")))
