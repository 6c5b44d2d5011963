"""Variational learning with one phi_i per data point (Lecture 6, 28:00-48:00), on probabilistic
PCA, where log p(x) and the exact posterior are available to compare against.

Model (theta = W, b, log sigma):  p(z) = N(0, I_d),  p(x | z) = N(W z + b, sigma^2 I_D).
Variational family (phi_i = m_i, log s_i):  q_i(z) = N(m_i, diag s_i^2), one per data point.

Three ways to learn theta, on the same data:
- "in_sync": gradient steps on theta and every phi_i together (what is done in practice, 48:00);
- "alternating": phi_i to its optimum for the current theta, then one gradient step on theta
  (the lecture's illustrative loop, 48:00);
- EM (39:00): the exact posterior (full covariance) as q, so the bound is tight, then the
  closed-form M-step.
All tensors here are float64 and differentiable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .models import LinearGaussianModel
from .validation import check_finite, check_ndim, check_positive_int


def elbo_linear_gaussian(x, W, b, log_sigma, q_mean, q_log_std) -> torch.Tensor:
    """(N,): ELBO(x_n; theta, phi_n) in closed form for q_n = N(m_n, diag s_n^2):

    E_q[log p(x|z)] = -D/2 log(2 pi sigma^2) - (||x_n - W m_n - b||^2 + sum_j s_nj^2 ||W_:j||^2) / (2 sigma^2)
    KL(q_n || p(z)) = 1/2 sum_j (s_nj^2 + m_nj^2 - 1 - 2 log s_nj)

    x (N, D), W (D, d), b (D,), log_sigma scalar, q_mean and q_log_std (N, d).
    """
    _check_shapes(x, W, b, q_mean, q_log_std)
    sigma2 = torch.exp(2 * log_sigma)
    s2 = torch.exp(2 * q_log_std)
    resid = x - q_mean @ W.T - b
    spread = s2 @ W.pow(2).sum(0)  # sum_j s_nj^2 ||W_:j||^2, (N,)
    recon = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - (resid.pow(2).sum(-1) + spread) / (2 * sigma2)
    kl = 0.5 * (s2 + q_mean.pow(2) - 1 - 2 * q_log_std).sum(-1)
    return recon - kl


def _model(W, b, log_sigma) -> LinearGaussianModel:
    """The same theta as a ``LinearGaussianModel`` (its tensors keep their gradients)."""
    return LinearGaussianModel(W, b, torch.exp(log_sigma))


def log_marginal_linear_gaussian(x, W, b, log_sigma) -> torch.Tensor:
    """(N,): log p(x_n; theta) = log N(x_n; b, W W^T + sigma^2 I), exact and differentiable."""
    return _model(W, b, log_sigma).log_marginal(x)


def exact_posterior(x, W, b, log_sigma):
    """p(z | x_n) = N(M^{-1} W^T (x_n - b), sigma^2 M^{-1}), M = W^T W + sigma^2 I: (mean (N, d), cov (d, d))."""
    post = _model(W, b, log_sigma).posterior(x)
    return post.mean, post.covariance_matrix[0]


def posterior_correlation(W, log_sigma) -> float:
    """The correlation between z_1 and z_2 under p(z | x; theta) for a 2-D latent: the posterior
    covariance sigma^2 M^{-1} (M = W^T W + sigma^2 I) is the same for every x, and its correlation
    is -M_12 / sqrt(M_11 M_22). A diagonal q can fit it only where this is 0.

    log p(x) does not change when W is rotated (W -> W R, R orthogonal), but this correlation does:
    among equally likely theta, the diagonal-q ELBO prefers the rotation whose posterior is uncorrelated.
    """
    W = check_finite(torch.as_tensor(W), "W")
    check_ndim(W, "W", 2, "(D, 2): data dimension by latent dimension")
    if W.shape[1] != 2:
        raise ValueError(f"posterior_correlation needs a 2-D latent (W of shape (D, 2)), got {tuple(W.shape)}")
    with torch.no_grad():
        M = W.T @ W + torch.exp(2 * torch.as_tensor(log_sigma)) * torch.eye(2, dtype=W.dtype)
        return float(-M[0, 1] / torch.sqrt(M[0, 0] * M[1, 1]))


def optimal_diagonal_q(x, W, b, log_sigma):
    """The best q_n = N(m_n, diag s_n^2) for the current theta (the phi_i "to convergence" of 48:00):
    KL(q || p(z|x)) is smallest at the posterior mean and s_nj^2 = 1 / (posterior precision)_jj
    = sigma^2 / M_jj. Returns (q_mean (N, d), q_log_std (N, d))."""
    mean, _ = exact_posterior(x, W, b, log_sigma)
    sigma2 = torch.exp(2 * log_sigma)
    M = W.T @ W + sigma2 * torch.eye(W.shape[1], dtype=W.dtype)
    log_std = 0.5 * torch.log(sigma2 / torch.diagonal(M))
    return mean, log_std.expand_as(mean).clone()


def _check_shapes(x, W, b, q_mean, q_log_std):
    check_ndim(x, "x", 2, "(N, D): one row per data point")
    check_ndim(W, "W", 2, "(D, d)")
    if W.shape[0] != x.shape[1] or b.shape != (x.shape[1],):
        raise ValueError(f"W {tuple(W.shape)} and b {tuple(b.shape)} must match x's dimension D = {x.shape[1]}")
    want = (x.shape[0], W.shape[1])
    for name, t in (("q_mean", q_mean), ("q_log_std", q_log_std)):
        if tuple(t.shape) != want:
            raise ValueError(f"{name} must have shape {want} (one phi_i per data point), got {tuple(t.shape)}")


@dataclass
class Theta:
    """theta = (W, b, log sigma) of probabilistic PCA, as leaf tensors for gradient steps."""

    W: torch.Tensor
    b: torch.Tensor
    log_sigma: torch.Tensor

    @classmethod
    def initial(cls, x: torch.Tensor, latent_dim: int, seed: int = 0) -> "Theta":
        """W small and random, b the data mean, sigma the data's overall std."""
        g = torch.Generator().manual_seed(seed)
        W = 0.1 * torch.randn(x.shape[1], latent_dim, generator=g, dtype=torch.float64)
        return cls(W, x.mean(0).clone(), x.std().log().clone())

    def params(self):
        return [self.W, self.b, self.log_sigma]

    def detached(self) -> "Theta":
        return Theta(*(p.detach().clone() for p in self.params()))


