"""Slide 11 (41:58) made real: a binarized digit with its top half hidden.

z = x_top (the M unobserved pixels), x = x_bottom (the observed ones). The model is a mixture of
Bernoullis over all 64 pixels (``BernoulliMixture``), so p(x_bottom) and the posterior
p(x_top | x_bottom) are exact. The variational family is a product of Bernoullis,

    q(x_top; phi) = prod_j Bernoulli(x_j; phi_j),   phi in [0, 1]^M,

and its ELBO = E_q[log p(x_top, x_bottom) - log q(x_top)] is estimated by sampling x_top ~ q.
"""
from __future__ import annotations

import math

import torch

from .objectives import Estimate
from .validation import check_positive_int


def log_q(samples: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """(K,): log q(x_top; phi) = sum_j [x_j log phi_j + (1 - x_j) log(1 - phi_j)], with 0 log 0 = 0,
    so phi_j of exactly 0 or 1 is allowed. samples (K, M) in {0, 1}, phi (M,)."""
    on = torch.where(samples > 0, torch.log(phi), torch.zeros((), dtype=phi.dtype))
    off = torch.where(samples > 0, torch.zeros((), dtype=phi.dtype), torch.log1p(-phi))
    return (on + off).sum(-1)


def fill_missing(x: torch.Tensor, observed: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Images (K, P) equal to x (P,) on the observed pixels and to ``top`` (K, M) on the missing ones."""
    full = x.expand(top.shape[0], -1).clone()
    full[:, ~observed] = top.to(full.dtype)
    return full


def likeliest_component_top(model, x, observed) -> torch.Tensor:
    """(M,): the model's own candidate for phi, read from x_bottom alone: the hidden pixels' probabilities in
    the component c* = argmax_c p(c | x_bottom) (Bayes over the mixture's components, the observed pixels as
    the only evidence). The hidden pixels of x are zeroed before anything looks at them, so this candidate
    cannot leak the answer, unlike a phi built from the true top (0.95 on its ink), which is the posterior's
    answer put into the question. For a bottom the model reads as a 9 it is notebook 04's "top of a 9".
    x (P,) one binary image, observed (P,) bool; model a ``BernoulliMixture``."""
    _check_image(x, observed)
    seen_only = torch.where(observed, x, torch.zeros((), dtype=x.dtype))  # the hidden pixels never enter
    r = model.cluster_posterior_observed(seen_only[None], observed)[0]
    return model.probs[int(r.argmax())][~observed]


def _check_image(x, observed) -> int:
    """Validate one image and its mask; return the number M of hidden pixels."""
    if not isinstance(x, torch.Tensor) or x.dim() != 1:
        raise ValueError(f"x must be one image, a tensor of shape (P,), got shape {tuple(torch.as_tensor(x).shape)}")
    if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool or observed.shape != x.shape:
        got = f"{observed.dtype} {tuple(observed.shape)}" if isinstance(observed, torch.Tensor) else type(observed).__name__
        raise ValueError(f"observed must be a bool mask of shape {tuple(x.shape)}, got {got}")
    return int((~observed).sum())


def _check(x, observed, phi):
    n_missing = _check_image(x, observed)
    if phi.shape != (n_missing,):
        raise ValueError(f"phi must have shape ({n_missing},), one probability per hidden pixel, got {tuple(phi.shape)}")
    if not torch.isfinite(phi).all() or (phi < 0).any() or (phi > 1).any():
        raise ValueError("phi must hold probabilities in [0, 1]")


def elbo_missing(model, x, observed, phi, n_samples: int = 2000, uniforms: torch.Tensor | None = None) -> Estimate:
    """ELBO(phi) = E_q[log p(x_top, x_bottom) - log q(x_top; phi)] by Monte Carlo, with its standard error.

    x (P,) one binary image, observed (P,) bool, phi (M,) for the M hidden pixels. x_top ~ q is
    drawn as (u < phi) from ``uniforms`` (K, M) if given: fixed uniforms make the estimate a
    smooth function of phi (common random numbers), which the widget uses.
    """
    phi = torch.as_tensor(phi, dtype=torch.float32)
    _check(x, observed, phi)
    check_positive_int(n_samples, "n_samples")
    u = torch.rand(n_samples, phi.shape[0]) if uniforms is None else uniforms
    top = (u < phi).to(torch.float32)
    terms = model.log_marginal(fill_missing(x, observed, top)) - log_q(top, phi)
    return Estimate(terms.mean(), terms.std() / math.sqrt(terms.shape[0]))


def optimize_phi(model, x, observed, n_steps: int = 300, n_samples: int = 64, lr: float = 0.1, seed: int = 0):
    """Gradient ascent on ELBO(phi) for one image, phi = sigmoid(eta) (eta: the logit, free to move in R), starting at phi = 0.5.

    z = x_top is discrete, so there is no reparameterization (notebook 05). The gradient is the
    score-function (REINFORCE) estimator with a leave-one-out baseline b_k, for K = n_samples
    samples x_top_k ~ q(.; phi), each of shape (M,):
        grad_eta ELBO ~= (1/K) sum_k (f_k - b_k) grad_eta log q(x_top_k; phi),   grad_eta log q = x_top_k - phi,
        f_k = log p(x_top_k, x_bottom) - log q(x_top_k),  b_k = mean of the other K - 1 values of f,
    unbiased because E_q[grad log q] = 0 and b_k does not depend on x_top_k. Each step hands minus
    this estimate to Adam as eta's gradient (Adam minimizes). Notebook 04 writes the same loop.
    Returns (phi (M,), history: the ELBO estimate mean_k f_k at every step).
    """
    M = _check_image(x, observed)
    check_positive_int(n_steps, "n_steps")
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2 for the leave-one-out baseline")
    K = n_samples
    g = torch.Generator().manual_seed(seed)
    eta = torch.zeros(M, requires_grad=True)  # phi = sigmoid(eta) = 0.5
    opt = torch.optim.Adam([eta], lr=lr)
    history = []
    for _ in range(n_steps):
        with torch.no_grad():
            phi = torch.sigmoid(eta)
            top = (torch.rand(K, M, generator=g) < phi).to(torch.float32)  # x_top ~ q(.; phi)
            f = model.log_marginal(fill_missing(x, observed, top)) - log_q(top, phi)
            b = (f.sum() - f) / (K - 1)  # leave-one-out baseline
            grad = ((f - b)[:, None] * (top - phi)).mean(0)  # score function
        opt.zero_grad()
        eta.grad = -grad.to(eta.dtype)  # ascent on the ELBO = descent on -ELBO
        opt.step()
        history.append(f.mean().item())
    return torch.sigmoid(eta).detach(), history
