"""Gradients of expectations, d/dphi E_{q(z; phi)}[f(z)] (Lecture 6, 58:50 to 1:10:00).

The distribution we sample from depends on phi, so we cannot simply differentiate a Monte Carlo
average. Two unbiased estimators, each returned here as its K single-sample estimates (so that
their mean and their variance can both be measured):

- score function (REINFORCE):  grad = E_q[(f(z) - b) grad_phi log q(z; phi)], any baseline b not
  depending on z; needs only samples (``q.sample``) and ``q.log_prob``; works for discrete z.
- pathwise (reparameterization, 1:03:10):  z = g(phi, eps), eps ~ p(eps) fixed, so
  grad = E_eps[grad_phi f(g(phi, eps))]; needs ``q.rsample`` (``has_rsample``) and a
  differentiable f. For a Gaussian, g(mu, sigma, eps) = mu + sigma * eps.

Both are written for q = N(mean, diag std^2) with phi = (mean, std), the VAE's case, using
``torch.distributions`` and ``torch.func`` for per-sample gradients.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import distributions as D
from torch.func import grad, vmap

from .validation import as_tensor, check_finite, check_positive, check_positive_int

BASELINES = (None, "leave_one_out")


def _gaussian(mean, std) -> D.Independent:
    return D.Independent(D.Normal(mean, std, validate_args=False), 1, validate_args=False)


def _check(mean, std, n_samples):
    mean = check_finite(as_tensor(mean, "mean"), "mean")
    std = check_positive(check_finite(as_tensor(std, "std"), "std"), "std")
    if mean.dim() != 1 or std.shape != mean.shape:
        raise ValueError(f"mean and std must be vectors of the same shape (d,), got {tuple(mean.shape)} and {tuple(std.shape)}")
    check_positive_int(n_samples, "n_samples")
    return mean, std


def leave_one_out(fz: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """f minus, for each sample, the mean of f over the other samples of its group (consecutive
    groups of ``group_size``; all samples by default): the baseline b_k does not depend on z_k."""
    group_size = fz.shape[0] if group_size is None else group_size
    groups = fz.reshape(-1, group_size)
    return (groups - (groups.sum(1, keepdim=True) - groups) / (group_size - 1)).reshape(fz.shape)


def score_function_samples(
    f: Callable[[torch.Tensor], torch.Tensor], mean, std, n_samples: int, baseline: str | None = None,
    generator: torch.Generator | None = None, group_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K single-sample score-function estimates of d/dmean and d/dstd of E_{N(mean, diag std^2)}[f(z)].

    z_k ~ q (no gradient flows through the sample), then
        estimate_k = (f(z_k) - b_k) * grad_phi log q(z_k; phi),
    with b_k = 0 (baseline=None) or b_k = the mean of f over the other K - 1 samples
    ("leave_one_out", which keeps each estimate unbiased). f maps (K, d) to (K,). With
    ``group_size`` the baseline uses only the other samples of the same consecutive group, as if
    K / group_size independent estimators of group_size samples each were run.
    Returns (grad_mean (K, d), grad_std (K, d)).
    """
    mean, std = _check(mean, std, n_samples)
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    group_size = n_samples if group_size is None else group_size
    if n_samples % group_size:
        raise ValueError(f"group_size must divide n_samples, got group_size={group_size}, n_samples={n_samples}")
    if baseline == "leave_one_out" and (group_size < 2 or n_samples % group_size):
        raise ValueError(f"a leave-one-out baseline needs groups of >= 2 samples that divide n_samples; "
                         f"got group_size={group_size}, n_samples={n_samples}")
    with torch.no_grad():
        eps = torch.randn(n_samples, mean.shape[0], generator=generator, dtype=mean.dtype)
        z = mean + std * eps  # a plain sample: the score function never differentiates through it
        fz = f(z)
    if baseline == "leave_one_out":
        fz = leave_one_out(fz, group_size)
    score = vmap(grad(lambda m, s, zi: _gaussian(m, s).log_prob(zi), argnums=(0, 1)), in_dims=(None, None, 0))
    d_mean, d_std = score(mean, std, z)
    return fz[:, None] * d_mean, fz[:, None] * d_std


