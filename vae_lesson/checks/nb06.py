"""Checks for the exercises of notebook 06 (amortized inference)."""
from __future__ import annotations

import torch

from ..vae import VAE, elbo_of_q as _elbo_of_q
from ._core import (
    CheckResult, ExerciseError, StudentError, compare, copies, mark_used_later, register_signatures,
    register_solutions, run_check,
)

HINTS = {
    "06.1": "build the samples from the given noise (the reparameterization: the mean plus the standard deviation "
            "times eps, where the std is exp(log_std)), then average over the K samples the log of the joint "
            "(the model has a method for it) minus the log-density of q at those samples.",
    "06.2": "the refined ELBO sits between the two others: log p(x) >= refined ELBO >= encoder ELBO. Each gap is "
            "the difference between two neighbours in that chain, one value per image.",
}
SOLUTIONS = {
    "06.1": "z = mean + log_std.exp() * eps\n"
            "log_q = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).sum(-1)\n"
            "return (model.joint_log_prob(x, z) - log_q).mean(0)",
    "06.2": "return log_px - refined_elbo, refined_elbo - encoder_elbo",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "06.1": "model (a VAE), x (N, 64), mean (N, d), log_std (N, d), eps (K, N, d) -> (N,)",
    "06.2": "encoder_elbo (N,), refined_elbo (N,), log_px (N,) -> approximation gap (N,), amortization gap (N,)",
}
register_signatures(SIGNATURES)
mark_used_later("06.1", "06.2")

_CLOSED_FORM_KL = ("that is the reconstruction term minus the closed-form KL(q || p(z)): a valid estimator of the "
                   "ELBO (same expectation, often less noisy), but not the one this exercise asks for. Here the "
                   "ELBO is estimated with the given eps as the average over k of log p(x, z_k) - log q(z_k), the "
                   "joint minus log q, which also works when no closed-form KL exists.")


_LOG_STD_AS_STD = ("log_std is the log of the standard deviation (it can be negative): use std = exp(log_std), "
                   "in the sample mean + exp(log_std) * eps and in q.")


def _small_vae(seed: int) -> VAE:
    """A small untrained VAE (latent 3): a fresh model the student's code has never seen."""
    torch.manual_seed(seed)
    return VAE(latent_dim=3, hidden=16, layers=1).eval()


def _cases(model: VAE | None, x: torch.Tensor | None, seed: int):
    """(model, x, mean, log_std, eps) triples: the notebook's own model and digits, then fresh ones."""
    g = torch.Generator().manual_seed(seed)
    if model is not None and x is not None:
        with torch.no_grad():
            mean, log_std = model.encoder.params(x)
        yield model, x, mean + 0.1, log_std - 0.2, torch.randn(4, *mean.shape, generator=g)
    for s, (n, K) in enumerate(((5, 3), (1, 1), (7, 6))):
        m = _small_vae(seed + s)
        xs = (torch.rand(n, 64, generator=g) < 0.4).float()
        mean = torch.randn(n, 3, generator=g)
        log_std = torch.randn(n, 3, generator=g) * 0.5 - 0.5
        yield m, xs, mean, log_std, torch.randn(K, n, 3, generator=g)


