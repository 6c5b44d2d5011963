"""Monte Carlo estimators of the marginal likelihood p(x) = integral p(x, z) dz (Lecture 6, 4:15-13:20).

Each works in log space: K log-weights log w_k become log p_hat = log (1/K) sum_k w_k, computed
with log-sum-exp so that tiny weights (e^-500 is common) neither underflow nor overflow.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import distributions as D

from .validation import check_positive_int


def log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log (1/K) sum_k exp(log_w_k) along ``dim``, stably (K = log_w.shape[dim])."""
    if log_w.shape[dim] == 0:
        raise ValueError("log_w is empty along dim: need at least one sample (K >= 1)")
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def _log_mean_exp_chunked(log_weights: Callable[[int], torch.Tensor], n_samples: int, chunk_size: int):
    """log (1/K) sum_k w_k, drawing the K log-weights ``chunk_size`` at a time (bounded memory)."""
    check_positive_int(n_samples, "n_samples")
    check_positive_int(chunk_size, "chunk_size")
    starts = range(0, n_samples, chunk_size)
    per_chunk = None  # log sum_k w_k of each chunk, in one buffer: kept in a list, thousands of small
    for i, start in enumerate(starts):  # tensors would pin the freed activations' memory in place
        lse = torch.logsumexp(log_weights(min(chunk_size, n_samples - start)), dim=0)
        if per_chunk is None:
            per_chunk = lse.new_empty((len(starts), *lse.shape))
        per_chunk[i] = lse
    return torch.logsumexp(per_chunk, dim=0) - math.log(n_samples)


def log_marginal_naive(
    log_likelihood: Callable[[torch.Tensor], torch.Tensor], prior: D.Distribution, n_samples: int,
    chunk_size: int = 1000,
) -> torch.Tensor:
    """Naive Monte Carlo (4:15): z_k ~ p(z), p_hat(x) = (1/K) sum_k p(x | z_k); returns log p_hat.

    log_likelihood(z) maps z (k, ..., d) to log p(x | z) (k, ...); give ``prior`` a batch shape
    (``prior.expand((R,))``) to get R independent estimates at once. p_hat is unbiased for p(x);
    log p_hat is biased low (Jensen).
    """
    return _log_mean_exp_chunked(lambda k: log_likelihood(prior.sample((k,))), n_samples, chunk_size)


def log_marginal_importance(
    log_joint: Callable[[torch.Tensor], torch.Tensor], proposal: D.Distribution, n_samples: int,
    chunk_size: int = 1000,
) -> torch.Tensor:
    """Importance sampling (13:20): z_k ~ q(z), p_hat(x) = (1/K) sum_k p(x, z_k) / q(z_k); returns log p_hat.

    log_joint(z) maps z (k, ..., d) to log p(x, z) (k, ...); ``proposal`` is q, with a batch shape
    matching the x's (one q per x, or ``q.expand((R,))`` for R repeated estimates). Samples are
    drawn ``chunk_size`` at a time, so K can be large (K = 5000 for a VAE) in bounded memory.
    Unbiased for p(x); log p_hat is the importance-weighted bound, below log p(x) on average
    and tight as K grows.
    """

    def log_weights(k: int) -> torch.Tensor:
        z = proposal.sample((k,))
        return log_joint(z) - proposal.log_prob(z)

    return _log_mean_exp_chunked(log_weights, n_samples, chunk_size)


def effective_sample_size(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """(sum_k w_k)^2 / sum_k w_k^2: how many of the K samples effectively carry the estimate."""
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))
