"""Argument checks shared by the package: each error names the argument, what was expected
and what was given, so a student knows what to fix."""
from __future__ import annotations

from typing import Sequence

import torch


def as_tensor(value, name: str, dtype: torch.dtype = torch.float32, exact: torch.dtype | None = None) -> torch.Tensor:
    """Convert ``value`` (tensor, array or nested list of numbers) to a floating tensor.

    Integer and boolean values become ``dtype``. With ``exact`` (e.g. torch.float64), Python
    numbers and lists are converted straight to that dtype, so 0.6 is not first rounded to float32.
    """
    try:
        if exact is not None and not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=exact)
        t = torch.as_tensor(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"{name} must be a tensor or an array of numbers, got {type(value).__name__}") from exc
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(dtype)
    return t


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")
    return t


def check_ndim(t: torch.Tensor, name: str, ndim: int, meaning: str) -> torch.Tensor:
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s) {meaning}, got shape {tuple(t.shape)}")
    return t


def check_last_dim(t: torch.Tensor, name: str, size: int, meaning: str) -> torch.Tensor:
    if t.shape[-1] != size:
        raise ValueError(
            f"{name} must have last dimension {size} ({meaning}), got shape {tuple(t.shape)}"
        )
    return t


def check_positive(t: torch.Tensor, name: str) -> torch.Tensor:
    if not (t > 0).all():
        raise ValueError(f"{name} must be strictly positive, got minimum {t.min().item():.4g}")
    return t


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_binary(values: torch.Tensor, name: str) -> torch.Tensor:
    """Every value 0 or 1 (binary pixels), or an error that says how to binarize grey levels."""
    bad = (values != 0) & (values != 1)
    if bad.any():
        example = values[bad][0].item()
        raise ValueError(
            f"{name} must hold binary pixels (every value 0 or 1), got {bad.sum().item()} other value(s), "
            f"e.g. {example:.4g}; binarize grey levels first (vae_lesson.data.binarize, or "
            "load_digits(binarized=True))"
        )
    return values