def _record(history, x, theta, elbo):
    with torch.no_grad():
        log_px = log_marginal_linear_gaussian(x, theta.W, theta.b, theta.log_sigma).mean().item()
    history["elbo"].append(elbo)
    history["log_px"].append(log_px)


def fit_per_datapoint(
    x, latent_dim: int = 2, n_steps: int = 300, schedule: str = "in_sync", lr: float = 0.02, seed: int = 0,
):
    """Maximize (1/N) sum_i ELBO(x_i; theta, phi_i) with one phi_i = (m_i, log s_i) per data point.

    schedule "in_sync": each step is one Adam step on theta and all phi_i together.
    schedule "alternating": each step sets every phi_i to its optimum for the current theta
    (``optimal_diagonal_q``), then takes one Adam step on theta.
    Returns (theta, phi, history) with history["elbo"] and history["log_px"] per step
    (nats per data point, the ELBO before the step's theta update, log p(x) exact).
    """
    x = check_finite(torch.as_tensor(x, dtype=torch.float64), "x")
    check_ndim(x, "x", 2, "(N, D)")
    check_positive_int(latent_dim, "latent_dim")
    check_positive_int(n_steps, "n_steps")
    if schedule not in ("in_sync", "alternating"):
        raise ValueError(f"schedule must be 'in_sync' or 'alternating', got {schedule!r}")
    theta = Theta.initial(x, latent_dim, seed)
    for p in theta.params():
        p.requires_grad_(True)
    q_mean = torch.zeros(x.shape[0], latent_dim, dtype=torch.float64, requires_grad=True)
    q_log_std = torch.zeros(x.shape[0], latent_dim, dtype=torch.float64, requires_grad=True)
    params = theta.params() + ([q_mean, q_log_std] if schedule == "in_sync" else [])
    opt = torch.optim.Adam(params, lr=lr)
    history = {"elbo": [], "log_px": []}
    for _ in range(n_steps):
        if schedule == "alternating":
            with torch.no_grad():
                m, ls = optimal_diagonal_q(x, theta.W, theta.b, theta.log_sigma)
                q_mean.copy_(m)
                q_log_std.copy_(ls)
        opt.zero_grad()
        elbo = elbo_linear_gaussian(x, theta.W, theta.b, theta.log_sigma, q_mean, q_log_std).mean()
        _record(history, x, theta, elbo.item())
        (-elbo).backward()
        opt.step()
    return theta.detached(), (q_mean.detach(), q_log_std.detach()), history


@dataclass(frozen=True)
class PCAEMReport:
    """One EM iteration on probabilistic PCA, nats per data point (as ``EMStepReport``)."""

    log_lik_before: float
    elbo_after_e: float
    elbo_after_m: float
    log_lik_after: float


