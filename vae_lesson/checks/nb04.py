"""Checks for the exercises of notebook 04 (variational inference per data point)."""
from __future__ import annotations

import math

import torch

from ..variational import elbo_linear_gaussian
from ._core import (
    CheckResult, ExerciseError, Signature, compare, mark_used_later, register_signatures, register_solutions,
    require_float64, require_tensor, run_check,
)

HINTS = {
    "04.1": "each pixel is its own Bernoulli: a pixel that is 1 contributes log phi_j, a pixel that is 0 contributes "
            "log(1 - phi_j); the log of the product over pixels is the sum of these terms (one per sample).",
    "04.2": "first the posterior over the component, r_c = p(z=c | x_bottom), by Bayes' rule using ONLY the observed "
            "pixels (in log space, normalized with a softmax); then p(x_j = 1 | x_bottom) averages the components' "
            "pixel probabilities with the weights r_c.",
    "04.3": "split the ELBO into E_q[log p(x|z)] - KL(q || p(z)). The expected squared error under q is the error at "
            "the mean plus a term from q's spread (the s_j^2 times the squared column norms of W); the KL is the one "
            "of exercise 03.2.",
}
SOLUTIONS = {
    "04.1": "return torch.distributions.Bernoulli(probs=phi).log_prob(samples).sum(-1)",
    "04.2": "bern = x * probs.log() + (1 - x) * torch.log1p(-probs)             # (C, P)\n"
            "r = torch.softmax(weights.log() + bern[:, observed].sum(-1), 0)  # p(z | x_bottom)\n"
            "return (r @ probs)[~observed]",
    "04.3": "recon = -D/2 log(2 pi sigma^2) - (||x - m W^T - b||^2 + s^2 @ (W**2).sum(0)) / (2 sigma^2)\n"
            "ELBO = recon - KL(q || N(0, I)) from exercise 03.2",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "04.1": "samples (K, M), phi (M,) -> (K,)",
    "04.2": Signature("x (P,), observed (P,), weights (C,), probs (C, P) -> (M,)",
                      derived={"M": lambda v: (~v["observed"].bool()).sum()}),
    "04.3": "x (N, D), W (D, d), b (D,), log_sigma (), q_mean (N, d), q_log_std (N, d) -> (N,)",
}
register_signatures(SIGNATURES)
mark_used_later("04.1", "04.3")  # 04.2's function is not used by later cells

# epsilons students add inside a log "to be safe"; each shifts the log-probabilities by about eps / p
LOG_EPSILONS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


def log_epsilon_message(eps: float | None, instead: str, largest: float | None = None) -> str:
    """The message for a log computed as log(p + eps): name the epsilon and what to use instead."""
    which = f"an epsilon ({eps:g})" if eps is not None else "a small epsilon"
    off = f" (at most {largest:.2g} nats)" if largest is not None else ""
    return (f"your values are off by a little{off}, always in the same direction: it looks like you added {which} "
            f"inside a log, log(p + eps). That shifts every term by about eps / p nats. The probabilities here are "
            f"never exactly 0 or 1, so no epsilon is needed: {instead}")


def epsilon_mistakes(formula, instead: str) -> dict:
    """{message: what ``formula(eps)`` returns} for the usual epsilons (compare's known mistakes)."""
    return {log_epsilon_message(eps, instead): formula(eps) for eps in LOG_EPSILONS}


def compare_or_epsilon(answer, expected, what, mistakes, instead: str, direction: int, rtol: float, atol: float,
                       max_shift: float = 0.05) -> None:
    """compare(), then: if the values differ only a little (at most ``max_shift`` nats) and all in ``direction``
    (+1: larger than expected, as log(p + eps) > log p; -1: smaller), say it looks like an epsilon inside a log.
    ``direction=0``: the epsilons of the exercise move the result either way (one log adds, another
    subtracts); any small difference is then named as an epsilon or a float32 step."""
    try:
        compare(answer, expected, what, mistakes, rtol=rtol, atol=atol)
    except ExerciseError as exc:
        if "differ" in str(exc) and isinstance(answer, torch.Tensor) and answer.shape == expected.shape:
            diff = answer.detach().to(expected.dtype) - expected
            if not bool(torch.isfinite(diff).all()):
                raise
            largest = float(diff.abs().max())
            if direction == 0 and 0 < largest <= max_shift:
                raise ExerciseError(
                    f"{what}: your values are off by a little (at most {largest:.2g} nats): it looks like an epsilon "
                    f"inside a log, log(v + eps), which shifts each term by about eps / v, or a step computed in "
                    f"float32 and cast back. The notebook checks this ELBO to 1e-8 nats. {instead}") from None
            diff = direction * diff
            if direction != 0 and bool((diff >= 0).all()) and 0 < float(diff.max()) <= max_shift:
                raise ExerciseError(f"{what}: {log_epsilon_message(None, instead, largest)}") from None
        raise


