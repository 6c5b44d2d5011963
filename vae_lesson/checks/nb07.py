"""Checks for the exercises of notebook 07 (the VAE)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..vae import VAE
from ._core import CheckResult, ExerciseError, compare, run_check
from .nb06 import _small_vae


def _bernoulli_log_lik(x, logits):
    return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _kl(mean, log_std):
    return 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)


def negative_elbo_loss(student_fn) -> CheckResult:
    """Exercise 07.1: student_fn(x (B, 64), logits (B, 64), mean (B, d), log_std (B, d)) -> a scalar,
    the training loss: minus the batch average of [sum_j log Bernoulli(x_j; sigmoid(logits_j)) - KL]."""

    def body():
        g = torch.Generator().manual_seed(71)
        for B, d in ((8, 3), (1, 2), (32, 20)):
            x = (torch.rand(B, 64, generator=g) < 0.3).double()
            logits = torch.randn(B, 64, generator=g, dtype=torch.float64) * 3
            mean = torch.randn(B, d, generator=g, dtype=torch.float64)
            log_std = torch.randn(B, d, generator=g, dtype=torch.float64) * 0.5 - 0.3
            out = student_fn(x.clone(), logits.clone(), mean.clone(), log_std.clone())
            if out is None:
                raise ExerciseError("your function returned None. Did you forget `return`?")
            if isinstance(out, torch.Tensor) and out.numel() == B and B > 1:
                raise ExerciseError("return one number for the batch: average the per-image losses over the batch")
            rec, kl = _bernoulli_log_lik(x, logits), _kl(mean, log_std)
            expected = -(rec - kl).mean()
            bce_mean = nn.functional.binary_cross_entropy_with_logits(logits, x)  # averaged over pixels too
            compare(torch.as_tensor(out).reshape(()), expected, "loss", {
                "you averaged the reconstruction over the 64 pixels as well (BCE with reduction='mean'): "
                "log p(x|z) is a sum over pixels. Averaging divides it by 64, which weights the KL 64 times too much.":
                    bce_mean + kl.mean(),
                "the KL term is missing: the loss is -(reconstruction - KL), and without the KL it is a plain autoencoder.":
                    -rec.mean(),
                "the KL enters with the wrong sign: ELBO = reconstruction - KL, so loss = -reconstruction + KL.":
                    -(rec + kl).mean(),
                "log_std is log sigma: the variance in the KL is exp(2 log_std), not exp(log_std).":
                    -(rec - 0.5 * (torch.exp(log_std) + mean**2 - 1 - 2 * log_std).sum(-1)).mean(),
                "the KL of one dimension is 1/2 (sigma^2 + mu^2 - 1 - log sigma^2): the 1/2 is missing.":
                    -(rec - 2 * kl).mean(),
                "that is the sum over the batch; average over the images, so the loss does not grow with the batch size.":
                    -(rec - kl).sum(),
            }, rtol=1e-6, atol=1e-6)

    return run_check("Exercise 07.1 (the VAE's loss: minus the ELBO)", body,
                     "reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction='none').sum(-1); "
                     "kl = 0.5 * (exp(2 log_std) + mean^2 - 1 - 2 log_std).sum(-1); return -(reconstruction - kl).mean().",
                     student_fn)


def encoder_sample(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 07.2: student_fn(model, x (N, 64), eps (S, N, d)) -> z (S, N, d): a reparameterized draw from
    the encoder q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), z = mu + sigma * eps, with gradients to phi."""

    def body():
        g = torch.Generator().manual_seed(72)
        cases = [] if model is None or x is None else [(model, x[:16])]
        cases += [(_small_vae(720 + i), (torch.rand(n, 64, generator=g) < 0.4).float()) for i, n in enumerate((5, 1))]
        for m, xs in cases:
            eps = torch.randn(3, xs.shape[0], m.latent_dim, generator=g)
            z = student_fn(m, xs, eps)
            if not isinstance(z, torch.Tensor):
                raise ExerciseError(f"return a torch tensor, not {type(z).__name__}")
            mean, log_std = m.encoder.params(xs)
            expected = (mean + log_std.exp() * eps).detach()
            try:
                compare(z, expected, "z", {
                    "the encoder outputs log sigma: scale eps by exp(log_std), not by log_std.": (mean + log_std * eps).detach(),
                    "exp(2 log_std) is the variance; scale eps by the standard deviation exp(log_std).":
                        (mean + torch.exp(2 * log_std) * eps).detach(),
                    "z must use the encoder's mean and spread, not only the noise: z = mean + exp(log_std) * eps.": eps,
                }, rtol=1e-4, atol=1e-5)
            except ExerciseError as exc:
                if not z.requires_grad and "values differ" in str(exc):
                    raise ExerciseError("z is not mean + exp(log_std) * eps for the eps you were given, and no gradient "
                                        "flows back to the encoder (phi): .sample() draws its own noise and cuts the graph. "
                                        "Build z from the encoder's outputs and eps with + and *.") from None
                raise
            if not z.requires_grad:
                raise ExerciseError("the values are right, but no gradient flows back to the encoder (phi): build z "
                                    "from the encoder's outputs with + and *, without .sample(), torch.no_grad() or .detach()")
            grads = torch.autograd.grad(z.sum(), [p for p in m.encoder.parameters()], allow_unused=True)
            if any(gr is None for gr in grads):
                raise ExerciseError("some encoder parameters get no gradient: z must come from model.encoder")

    return run_check("Exercise 07.2 (a reparameterized sample from the encoder)", body,
                     "mean, log_std = model.encoder.params(x); return mean + log_std.exp() * eps.", student_fn)


