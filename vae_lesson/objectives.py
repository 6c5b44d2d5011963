"""The evidence lower bound (Lecture 6, before 13:20 to 31:15, and 1:21:40).

For any distribution q(z) over the latents:

    log p(x) >= ELBO(q) = E_{q(z)}[log p(x, z) - log q(z)]
             = E_q[log p(x | z)] - KL(q(z) || p(z))        (reconstruction minus KL)
    log p(x) =  ELBO(q) + KL(q(z) || p(z | x))            (the gap is the KL to the posterior)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import distributions as D

from .validation import as_tensor, check_finite, check_positive, check_positive_int


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: its value and its standard error (std of the terms / sqrt(K))."""

    value: torch.Tensor
    std_error: torch.Tensor

    def __iter__(self):
        return iter((self.value, self.std_error))


def elbo_monte_carlo(
    log_joint: Callable[[torch.Tensor], torch.Tensor], q: D.Distribution, n_samples: int,
) -> Estimate:
    """ELBO(q) ~= (1/K) sum_k [log p(x, z_k) - log q(z_k)], z_k ~ q, with its standard error.

    log_joint(z) maps z (K, ...) to log p(x, z) (K, ...). Uses q.rsample when q supports it, so
    the estimate can be differentiated with respect to q's parameters (notebook 05).
    """
    check_positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2 to estimate a standard error")
    z = q.rsample((n_samples,)) if q.has_rsample else q.sample((n_samples,))
    terms = log_joint(z) - q.log_prob(z)
    return Estimate(terms.mean(0), terms.std(0) / math.sqrt(n_samples))


def kl_to_standard_normal(mean, std) -> torch.Tensor:
    """KL(N(mean, diag std^2) || N(0, I)) = 1/2 sum_j (std_j^2 + mean_j^2 - 1 - 2 log std_j).

    mean, std: (..., d) -> (...). The closed form behind a VAE's KL term.
    """
    mean = check_finite(as_tensor(mean, "mean"), "mean")
    std = check_positive(check_finite(as_tensor(std, "std"), "std"), "std")
    if mean.shape != std.shape:
        raise ValueError(f"mean and std must have the same shape, got {tuple(mean.shape)} and {tuple(std.shape)}")
    return 0.5 * (std.pow(2) + mean.pow(2) - 1 - 2 * std.log()).sum(-1)