_LOG_Q_INSTEAD = ("use torch.log(phi) and torch.log1p(-phi) for log(1 - phi), or "
                  "torch.distributions.Bernoulli(probs=phi).log_prob(samples).")


def bernoulli_log_q(student_fn) -> CheckResult:
    """Exercise 04.1: student_fn(samples (K, M) in {0,1}, phi (M,)) -> (K,)
    log q(x_top; phi) = sum_j [x_j log phi_j + (1 - x_j) log(1 - phi_j)]."""

    def body(student_fn):
        g = torch.Generator().manual_seed(41)
        for K, M in ((5, 32), (3, 7), (1, 4)):
            phi = torch.rand(M, generator=g, dtype=torch.float64) * 0.9 + 0.05
            xs = (torch.rand(K, M, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
            terms = xs * phi.log() + (1 - xs) * torch.log1p(-phi)
            mistakes = {
                "the pixels that are 0 count too: add (1 - x_j) log(1 - phi_j).": (xs * phi.log()).sum(-1),
                "the probability of x_j = 0 is 1 - phi_j, not phi_j.":
                    (xs * phi.log() + (1 - xs) * phi.log()).sum(-1),
            }
            mistakes.update(epsilon_mistakes(
                lambda eps: (xs * torch.log(phi + eps) + (1 - xs) * torch.log(1 - phi + eps)).sum(-1), _LOG_Q_INSTEAD))
            compare_or_epsilon(student_fn(xs.clone(), phi.clone()), terms.sum(-1), "log q(x_top)", mistakes,
                               _LOG_Q_INSTEAD, direction=+1, rtol=1e-7, atol=1e-9)

    return run_check("Exercise 04.1 (log-probability of a factorized Bernoulli q)", body, HINTS["04.1"], student_fn,
                     solution=SOLUTIONS["04.1"])


_PCA_LOG_INSTEAD = ("No log of a variance is needed: log sigma^2 = 2 * log_sigma and log s_j^2 = 2 * q_log_std_j "
                    "are given, and the variances are never 0.")


def _pca_epsilon_mistakes(expected, D: int, sigma2: float, s2: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """An epsilon inside the ELBO's logs: log(2 pi sigma^2 + eps) or log(sigma^2 + eps) in the reconstruction,
    log(s^2 + eps) in the KL, one or both, for the usual epsilons."""
    out = []
    for eps in LOG_EPSILONS:
        msg = f"your values are off by a little: it looks like you added an epsilon ({eps:g}) inside a log. "
        recon_2pi = -D / 2 * (math.log(2 * math.pi * sigma2 + eps) - math.log(2 * math.pi * sigma2))
        recon_var = -D / 2 * (math.log(sigma2 + eps) - math.log(sigma2))
        kl = 0.5 * (torch.log(s2 + eps) - torch.log(s2)).sum(-1)  # KL falls by this much, so the ELBO rises
        out += [(msg + _PCA_LOG_INSTEAD, expected + shift)
                for shift in (recon_2pi + kl, recon_var + kl, kl, recon_2pi, recon_var)]
    return out


def linear_gaussian_elbo(student_fn) -> CheckResult:
    """Exercise 04.3: student_fn(x (N, D), W (D, d), b (D,), log_sigma, q_mean (N, d), q_log_std (N, d)) -> (N,)
    the closed-form ELBO of probabilistic PCA with q_n = N(m_n, diag s_n^2)."""

    def body(student_fn):
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
            mistakes = list(mistakes.items()) + _pca_epsilon_mistakes(expected, x.shape[1], sigma2, s2)
            answer = student_fn(*(t.clone() for t in (x, W, b, log_sigma, m, ls)))
            require_tensor(answer, "ELBO")
            require_float64(answer, "ELBO", "The next cell runs the lecture's loop with your ELBO, and section 9 checks log p(x) = ELBO + KL "
                                            "image by image to 1e-8 nats.")
            # float64 work agrees with the reference to round-off (1e-15 relative); the bound leaves room for
            # another order of the sums and no room for an epsilon the notebook's 1e-8 identity would notice
            compare_or_epsilon(answer, expected, "ELBO", mistakes, _PCA_LOG_INSTEAD, direction=0, rtol=1e-10,
                               atol=1e-10, max_shift=1e-3)

    return run_check("Exercise 04.3 (the ELBO of probabilistic PCA in closed form)", body, HINTS["04.3"], student_fn,
                     solution=SOLUTIONS["04.3"])


def missing_pixel_marginals(student_fn) -> CheckResult:
    """Exercise 04.2: student_fn(x (P,), observed (P,) bool, weights (C,), probs (C, P)) -> (M,)
    p(x_j = 1 | x_bottom) for the M hidden pixels j (in pixel order):
    r_c = p(z=c | x_bottom) (Bayes over the observed pixels only), then sum_c r_c probs[c, j]."""

    def body(student_fn):
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

    return run_check("Exercise 04.2 (exact posterior marginals of the hidden pixels)", body, HINTS["04.2"], student_fn,
                     solution=SOLUTIONS["04.2"])