def pca_em_step(x, theta: Theta) -> tuple[Theta, PCAEMReport]:
    """EM for probabilistic PCA (Tipping and Bishop, 1999), with b learned alongside W.

    E-step: q_n = p(z | x_n; theta) exactly (the bound becomes tight).
    M-step: with z~_n = (z_n, 1), E[z~_n] = (m_n, 1) and E[z~_n z~_n^T] = [[S + m_n m_n^T, m_n], [m_n^T, 1]],
      [W b] = A B^{-1},  A = sum_n x_n E[z~_n]^T,  B = sum_n E[z~_n z~_n^T],
      sigma^2 = (1 / N D) (sum_n ||x_n||^2 - 2 tr([W b]^T A) + tr(B [W b]^T [W b])),
    the exact maximizer of the ELBO over theta for this q, from any starting theta."""
    with torch.no_grad():
        log_lik_before = log_marginal_linear_gaussian(x, theta.W, theta.b, theta.log_sigma).mean().item()
        mean, cov = exact_posterior(x, theta.W, theta.b, theta.log_sigma)
        elbo_after_e = _model(*theta.params()).elbo(x, mean, cov).mean().item()
        N, Dm = x.shape
        d = mean.shape[1]
        ez = torch.cat([mean, torch.ones(N, 1, dtype=x.dtype)], dim=1)  # E[z~_n], (N, d + 1)
        B = ez.T @ ez
        B[:d, :d] += N * cov
        A = x.T @ ez  # (D, d + 1)
        Wb = torch.linalg.solve(B, A.T).T  # A B^{-1} (B is symmetric)
        sigma2 = (x.pow(2).sum() - 2 * (Wb * A).sum() + torch.trace(B @ Wb.T @ Wb)) / (N * Dm)
        new = Theta(Wb[:, :d].contiguous(), Wb[:, d].contiguous(), 0.5 * torch.log(sigma2))
        elbo_after_m = _model(*new.params()).elbo(x, mean, cov).mean().item()
        log_lik_after = log_marginal_linear_gaussian(x, new.W, new.b, new.log_sigma).mean().item()
    return new, PCAEMReport(log_lik_before, elbo_after_e, elbo_after_m, log_lik_after)


FAMILIES = ("diagonal", "full")


def gaussian_q_elbo(model: LinearGaussianModel, x, q_mean, q_scale_tril) -> torch.Tensor:
    """(N,): ELBO(x_n; q) for one Gaussian q = N(m, L L^T) on probabilistic PCA, in closed form:

    E_q[log p(x|z)] = -D/2 log(2 pi sigma^2) - (||x_n - W m - b||^2 + ||W L||_F^2) / (2 sigma^2)
    KL(q || p(z))   = 1/2 (||L||_F^2 + ||m||^2 - d) - sum_j log L_jj

    x (N, D), q_mean m (d,), q_scale_tril L (d, d) lower-triangular with a positive diagonal.
    Same value as ``model.elbo(x, m, L @ L.T)``, cheaper, and differentiable in m and L.
    """
    d = model.latent_dim
    x = model._check_x(x)
    for name, t, shape in (("q_mean", q_mean, (d,)), ("q_scale_tril", q_scale_tril, (d, d))):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a tensor of shape {shape} (latent dimension d = {d}), got {got}")
        check_finite(t, name)
    L = q_scale_tril
    if (torch.triu(L, 1) != 0).any():
        raise ValueError("q_scale_tril must be lower-triangular (a Cholesky factor): zero the entries above the diagonal")
    if (torch.diagonal(L) <= 0).any():
        raise ValueError("q_scale_tril needs a positive diagonal (the standard deviations' Cholesky factor); "
                         "parameterize it as exp(log_diag)")
    s2 = model.sigma**2
    resid = x - q_mean @ model.W.T - model.b
    recon = -0.5 * model.data_dim * torch.log(2 * math.pi * s2) - (resid.pow(2).sum(-1) + (model.W @ L).pow(2).sum()) / (2 * s2)
    kl = 0.5 * (L.pow(2).sum() + q_mean.pow(2).sum() - d) - torch.log(torch.diagonal(L)).sum()
    return recon - kl


def fit_gaussian_q(model: LinearGaussianModel, x, family: str = "full", n_steps: int = 100, lr: float = 0.06):
    """Gradient ascent on ELBO(x; q) over one Gaussian q = N(m, L L^T): each step adds lr times the
    gradient of the closed-form ELBO (``gaussian_q_elbo``) to every free parameter.

    family "diagonal": L = diag(exp(log_diag)), q = N(m, diag s^2) (mean field);
    family "full":     L = diag(exp(log_diag)) + the strictly lower part of a free (d, d) matrix,
                       any lower-triangular L with a positive diagonal: every Gaussian (Cholesky).
    Starts at q = p(z) (m = 0, L = I), so no seed is needed. x (1, D) or (N, D) (the ELBO summed).
    Returns (m (d,), L (d, d), elbo (n_steps,): the summed ELBO before each step, nats).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    check_positive_int(n_steps, "n_steps")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive step size, got {lr!r}")
    x = model._check_x(x)
    d = model.latent_dim
    m = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    log_diag = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    below = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    params = [m, log_diag] + ([below] if family == "full" else [])
    history = []
    for _ in range(n_steps):
        L = torch.diag(log_diag.exp()) + (torch.tril(below, -1) if family == "full" else 0)
        elbo = gaussian_q_elbo(model, x, m, L).sum()
        history.append(elbo.item())
        grads = torch.autograd.grad(elbo, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p += lr * g
    L = torch.diag(log_diag.exp()) + (torch.tril(below, -1) if family == "full" else 0)
    return m.detach(), L.detach(), torch.tensor(history, dtype=torch.float64)