def pathwise_samples(
    f: Callable[[torch.Tensor], torch.Tensor], mean, std, n_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K single-sample pathwise estimates of d/dmean and d/dstd of E_{N(mean, diag std^2)}[f(z)].

    eps_k ~ N(0, I), z_k = mean + std * eps_k (what ``Normal.rsample`` computes), and
        estimate_k = grad_phi f(mean + std * eps_k).
    f maps (K, d) to (K,) and must be differentiable. Returns (grad_mean (K, d), grad_std (K, d)).
    """
    mean, std = _check(mean, std, n_samples)
    eps = torch.randn(n_samples, mean.shape[0], generator=generator, dtype=mean.dtype)
    one = vmap(grad(lambda m, s, e: f((m + s * e)[None])[0], argnums=(0, 1)), in_dims=(None, None, 0))
    return one(mean, std, eps)


def summarize(estimates: torch.Tensor, exact: torch.Tensor | None = None) -> dict:
    """Mean, standard error, per-sample variance of K single-sample estimates (K, ...), and the
    distance of the mean from ``exact`` in standard errors when given."""
    n = estimates.shape[0]
    mean, var = estimates.mean(0), estimates.var(0)
    out = {"mean": mean, "std_error": (var / n).sqrt(), "variance": var}
    if exact is not None:
        out["z_score"] = (mean - exact) / out["std_error"].clamp_min(1e-300)
    return out


# --- discrete latents (1:07:45) -------------------------------------------------------------

def categorical_exact_gradient(values, logits) -> torch.Tensor:
    """d/dlogits E_{c ~ Categorical(softmax(logits))}[values_c], by enumerating the C outcomes."""
    logits = as_tensor(logits, "logits").detach().requires_grad_(True)
    expectation = torch.softmax(logits, -1) @ as_tensor(values, "values").to(logits.dtype)
    return torch.autograd.grad(expectation, logits)[0]


def categorical_score_samples(values, logits, n_samples: int, baseline: str | None = None,
                              group_size: int | None = None, generator: torch.Generator | None = None):
    """(K, C) single-sample REINFORCE estimates of d/dlogits E[values_c], c ~ Categorical(logits):
    (values_c - b) * grad log p(c) = (values_c - b) * (onehot(c) - softmax(logits))."""
    values, logits = as_tensor(values, "values"), as_tensor(logits, "logits")
    check_positive_int(n_samples, "n_samples")
    group_size = n_samples if group_size is None else group_size
    probs = torch.softmax(logits, -1)
    c = torch.multinomial(probs, n_samples, replacement=True, generator=generator)  # a category per sample
    fc = values[c]
    if baseline == "leave_one_out":
        if group_size < 2 or n_samples % group_size:
            raise ValueError(f"a leave-one-out baseline needs groups of >= 2 samples that divide n_samples; "
                             f"got group_size={group_size}, n_samples={n_samples}")
        fc = leave_one_out(fc, group_size)
    elif baseline is not None:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    return fc[:, None] * (torch.nn.functional.one_hot(c, logits.shape[-1]).to(probs.dtype) - probs)


def gumbel_softmax_samples(values, logits, temperature: float, n_samples: int) -> torch.Tensor:
    """(K, C) single-sample pathwise estimates of d/dlogits E[y . values] with
    y ~ RelaxedOneHotCategorical(temperature, logits) (Gumbel-softmax / Concrete), using its
    ``rsample``. A biased estimate of the categorical gradient: the relaxed y is a point inside the
    simplex, not a one-hot vector; the bias vanishes as temperature -> 0 while the variance grows."""
    logits = as_tensor(logits, "logits")
    values = as_tensor(values, "values").to(logits.dtype)
    check_positive_int(n_samples, "n_samples")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tau = torch.tensor(float(temperature), dtype=logits.dtype)

    def relaxed_value(th, _):
        return D.RelaxedOneHotCategorical(tau, logits=th, validate_args=False).rsample() @ values

    return vmap(grad(relaxed_value), in_dims=(None, 0), randomness="different")(logits, torch.arange(n_samples))


# --- fitting a Gaussian q with either estimator ------------------------------------------------

def fit_gaussian_q(log_joint: Callable[[torch.Tensor], torch.Tensor], latent_dim: int, estimator: str,
                   n_steps: int = 300, n_samples: int = 16, lr: float = 0.05, seed: int = 0):
    """Maximize ELBO(q) = E_q[log p(x, z) - log q(z)] over q = N(m, diag s^2) by Adam, with
    gradients from the ``estimator``: "pathwise" (rsample, then autograd through z) or "score"
    (sample, then (f - b) grad log q with a leave-one-out baseline, f = log p(x, z) - log q(z)).
    log_joint maps z (K, d) to log p(x, z) (K,). Returns the (m, log s) after every step, (n_steps, 2, d)."""
    if estimator not in ("pathwise", "score"):
        raise ValueError(f"estimator must be 'pathwise' or 'score', got {estimator!r}")
    check_positive_int(n_steps, "n_steps")
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2")
    torch.manual_seed(seed)
    m = torch.zeros(latent_dim, dtype=torch.float64, requires_grad=True)
    log_s = torch.zeros(latent_dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([m, log_s], lr=lr)
    path = []
    for _ in range(n_steps):
        q = _gaussian(m, log_s.exp())
        if estimator == "pathwise":
            z = q.rsample((n_samples,))
            surrogate = (log_joint(z) - q.log_prob(z)).mean()
        else:
            z = q.sample((n_samples,))
            lq = q.log_prob(z)
            with torch.no_grad():
                f = log_joint(z) - lq
                f = leave_one_out(f)
            surrogate = (f * lq).mean()
        opt.zero_grad()
        (-surrogate).backward()
        opt.step()
        path.append(torch.stack([m.detach().clone(), log_s.detach().clone()]))
    return torch.stack(path)
