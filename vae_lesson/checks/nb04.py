"""Checks for the exercises of notebook 04 (variational inference per data point)."""
from __future__ import annotations

import math

import torch

from ..variational import elbo_linear_gaussian
from ._core import CheckResult, compare, run_check


def bernoulli_log_q(student_fn) -> CheckResult:
    """Exercise 04.1: student_fn(samples (S, M) in {0,1}, phi (M,)) -> (S,)
    log q(x_top; phi) = sum_j [x_j log phi_j + (1 - x_j) log(1 - phi_j)]."""

    def body():
        g = torch.Generator().manual_seed(41)
        for S, M in ((5, 32), (3, 7), (1, 4)):
            phi = torch.rand(M, generator=g, dtype=torch.float64) * 0.9 + 0.05
            xs = (torch.rand(S, M, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
            terms = xs * phi.log() + (1 - xs) * torch.log1p(-phi)
            mistakes = {
                "the pixels that are 0 count too: add (1 - x_j) log(1 - phi_j).": (xs * phi.log()).sum(-1),
                "the probability of x_j = 0 is 1 - phi_j, not phi_j.":
                    (xs * phi.log() + (1 - xs) * phi.log()).sum(-1),
            }
            compare(student_fn(xs.clone(), phi.clone()), terms.sum(-1), "log q(x_top)", mistakes,
                    rtol=1e-7, atol=1e-9)

    return run_check("Exercise 04.1 (log-probability of a factorized Bernoulli q)", body,
                     "torch.distributions.Bernoulli(probs=phi).log_prob(samples).sum(-1), or the formula.", student_fn)


def linear_gaussian_elbo(student_fn) -> CheckResult:
    """Exercise 04.3: student_fn(x (N, D), W (D, d), b (D,), log_sigma, q_mean (N, d), q_log_std (N, d)) -> (N,)
    the closed-form ELBO of probabilistic PCA with q_n = N(m_n, diag s_n^2)."""

    def body():
        g = torch.Generator().manual_seed(43)
        for N, D_, d in ((6, 5, 2), (3, 8, 3), (2, 4, 1)):
            x = torch.randn(N, D_, generator=g, dtype=torch.float64)
            W = torch.randn(D_, d, generator=g, dtype=torch.float64)
            b = torch.randn(D_, generator=g, dtype=torch.float64)
            log_sigma = torch.tensor(-0.3, dtype=torch.float64)
            m = torch.randn(N, d, generator=g, dtype=torch.float64)
            ls = 0.3 * torch.randn(N, d, generator=g, dtype=torch.float64) - 0.5
            expected = elbo_linear_gaussian(x, W, b, log_sigma, m, ls)
            s2, sigma2 = torch.exp(2 * ls), math.exp(2 * log_sigma.item())
            kl = 0.5 * (s2 + m**2 - 1 - 2 * ls).sum(-1)
            spread = (s2 @ W.pow(2).sum(0)) / (2 * sigma2)
            mistakes = {
                "you left out q's spread: E_q||x - W z - b||^2 = ||x - W m - b||^2 + sum_j s_j^2 ||W_:j||^2.":
                    expected + spread,
                "the KL term is missing: ELBO = E_q[log p(x|z)] - KL(q || p(z)).": expected + kl,
                "the KL must be subtracted, not added.": expected + 2 * kl,
            }
            compare(student_fn(x, W, b, log_sigma, m, ls), expected, "ELBO", mistakes, rtol=1e-7, atol=1e-9)

    return run_check("Exercise 04.3 (the ELBO of probabilistic PCA in closed form)", body,
                     "recon = -D/2 log(2 pi sigma^2) - (||x - m W^T - b||^2 + s^2 @ (W**2).sum(0)) / (2 sigma^2); "
                     "ELBO = recon - KL(q || N(0, I)) from exercise 03.2.", student_fn)


def missing_pixel_marginals(student_fn) -> CheckResult:
    """Exercise 04.2: student_fn(x (P,), observed (P,) bool, weights (C,), probs (C, P)) -> (M,)
    p(x_j = 1 | x_bottom) for the M hidden pixels j (in pixel order):
    r_c = p(z=c | x_bottom) (Bayes over the observed pixels only), then sum_c r_c probs[c, j]."""

    def body():
        g = torch.Generator().manual_seed(42)
        for C, P in ((4, 16), (3, 64), (1, 6)):
            weights = torch.softmax(torch.randn(C, generator=g, dtype=torch.float64), 0)
            probs = torch.rand(C, P, generator=g, dtype=torch.float64) * 0.9 + 0.05
            x = (torch.rand(P, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
            observed = torch.zeros(P, dtype=torch.bool)
            observed[P // 2:] = True
            bern = x * probs.log() + (1 - x) * torch.log1p(-probs)  # (C, P)
            r = torch.softmax(weights.log() + bern[:, observed].sum(-1), 0)
            expected = (r @ probs)[~observed]
            mistakes = {
                "you used the hidden pixels in Bayes' rule: only the observed (bottom) pixels are evidence.":
                    (torch.softmax(weights.log() + bern.sum(-1), 0) @ probs)[~observed],
                "the prior weights pi_c are missing from Bayes' rule.":
                    (torch.softmax(bern[:, observed].sum(-1), 0) @ probs)[~observed],
                "you averaged the prototypes with the prior weights only: the observed pixels must update them.":
                    (weights @ probs)[~observed],
            }
            compare(student_fn(x.clone(), observed.clone(), weights.clone(), probs.clone()), expected,
                    "p(x_top | x_bottom) marginals", mistakes, rtol=1e-6, atol=1e-9)

    return run_check("Exercise 04.2 (exact posterior marginals of the hidden pixels)", body,
                     "log r = log pi + sum over observed j of log Bern(x_j; probs[:, j]); r = softmax(log r); "
                     "return (r @ probs)[~observed].", student_fn)
