"""Checks for the exercises of notebook 02 (the marginal likelihood)."""
from __future__ import annotations

import math

import torch

from ..estimators import effective_sample_size, log_mean_exp
from ..models import LinearGaussianModel
from ._core import (
    NOT_DONE, CheckResult, ExerciseError, compare, mark_used_later, register_signatures, register_solutions,
    run_check,
)

HINTS = {
    "02.1": "you need the log of an AVERAGE of likelihoods, computed from their logs without leaving log space "
            "(exp of -1000 underflows to 0). Which torch function computes log sum exp stably, and what turns a "
            "sum over K samples into an average?",
    "02.2": "the same log-mean-exp as in 02.1, applied to the log importance weights: each weight is the joint "
            "divided by the proposal density, so in log space a difference.",
    "02.3": "a proposal should cover the posterior: centred near its mean, and a little wider than it (narrower "
            "than the posterior's std / sqrt(2) gives weights of infinite variance). Use the widget to read the "
            "posterior's mean and std.",
}
SOLUTIONS = {
    "02.1": "K = log_likelihoods.shape[0]\nreturn torch.logsumexp(log_likelihoods, dim=0) - math.log(K)",
    "02.2": "log_w = log_joint - log_q\nreturn torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])",
    "02.3": "q_mean = the posterior mean, q_std = about 1.2 to 2 times the posterior std (read both from the widget)",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "02.1": "log_likelihoods (K, N) -> (N,)",
    "02.2": "log_joint (K, N), log_q (K, N) -> (N,)",
    "02.3": "q_mean (a number), q_std (a number > 0)",
}
register_signatures(SIGNATURES)
mark_used_later("02.1", "02.2")


def _log_weight_cases():
    """(K, N) log-values on very different scales: around -1000 a naive exp underflows to 0."""
    g = torch.Generator().manual_seed(11)
    return [
        torch.randn(50, 3, generator=g, dtype=torch.float64) * 3 - 1000.0,
        torch.randn(7, 4, generator=g, dtype=torch.float64) * 10 + 2.0,
        torch.randn(1, 2, generator=g, dtype=torch.float64) - 5.0,
    ]


def naive_log_marginal(student_fn) -> CheckResult:
    """Exercise 02.1: student_fn(log_likelihoods (K, N)) -> (N,)
    log p_hat(x_n) = log (1/K) sum_k p(x_n | z_k), from log p(x_n | z_k) for K prior samples z_k."""

    def body(student_fn):
        for lw in _log_weight_cases():
            mistakes = {
                "you averaged the log-likelihoods: that is E[log p(x|z)], not log E[p(x|z)]. "
                "The log of an average is not the average of the logs.": lw.mean(0),
                "you summed instead of averaging: subtract log K (the estimate is (1/K) sum_k).":
                    torch.logsumexp(lw, 0),
                "you took the largest weight only; average all K of them.": lw.max(0).values,
            }
            answer = student_fn(lw.clone())
            compare(answer, log_mean_exp(lw, 0), "log p_hat(x)", mistakes, rtol=1e-7, atol=1e-7)

    return run_check("Exercise 02.1 (naive Monte Carlo in log space)", body, HINTS["02.1"], student_fn,
                     solution=SOLUTIONS["02.1"])


def importance_log_marginal(student_fn) -> CheckResult:
    """Exercise 02.2: student_fn(log_joint (K, N), log_q (K, N)) -> (N,)
    log p_hat(x_n) = log (1/K) sum_k p(x_n, z_k) / q(z_k), z_k ~ q."""

    def body(student_fn):
        g = torch.Generator().manual_seed(12)
        for lj in _log_weight_cases():
            lq = torch.randn(lj.shape, generator=g, dtype=torch.float64) * 2 - 3.0
            mistakes = {
                "you averaged the log-weights log p(x,z) - log q(z): that is a Monte Carlo estimate of the "
                "ELBO (notebook 03), a lower bound, not log p_hat.": (lj - lq).mean(0),
                "the weights are p(x, z) / q(z): subtract log q, do not add it.": log_mean_exp(lj + lq, 0),
                "you summed instead of averaging: subtract log K.": torch.logsumexp(lj - lq, 0),
                "you left out q: with samples from q the weights must be divided by q(z_k).": log_mean_exp(lj, 0),
                "the weights are upside down: p(x, z) / q(z), not q(z) / p(x, z).": log_mean_exp(lq - lj, 0),
                "you divided the sum of the p(x, z_k) by the sum of the q(z_k): each sample has its own weight "
                "p(x, z_k) / q(z_k); average those.": torch.logsumexp(lj, 0) - torch.logsumexp(lq, 0),
            }
            answer = student_fn(lj.clone(), lq.clone())
            try:
                compare(answer, log_mean_exp(lj - lq, 0), "log p_hat(x)", mistakes, rtol=1e-7, atol=1e-7)
            except ExerciseError as exc:
                if "values differ" in str(exc):
                    _which_log_is_wrong(student_fn, lj, lq, answer)
                raise

    def _which_log_is_wrong(student_fn, lj, lq, answer):
        """Probe the answer: log p_hat = log mean exp(log_joint - log_q) rises by exactly 1 nat when every
        log p(x, z_k) rises by 1, and falls by exactly 1 when every log q(z_k) rises by 1."""
        moved = {}
        for name, args, should in (("log_joint", (lj + 1.0, lq), 1.0), ("log_q", (lj, lq + 1.0), -1.0)):
            shifted = student_fn(*(a.clone() for a in args))
            try:
                move = (torch.as_tensor(shifted, dtype=torch.float64) - torch.as_tensor(answer, dtype=torch.float64))
            except (TypeError, RuntimeError, ValueError):
                return
            if move.shape != torch.as_tensor(answer).shape or not bool(torch.isclose(move, torch.full_like(move, should), atol=1e-6).all()):
                moved[name] = (move.flatten()[0].item(), should)
        if len(moved) == 1:
            (name, (got, should)), = moved.items()
            raise ExerciseError(
                f"log p_hat(x): the way {name} enters is wrong. Adding 1 nat to every {name} value should move "
                f"log p_hat by exactly {should:+.0f} nat (the weight is p(x, z) / q(z), so log w = log_joint - log_q), "
                f"but your result moved by {got:+.4g}. The other input enters correctly.")
        if len(moved) == 2:
            raise ExerciseError(
                "log p_hat(x): both inputs enter wrongly. Adding 1 nat to every log_joint should raise log p_hat by "
                f"exactly 1 (yours: {moved['log_joint'][0]:+.4g}), and adding 1 nat to every log_q should lower it "
                f"by exactly 1 (yours: {moved['log_q'][0]:+.4g}): the log-weights are log_joint - log_q.")

    return run_check("Exercise 02.2 (importance sampling in log space)", body, HINTS["02.2"], student_fn,
                     solution=SOLUTIONS["02.2"])


