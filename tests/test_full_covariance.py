"""A single Gaussian q = N(m, L L^T) fitted by gradient ascent on probabilistic PCA
(vae_lesson.variational.gaussian_q_elbo and fit_gaussian_q, notebook 03 section 8).

Expected values come from elsewhere: the ELBO from the package's ``model.elbo`` (expected
log-likelihood plus torch.distributions.kl_divergence) and by Monte Carlo with
torch.distributions.MultivariateNormal (tolerance in standard errors), the posterior by
conditioning the joint Gaussian of (z, x) in data space with numpy, and the best diagonal q's gap
in closed form, -1/2 log det of the posterior's correlation matrix.
"""
import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from vae_lesson import variational as V
from vae_lesson.models import LinearGaussianModel

F64 = torch.float64


def problem(data_dim=6, latent_dim=2, seed=0, tilt=True):
    """A PPCA model whose posterior is correlated (columns of W overlap) and one data point x (1, D)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(data_dim, latent_dim, generator=g, dtype=F64)
    if tilt:
        W[:, 1] = 0.8 * W[:, 0] + 0.6 * W[:, 1]
    model = LinearGaussianModel(W, torch.randn(data_dim, generator=g, dtype=F64), 0.5)
    x, _ = model.sample(1, generator=g)
    return model, x


def posterior_by_conditioning(model, x):
    """p(z | x): mean W^T C^{-1} (x - b), cov I - W^T C^{-1} W, C = W W^T + sigma^2 I (numpy)."""
    W, b, s2 = model.W.numpy(), model.b.numpy(), model.sigma.item() ** 2
    C = W @ W.T + s2 * np.eye(W.shape[0])
    mean = W.T @ np.linalg.solve(C, x.numpy()[0] - b)
    return mean, np.eye(W.shape[1]) - W.T @ np.linalg.solve(C, W)


def random_tril(d, seed):
    g = torch.Generator().manual_seed(seed)
    L = torch.tril(torch.randn(d, d, generator=g, dtype=F64), -1)
    return L + torch.diag(torch.exp(0.3 * torch.randn(d, generator=g, dtype=F64)))


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_elbo_matches_the_package_closed_form(latent_dim):
    model, x = problem(latent_dim=latent_dim, tilt=latent_dim > 1)
    m = torch.randn(latent_dim, generator=torch.Generator().manual_seed(3), dtype=F64)
    L = random_tril(latent_dim, seed=4)
    ours = V.gaussian_q_elbo(model, x, m, L)
    assert ours.shape == (1,)
    torch.testing.assert_close(ours, model.elbo(x, m, L @ L.T), rtol=1e-12, atol=1e-10)


def test_elbo_matches_monte_carlo():
    model, x = problem(latent_dim=3)
    m, L = torch.tensor([0.3, -0.2, 0.5], dtype=F64), random_tril(3, seed=5)
    q = D.MultivariateNormal(m, scale_tril=L)
    z = q.sample((200_000,))
    terms = model.joint_log_prob(x, z) - q.log_prob(z)
    se = terms.std().item() / math.sqrt(len(terms))
    assert abs(terms.mean().item() - V.gaussian_q_elbo(model, x, m, L).item()) < 4 * se


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_covariance_q_closes_the_gap(seed):
    model, x = problem(seed=seed)
    m, L, history = V.fit_gaussian_q(model, x, "full", n_steps=600, lr=0.03)
    mean, cov = posterior_by_conditioning(model, x)
    np.testing.assert_allclose(m.numpy(), mean, atol=1e-6)
    np.testing.assert_allclose((L @ L.T).numpy(), cov, atol=1e-6)
    gap = model.log_marginal(x).item() - V.gaussian_q_elbo(model, x, m, L).item()
    assert 0 <= gap + 1e-12 and gap < 1e-10
    assert history.shape == (600,) and history[-1] > history[0]
    assert torch.all(history <= model.log_marginal(x).item() + 1e-9)  # a lower bound all the way


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagonal_q_stops_at_the_best_diagonal_gap(seed):
    model, x = problem(seed=seed)
    m, L, _ = V.fit_gaussian_q(model, x, "diagonal", n_steps=600, lr=0.03)
    assert torch.count_nonzero(torch.tril(L, -1)) == 0
    _, cov = posterior_by_conditioning(model, x)
    precision = np.linalg.inv(cov)
    corr = precision / np.sqrt(np.outer(np.diag(precision), np.diag(precision)))
    best_gap = -0.5 * np.log(np.linalg.det(corr))  # KL(best mean-field q || p(z | x))
    gap = model.log_marginal(x).item() - V.gaussian_q_elbo(model, x, m, L).item()
    assert best_gap > 0.05  # the tilted model's posterior is correlated: the gap is not round-off
    assert gap == pytest.approx(best_gap, rel=1e-8)
    np.testing.assert_allclose(torch.diagonal(L).pow(2).numpy(), 1 / np.diag(precision), rtol=1e-6)
    best_m, best_log_s = V.optimal_diagonal_q(x, model.W, model.b, model.sigma.log())
    np.testing.assert_allclose(m.numpy(), best_m[0].numpy(), atol=1e-7)


def test_fit_is_deterministic_and_the_families_differ():
    model, x = problem(seed=7)
    a = V.fit_gaussian_q(model, x, "full", n_steps=50)
    b = V.fit_gaussian_q(model, x, "full", n_steps=50)
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    c = V.fit_gaussian_q(model, x, "diagonal", n_steps=50)
    assert not torch.allclose(a[1], c[1])


def test_errors_say_what_to_do():
    model, x = problem()
    m, L = torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)
    with pytest.raises(ValueError, match="family"):
        V.fit_gaussian_q(model, x, "lowrank")
    with pytest.raises(ValueError, match="lr"):
        V.fit_gaussian_q(model, x, "full", lr=-0.1)
    with pytest.raises(ValueError, match="n_steps"):
        V.fit_gaussian_q(model, x, "full", n_steps=0)
    with pytest.raises(ValueError, match="x"):
        V.gaussian_q_elbo(model, x[0], m, L)
    with pytest.raises(ValueError, match=r"q_mean must be a tensor of shape \(2,\)"):
        V.gaussian_q_elbo(model, x, torch.zeros(3, dtype=F64), L)
    with pytest.raises(ValueError, match=r"q_scale_tril must be a tensor of shape \(2, 2\)"):
        V.gaussian_q_elbo(model, x, m, torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match="lower-triangular"):
        V.gaussian_q_elbo(model, x, m, torch.ones(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="positive diagonal"):
        V.gaussian_q_elbo(model, x, m, -torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="NaN"):
        V.gaussian_q_elbo(model, x, torch.tensor([0.0, math.nan], dtype=F64), L)
