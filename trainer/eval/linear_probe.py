"""Linear probe (CLIP paper, section 3.2 and appendix A.3): logistic regression on frozen image features.

The model is multinomial logistic regression fitted full-batch with L-BFGS, minimizing
mean cross-entropy + lambda/2 * ||W||^2 (the bias is not regularized; sklearn's C = 1/(lambda * n)).
Lambda is chosen on a validation split by the paper's parametric binary search: start from
10^-6, 10^-4, ..., 10^6, then repeatedly halve the step around the best value until the
resolution is 8 steps per decade. Best means highest validation accuracy, ties broken by lower
validation cross-entropy. The probe is then refitted on train + validation and scored on test.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.eval.datasets import read_labelled
from trainer.eval.config import EmbedConfig, LinearProbeConfig
from trainer.eval.embed import Embedder
from core.errors import WitError

LOG10_RANGE = (-6.0, 6.0)
RESOLUTION = 1 / 8            # decades: the paper's 96 steps over 12 decades


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, lam: float, max_iter: int = 1000,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """W [D, C], b [C] minimizing mean CE(x @ W + b, y) + lam/2 ||W||^2, by full-batch L-BFGS."""
    w = (init[0].clone() if init else torch.zeros(x.shape[1], num_classes, dtype=x.dtype)).requires_grad_()
    b = (init[1].clone() if init else torch.zeros(num_classes, dtype=x.dtype)).requires_grad_()
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + lam / 2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def score(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = x @ w + b
    return float((logits.argmax(dim=1) == y).double().mean()), float(F.cross_entropy(logits, y))


def sweep(x_train, y_train, x_val, y_val, num_classes: int, max_iter: int = 1000) -> tuple[float, list[dict]]:
    """log10(lambda) chosen on validation by the paper's parametric binary search, and every point tried."""
    tried: dict[float, dict] = {}
    warm = None

    def evaluate(log_lam: float) -> None:
        nonlocal warm
        if log_lam in tried or not LOG10_RANGE[0] <= log_lam <= LOG10_RANGE[1]:
            return
        warm = fit_logistic(x_train, y_train, num_classes, 10 ** log_lam, max_iter, init=warm)
        acc, loss = score(*warm, x_val, y_val)
        tried[log_lam] = {"log10_lambda": log_lam, "lambda": 10 ** log_lam, "val_accuracy": acc, "val_loss": loss}

    def best() -> float:
        return max(tried, key=lambda k: (tried[k]["val_accuracy"], -tried[k]["val_loss"]))

    for log_lam in np.arange(LOG10_RANGE[0], LOG10_RANGE[1] + 1e-9, 2.0)[::-1]:   # strong to weak: warm starts
        evaluate(float(log_lam))
    step = 2.0
    while step > RESOLUTION:
        step /= 2
        center = best()
        evaluate(center - step)
        evaluate(center + step)
    return best(), sorted(tried.values(), key=lambda r: r["log10_lambda"])


def probe_features(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                   x_test: np.ndarray, y_test: np.ndarray, max_iter: int = 1000) -> dict:
    """The probe on features already computed: sweep on val, refit on train + val, score test."""
    t = lambda a, dt=torch.float64: torch.as_tensor(a, dtype=dt)  # noqa: E731
    num_classes = int(max(y_train.max(), y_val.max(), y_test.max())) + 1
    log_lam, points = sweep(t(x_train), t(y_train, torch.long), t(x_val), t(y_val, torch.long), num_classes, max_iter)
    x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    w, b = fit_logistic(t(x_all), t(y_all, torch.long), num_classes, 10 ** log_lam, max_iter)
    test_acc, test_loss = score(w, b, t(x_test), t(y_test, torch.long))
    return {"test_accuracy": test_acc, "test_loss": test_loss, "lambda": 10 ** log_lam, "log10_lambda": log_lam,
            "C": 1 / (10 ** log_lam * len(y_all)), "sweep": points,
            "n_train": len(y_train), "n_val": len(y_val), "n_test": len(y_test), "num_classes": num_classes}


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise WitError(f"{n} training images cannot give a validation split", hint="more images, or --val")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def linear_probe(cfg: LinearProbeConfig) -> dict:
    train, test = read_labelled(cfg.train, "train"), read_labelled(cfg.test, "test")
    val = read_labelled(cfg.val, "train") if cfg.val else None
    keys = train.keys
    for other, name in ((test, "test"), (val, "val")):
        if other is not None and not set(other.keys) <= set(keys):
            raise WitError(f"the {name} set has classes the train set lacks: "
                           f"{sorted(set(other.keys) - set(keys))[:10]}", hint="the same class folders/labels")
    embedder = Embedder(EmbedConfig(cfg.checkpoint, cfg.batch_size, cfg.local_max_rows, cfg.actors))
    skipped = 0

    def features(data):
        nonlocal skipped
        if not data.rows:
            raise WitError("an eval split has no images")
        raw, ok = embedder.images(data.rows)
        skipped += int((~ok).sum())
        remap = np.array([keys.index(k) for k in data.keys], dtype=np.int64)   # into the train set's classes
        return raw[ok], remap[data.labels[ok]]

    x_train, y_train = features(train)
    x_test, y_test = features(test)
    if val is not None:
        x_val, y_val = features(val)
    else:
        fit_idx, val_idx = _split(len(y_train), cfg.val_fraction, cfg.seed)
        x_train, y_train, x_val, y_val = x_train[fit_idx], y_train[fit_idx], x_train[val_idx], y_train[val_idx]
    result = probe_features(x_train, y_train, x_val, y_val, x_test, y_test, cfg.max_iter)
    return {**result, "skipped": skipped, "ray_data": embedder.used_ray}
