"""Offline data: scikit-learn's bundled 8x8 digits and small synthetic 2-D data sets.

Nothing here downloads anything.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .validation import check_positive_int

IMAGE_SHAPE = (8, 8)
N_PIXELS = 64
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Digits:
    """The digits with a fixed train/test split.

    x_train: (1437, 64) float32, x_test: (360, 64) float32 (grey levels in [0, 1], or {0, 1}
    when binarized); y_train, y_test: int64 digit labels 0-9.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    binarized: bool


def binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Map grey levels in [0, 1] to {0., 1.}: a pixel is on when its level is >= ``threshold``."""
    x = torch.as_tensor(x)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x must hold grey levels in [0, 1], got values in [{x.min().item():.3g}, {x.max().item():.3g}];"
            " divide raw digits (0-16) by 16 first"
        )
    return (x >= threshold).to(torch.float32)


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, ...]:
    """scikit-learn's digits in [0, 1] and their fixed split, read once per process. scikit-learn
    is imported here, not with the module: it takes a second, and notebooks 01-03 never need it."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y))


def load_digits(binarized: bool = False) -> Digits:
    """scikit-learn's 1,797 handwritten digits (8x8, bundled, offline), scaled to [0, 1].

    The split is fixed (stratified by label, seed 0, 20% test), so every notebook and test
    sees the same 1,437 training and 360 test images. ``binarized=True`` thresholds at 0.5,
    for models with a Bernoulli likelihood. Every call returns fresh tensors (changing them
    in place changes nothing for the next call).
    """
    x_tr, x_te, y_tr, y_te = (torch.from_numpy(a.copy()) for a in _digits_split())
    if binarized:
        x_tr, x_te = binarize(x_tr), binarize(x_te)
    return Digits(x_tr, y_tr, x_te, y_te, binarized)


TOY_DATASETS = ("mixture", "moons", "rings", "spiral")


def make_toy_2d(name: str = "moons", n: int = 500, noise: float = 0.08, seed: int = 0):
    """A small synthetic 2-D data set for density pictures.

    name: "mixture" (three Gaussian blobs), "moons" (two interleaved half circles), "rings"
    (two concentric circles) or "spiral" (one arm of about 1.2 turns, a curve a 1-D latent can
    trace). Returns (x, labels): x (n, 2) float32, labels (n,) int64 saying which blob, moon or
    ring each point came from (for the spiral: 0 on the inner half of the arm, 1 on the outer).
    """
    check_positive_int(n, "n")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if name in ("mixture", "moons", "rings"):
        from sklearn import datasets  # here, not with the module (see _digits_split)
    if name == "mixture":
        x, y = datasets.make_blobs(
            n_samples=n, centers=[[-1.5, -1.0], [1.5, -0.5], [0.0, 1.5]],
            cluster_std=[0.45, 0.6, 0.35], random_state=seed,
        )
    elif name == "moons":
        x, y = datasets.make_moons(n_samples=n, noise=noise, random_state=seed)
        x = (x - np.array([0.5, 0.25])) * 1.5
    elif name == "rings":
        x, y = datasets.make_circles(n_samples=n, noise=noise / 2, factor=0.5, random_state=seed)
        x = x * 2.0
    elif name == "spiral":
        rng = np.random.default_rng(seed)
        t = np.sqrt(rng.uniform(0.04, 1.0, n))  # position along the arm, denser outside
        angle = 3 * np.pi * t
        x = 2.0 * t[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        x = x + noise * rng.standard_normal((n, 2))
        y = (t > np.sqrt(0.52)).astype(np.int64)
    else:
        raise ValueError(f"name must be one of {TOY_DATASETS}, got {name!r}")
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