def elbo_of_q(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 06.1: student_fn(model, x (N, 64), mean (N, d), log_std (N, d), eps (K, N, d)) -> (N,),
    the ELBO of q(z; phi_i) = N(mean_i, diag exp(log_std_i)^2) for each image with the given noise:
    (1/K) sum_k [log p(x, z_k) - log q(z_k)], z_k = mean + exp(log_std) * eps_k."""

    def body(student_fn):
        for m, xs, mean, log_std, eps in _cases(model, x, seed=61):
            with torch.no_grad():
                try:  # copies: an in-place edit in the student's code cannot change the notebook's model or data
                    answer = student_fn(*copies(m, xs, mean, log_std, eps))
                except StudentError as exc:  # torch refuses a Normal with a negative scale
                    if isinstance(exc.original, ValueError) and "scale" in str(exc.original) and (log_std < 0).any():
                        raise ExerciseError(f"{_LOG_STD_AS_STD} (torch said: {str(exc.original)[:100]}...)") from None
                    raise
                if isinstance(answer, torch.Tensor) and answer.isnan().any() and (log_std < 0).any():
                    raise ExerciseError(f"your ELBO has NaN or infinite values. If you used log_std as the std: "
                                        f"{_LOG_STD_AS_STD} Otherwise, work in log space.")
                expected = _elbo_of_q(m, xs, mean, log_std, eps)
                z = mean + log_std.exp() * eps
                log_q = torch.distributions.Normal(mean, log_std.exp()).log_prob(z).sum(-1)
                mistakes = {
                    "you left out - log q(z): that is E_q[log p(x, z)], not the ELBO (the entropy of q is missing).":
                        m.joint_log_prob(xs, z).mean(0),
                    "you left out the prior log p(z): the ELBO uses the joint log p(x, z) = log p(z) + log p(x|z).":
                        (m.decoder(z).log_prob(xs) - log_q).mean(0),
                    _LOG_STD_AS_STD: _elbo_wrong_std(m, xs, mean, log_std, eps),
                    "log q(z) is the SUM over the d coordinates of the 1-D Normal log-densities (q is a product "
                    "over coordinates); you averaged them (.mean(-1)).":
                        (m.joint_log_prob(xs, z) - torch.distributions.Normal(mean, log_std.exp()).log_prob(z).mean(-1)).mean(0),
                    "average over the K samples (axis 0), do not sum them.":
                        (m.joint_log_prob(xs, z) - log_q).sum(0),
                    _CLOSED_FORM_KL: m.decoder(z).log_prob(xs).mean(0)
                        - 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1),
                }
            compare(answer, expected, "ELBO", mistakes, rtol=1e-4, atol=1e-4)

    return run_check("Exercise 06.1 (the ELBO of a per-datapoint q)", body, HINTS["06.1"], student_fn,
                     solution=SOLUTIONS["06.1"])


def _elbo_wrong_std(m, xs, mean, log_std, eps):
    std = log_std.clamp_min(1e-3)  # the mistake: log_std used as the std itself (clamped to stay a density)
    z = mean + std * eps
    return (m.joint_log_prob(xs, z) - torch.distributions.Normal(mean, std).log_prob(z).sum(-1)).mean(0)


def gaps_per_image(student_fn) -> CheckResult:
    """Exercise 06.2: student_fn(encoder_elbo (N,), refined_elbo (N,), log_px (N,)) ->
    (approximation gap, amortization gap), each (N,): log p(x) - refined ELBO, refined ELBO - encoder ELBO."""

    def body(student_fn):
        g = torch.Generator().manual_seed(62)
        for n in (6, 1, 40):
            log_px = -16 - 3 * torch.rand(n, generator=g, dtype=torch.float64)
            refined = log_px - torch.rand(n, generator=g, dtype=torch.float64)
            encoder = refined - 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
            out = student_fn(encoder.clone(), refined.clone(), log_px.clone())
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ExerciseError("return two tensors, (approximation gap, amortization gap), in that order")
            approx, amort = out
            for name, got in (("approximation gap", approx), ("amortization gap", amort)):
                if isinstance(got, torch.Tensor) and got.numel() == 1 and n > 1:
                    raise ExerciseError(f"the {name} is one number per image here: do not average (the notebook "
                                        "averages them afterwards, with standard errors)")
            if isinstance(approx, torch.Tensor) and approx.shape == (n,) and torch.allclose(
                    approx.double(), refined - encoder) and torch.allclose(torch.as_tensor(amort).double(), log_px - refined):
                raise ExerciseError("the two gaps are swapped: the approximation gap is what even the best q of the "
                                    "family misses (log p(x) - refined ELBO); the amortization gap is what the encoder "
                                    "adds (refined ELBO - encoder ELBO)")
            compare(approx, log_px - refined, "approximation gap", {
                "that is the total gap, log p(x) - encoder ELBO; the approximation gap starts from the refined ELBO.":
                    log_px - encoder}, rtol=1e-6, atol=1e-5)  # float32 answers are fine
            compare(amort, refined - encoder, "amortization gap", {
                "that is the total gap, log p(x) - encoder ELBO; the amortization gap stops at the refined ELBO.":
                    log_px - encoder}, rtol=1e-6, atol=1e-5)
            if n > 1 and not torch.allclose(torch.as_tensor(approx).double() + torch.as_tensor(amort).double(),
                                            log_px - encoder, rtol=1e-6, atol=1e-5):
                raise ExerciseError("the two gaps must add up to log p(x) - encoder ELBO")

    return run_check("Exercise 06.2 (the two gaps)", body, HINTS["06.2"], student_fn, solution=SOLUTIONS["06.2"])