def good_proposal(q_mean: float, q_std: float, model: LinearGaussianModel, x: torch.Tensor,
                  n_samples: int = 10_000, target_fraction: float = 0.5, seed: int = 0) -> CheckResult:
    """Exercise 02.3: choose q = N(q_mean, q_std^2) over a 1-D latent whose importance weights have an
    effective sample size of at least ``target_fraction`` * K (K = 10,000, seed ``seed``).

    First a rule that no seed can change: with the Gaussian posterior N(mu_post, sigma_post^2), the weights
    w = p(z|x) p(x) / q(z) have E_q[w^2] proportional to the integral of p(z|x)^2 / q(z), which is infinite
    when 2 / sigma_post^2 - 1 / sigma_q^2 <= 0, i.e. sigma_q <= sigma_post / sqrt(2): such a q is rejected
    whatever its (then unreliable) effective sample size."""

    def body():
        if q_mean is None or q_std is None:  # the student copy starts with None
            raise NotImplementedError(NOT_DONE)
        try:
            m, s = float(q_mean), float(q_std)
        except (TypeError, ValueError):
            raise ExerciseError(f"q_mean and q_std must be numbers, got {q_mean!r} and {q_std!r}") from None
        if not (math.isfinite(m) and math.isfinite(s)):
            raise ExerciseError(f"q_mean and q_std must be finite, got {m} and {s}")
        if s <= 0:
            raise ExerciseError(f"q_std is a standard deviation: it must be > 0, got {s}")
        post = model.posterior(x)
        pm, ps = post.mean.item(), post.covariance_matrix.sqrt().item()
        if s <= ps / math.sqrt(2):
            raise ExerciseError(
                f"q is too narrow: q_std = {s:.3g} is narrower than the posterior's std / sqrt(2) = "
                f"{ps:.3g} / sqrt(2) = "
                f"{ps / math.sqrt(2):.3g}. Then the importance weights have infinite variance (E_q[w^2] = "
                "integral of p(z|x)^2 / q(z) diverges in the tails, where q falls off faster than p(z|x)^2): "
                "a rare draw in the tail gets a huge weight, so the estimate is unreliable even when an "
                f"effective sample size looks fine. Make q wider than {ps / math.sqrt(2):.3g} (a little wider "
                f"than the posterior's std {ps:.3g} is best).")
        g = torch.Generator().manual_seed(seed)
        z = m + s * torch.randn(n_samples, 1, generator=g, dtype=torch.float64)
        log_q = torch.distributions.Normal(m, s).log_prob(z[:, 0])
        log_w = model.joint_log_prob(x, z) - log_q  # (K,): x is one data point
        frac = (effective_sample_size(log_w, 0) / n_samples).item()
        if frac < target_fraction:
            where = "too far from the posterior" if abs(m - pm) > 2 * ps else (
                "too narrow" if s < ps else "too wide")
            raise ExerciseError(
                f"with q = N({m:.3g}, {s:.3g}^2) the effective sample size is {frac:.1%} of K "
                f"(target {target_fraction:.0%}). q looks {where}: the posterior sits at "
                f"{pm:.3g} with std {ps:.3g}."
            )
        print(f"effective sample size: {frac:.1%} of K")

    return run_check("Exercise 02.3 (a good proposal)", body, HINTS["02.3"], solution=SOLUTIONS["02.3"],
                     todo="Set `q_mean` and `q_std` in the cell above (they are still None), then run the check again.")