def importance_weighted_log_px(student_fn, model: VAE | None = None, x: torch.Tensor | None = None) -> CheckResult:
    """Exercise 07.3: student_fn(model, x (N, 64), eps (K, N, d)) -> (N,), the importance-weighted estimate
    log (1/K) sum_k p(x, z_k) / q_phi(z_k|x) with z_k = mu_phi(x) + sigma_phi(x) * eps_k."""

    def body():
        g = torch.Generator().manual_seed(73)
        cases = [] if model is None or x is None else [(model, x[:8], 50)]
        cases += [(_small_vae(730 + i), (torch.rand(n, 64, generator=g) < 0.4).float(), k)
                  for i, (n, k) in enumerate(((5, 20), (1, 1), (3, 200)))]
        for m, xs, k in cases:
            eps = torch.randn(k, xs.shape[0], m.latent_dim, generator=g)
            with torch.no_grad():
                answer = student_fn(m, xs, eps.clone())
                q = m.encoder(xs)
                z = q.mean + q.stddev * eps
                log_w = m.joint_log_prob(xs, z) - q.log_prob(z)
                expected = torch.logsumexp(log_w, 0) - math.log(k)
                mistakes = {
                    "that is the average of the log-weights, the ELBO: the importance-weighted estimate is the log "
                    "of the average weight, log (1/K) sum_k w_k (use torch.logsumexp, then subtract log K).": log_w.mean(0),
                    "you forgot to subtract log K: logsumexp gives log sum_k w_k, and the average divides by K.":
                        torch.logsumexp(log_w, 0),
                    "the weight is p(x, z) / q(z|x): subtract log q, do not add it.":
                        torch.logsumexp(m.joint_log_prob(xs, z) + q.log_prob(z), 0) - math.log(k),
                    "the weight uses the joint p(x, z) = p(z) p(x|z): the prior log p(z) is missing.":
                        torch.logsumexp(m.decoder(z).log_prob(xs) - q.log_prob(z), 0) - math.log(k),
                }
            if k > 1:
                compare(answer, expected, "log p(x) estimate", mistakes, rtol=1e-4, atol=1e-3)
            else:
                compare(answer, expected, "log p(x) estimate", {}, rtol=1e-4, atol=1e-3)

    return run_check("Exercise 07.3 (the importance-weighted estimate of log p(x))", body,
                     "q = model.encoder(x); z = q.mean + q.stddev * eps; log_w = model.joint_log_prob(x, z) - q.log_prob(z); "
                     "return torch.logsumexp(log_w, 0) - math.log(K).", student_fn)
