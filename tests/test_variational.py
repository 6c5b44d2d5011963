"""Variational learning of probabilistic PCA with one q_i = N(m_i, diag s_i^2) per data point
(vae_lesson.variational).

Expected values are computed here independently: log-densities with scipy.stats in float64, the
exact posterior by conditioning the joint Gaussian of (z, x) in data space (a Schur complement,
not the package's latent-space formula), the ELBO by Monte Carlo (tolerances in standard errors)
and through torch.distributions.kl_divergence, gradients by finite differences, and the
maximum-likelihood PPCA solution in closed form (Tipping and Bishop, 1999) with numpy's eigh.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import distributions as D

from vae_lesson import variational as V
from vae_lesson.data import load_digits
from vae_lesson.models import LinearGaussianModel

N_SE = 4.0  # tolerance for Monte Carlo comparisons, in standard errors
F64 = torch.float64


def problem(n=4, data_dim=5, latent_dim=2, seed=0):
    """Random theta and a random diagonal q per data point, float64."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(data_dim, latent_dim, generator=g, dtype=F64)
    b = torch.randn(data_dim, generator=g, dtype=F64)
    log_sigma = torch.tensor(-0.4, dtype=F64)
    x = torch.randn(n, data_dim, generator=g, dtype=F64) * 2
    m = torch.randn(n, latent_dim, generator=g, dtype=F64)
    log_s = 0.4 * torch.randn(n, latent_dim, generator=g, dtype=F64) - 0.7
    return x, W, b, log_sigma, m, log_s


def posterior_by_conditioning(x, W, b, log_sigma):
    """p(z | x) from the joint Gaussian of (z, x): mean W^T C^{-1} (x - b), cov I - W^T C^{-1} W,
    C = W W^T + sigma^2 I (numpy, float64)."""
    x, W, b = (np.asarray(t, dtype=np.float64) for t in (x, W, b))
    C = W @ W.T + math.exp(2 * float(log_sigma)) * np.eye(len(b))
    mean = np.linalg.solve(C, (x - b).T).T @ W
    cov = np.eye(W.shape[1]) - W.T @ np.linalg.solve(C, W)
    return mean, cov


def scipy_log_marginal(x, W, b, log_sigma):
    x, W, b = (np.asarray(t, dtype=np.float64) for t in (x, W, b))
    C = W @ W.T + math.exp(2 * float(log_sigma)) * np.eye(len(b))
    return stats.multivariate_normal(b, C).logpdf(x)


def diag_q(m, log_s):
    return D.MultivariateNormal(m, covariance_matrix=torch.diag_embed(torch.exp(2 * log_s)))


# --- elbo_linear_gaussian ------------------------------------------------------------------------

def test_elbo_matches_a_monte_carlo_estimate():
    """ELBO_n = E_{q_n}[log N(x_n; W z + b, sigma^2 I) + log N(z; 0, I) - log q_n(z)], sampled with scipy."""
    x, W, b, log_sigma, m, log_s = problem()
    got = V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s).numpy()
    rng = np.random.default_rng(1)
    S = 40_000
    sigma = math.exp(float(log_sigma))
    Wn, bn = W.numpy(), b.numpy()
    for n in range(len(x)):
        mn, sn = m[n].numpy(), np.exp(log_s[n].numpy())
        z = mn + sn * rng.standard_normal((S, len(mn)))
        terms = (stats.norm.logpdf(x[n].numpy(), z @ Wn.T + bn, sigma).sum(1)
                 + stats.norm.logpdf(z).sum(1) - stats.norm.logpdf(z, mn, sn).sum(1))
        se = terms.std(ddof=1) / math.sqrt(S)
        assert se > 0
        assert abs(terms.mean() - got[n]) < N_SE * se, (n, terms.mean(), got[n], se)


def test_elbo_matches_the_linear_gaussian_model():
    x, W, b, log_sigma, m, log_s = problem(n=6, data_dim=7, latent_dim=3, seed=2)
    got = V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s)
    assert got.shape == (6,) and got.dtype == F64
    model = LinearGaussianModel(W, b, torch.exp(log_sigma))
    expected = model.elbo(x, m, torch.diag_embed(torch.exp(2 * log_s)))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elbo_is_below_log_marginal_by_the_kl_to_the_posterior(seed):
    """log p(x) - ELBO(q) = KL(q || p(z | x)) >= 0 for any q (torch.distributions.kl_divergence)."""
    x, W, b, log_sigma, m, log_s = problem(n=5, seed=seed)
    elbo = V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s)
    log_px = torch.tensor(scipy_log_marginal(x, W, b, log_sigma))
    post_mean, post_cov = posterior_by_conditioning(x, W, b, log_sigma)
    post = D.MultivariateNormal(torch.tensor(post_mean), covariance_matrix=torch.tensor(post_cov).expand(5, -1, -1))
    kl = D.kl_divergence(diag_q(m, log_s), post)
    assert (elbo < log_px).all()
    assert (kl > 1e-3).all()  # random q's are far from the posterior: the gap is real
    np.testing.assert_allclose((log_px - elbo).numpy(), kl.numpy(), rtol=1e-9, atol=1e-9)


def test_elbo_gradients_match_finite_differences():
    x, W, b, log_sigma, m, log_s = problem(n=3, data_dim=4, latent_dim=2, seed=3)
    inputs = tuple(t.clone().requires_grad_(True) for t in (W, b, log_sigma, m, log_s))
    assert torch.autograd.gradcheck(lambda *a: V.elbo_linear_gaussian(x, *a), inputs, eps=1e-6, atol=1e-6)
    # and the gradient with respect to W, explicitly, by central differences of the summed ELBO
    Wg = W.clone().requires_grad_(True)
    V.elbo_linear_gaussian(x, Wg, b, log_sigma, m, log_s).sum().backward()
    h, fd = 1e-6, torch.zeros_like(W)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            Wp, Wm = W.clone(), W.clone()
            Wp[i, j] += h
            Wm[i, j] -= h
            fd[i, j] = (V.elbo_linear_gaussian(x, Wp, b, log_sigma, m, log_s).sum()
                        - V.elbo_linear_gaussian(x, Wm, b, log_sigma, m, log_s).sum()) / (2 * h)
    assert Wg.grad.abs().max() > 1e-2
    np.testing.assert_allclose(Wg.grad.numpy(), fd.numpy(), rtol=1e-6, atol=1e-6)


def test_elbo_shape_errors_name_the_argument():
    x, W, b, log_sigma, m, log_s = problem()
    with pytest.raises(ValueError, match="q_mean"):
        V.elbo_linear_gaussian(x, W, b, log_sigma, m[:-1], log_s)
    with pytest.raises(ValueError, match="q_log_std"):
        V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s[:, :1])
    with pytest.raises(ValueError, match="W"):
        V.elbo_linear_gaussian(x, W[:-1], b, log_sigma, m, log_s)
    with pytest.raises(ValueError, match="b"):
        V.elbo_linear_gaussian(x, W, b[:-1], log_sigma, m, log_s)
    with pytest.raises(ValueError, match="x"):
        V.elbo_linear_gaussian(x[0], W, b, log_sigma, m, log_s)


# --- log_marginal_linear_gaussian and exact_posterior ---------------------------------------------

def test_log_marginal_matches_scipy_and_is_differentiable():
    x, W, b, log_sigma, _, _ = problem(n=8, data_dim=6, latent_dim=3, seed=4)
    got = V.log_marginal_linear_gaussian(x, W, b, log_sigma)
    assert got.shape == (8,)
    np.testing.assert_allclose(got.numpy(), scipy_log_marginal(x, W, b, log_sigma), rtol=1e-10)
    inputs = tuple(t.clone().requires_grad_(True) for t in (W, b, log_sigma))
    assert torch.autograd.gradcheck(lambda *a: V.log_marginal_linear_gaussian(x[:3], *a), inputs, eps=1e-6, atol=1e-6)


def test_exact_posterior_matches_conditioning_and_the_model():
    x, W, b, log_sigma, _, _ = problem(n=5, data_dim=6, latent_dim=3, seed=5)
    mean, cov = V.exact_posterior(x, W, b, log_sigma)
    assert mean.shape == (5, 3) and cov.shape == (3, 3)
    want_mean, want_cov = posterior_by_conditioning(x, W, b, log_sigma)
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), want_cov, rtol=1e-9, atol=1e-10)
    post = LinearGaussianModel(W, b, torch.exp(log_sigma)).posterior(x)
    np.testing.assert_allclose(mean.numpy(), post.mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov.expand(5, -1, -1).numpy(), post.covariance_matrix.numpy(), rtol=1e-10, atol=1e-12)


# --- optimal_diagonal_q -------------------------------------------------------------------------

def test_optimal_diagonal_q_beats_random_perturbations():
    x, W, b, log_sigma, _, _ = problem(n=5, data_dim=6, latent_dim=3, seed=6)
    m, log_s = V.optimal_diagonal_q(x, W, b, log_sigma)
    assert m.shape == (5, 3) and log_s.shape == (5, 3)
    best = V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s)
    g = torch.Generator().manual_seed(7)
    for scale in (1e-3, 1e-2, 0.1, 1.0):
        for _ in range(25):
            dm = scale * torch.randn(m.shape, generator=g, dtype=F64)
            ds = scale * torch.randn(m.shape, generator=g, dtype=F64)
            other = V.elbo_linear_gaussian(x, W, b, log_sigma, m + dm, log_s + ds)
            assert (other < best).all(), scale


def test_optimal_diagonal_q_is_a_stationary_point():
    x, W, b, log_sigma, _, _ = problem(n=5, data_dim=6, latent_dim=3, seed=8)
    m, log_s = V.optimal_diagonal_q(x, W, b, log_sigma)
    m, log_s = m.clone().requires_grad_(True), log_s.clone().requires_grad_(True)
    V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s).sum().backward()
    assert m.grad.abs().max() < 1e-8
    assert log_s.grad.abs().max() < 1e-8
    # s_j^2 = 1 / (posterior precision)_jj, with the precision from the independent posterior
    _, post_cov = posterior_by_conditioning(x, W, b, log_sigma)
    inverse_precision = 1 / np.diag(np.linalg.inv(post_cov))
    s2 = np.exp(2 * log_s.detach().numpy())
    np.testing.assert_allclose(s2, np.broadcast_to(inverse_precision, (5, 3)), rtol=1e-9)


def test_optimal_diagonal_q_is_exact_when_the_posterior_is_diagonal():
    """W with orthogonal columns: W^T W diagonal, so the posterior covariance is diagonal, the
    diagonal family contains it, and the gap log p(x) - ELBO is 0."""
    g = torch.Generator().manual_seed(9)
    Q, _ = torch.linalg.qr(torch.randn(7, 3, generator=g, dtype=F64))
    W = Q * torch.tensor([2.0, 0.7, 1.3], dtype=F64)
    assert torch.allclose(W.T @ W, torch.diag(torch.diagonal(W.T @ W)), atol=1e-12)
    b = torch.randn(7, generator=g, dtype=F64)
    log_sigma = torch.tensor(-0.2, dtype=F64)
    x = torch.randn(6, 7, generator=g, dtype=F64)
    m, log_s = V.optimal_diagonal_q(x, W, b, log_sigma)
    want_mean, want_cov = posterior_by_conditioning(x, W, b, log_sigma)
    np.testing.assert_allclose(m.numpy(), want_mean, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.exp(2 * log_s.numpy()), np.broadcast_to(np.diag(want_cov), (6, 3)), rtol=1e-9)
    gap = torch.tensor(scipy_log_marginal(x, W, b, log_sigma)) - V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s)
    np.testing.assert_allclose(gap.numpy(), 0.0, atol=1e-10)


def test_optimal_diagonal_q_leaves_a_gap_when_the_posterior_is_correlated():
    """The counterpart: with W^T W far from diagonal the best diagonal q is not the posterior."""
    x, W, b, log_sigma, _, _ = problem(n=5, data_dim=6, latent_dim=2, seed=10)
    W = W.clone()
    W[:, 1] = W[:, 0] + 0.3 * W[:, 1]  # strongly correlated columns
    m, log_s = V.optimal_diagonal_q(x, W, b, log_sigma)
    gap = torch.tensor(scipy_log_marginal(x, W, b, log_sigma)) - V.elbo_linear_gaussian(x, W, b, log_sigma, m, log_s)
    assert (gap > 0.1).all()
    post_mean, post_cov = posterior_by_conditioning(x, W, b, log_sigma)
    post = D.MultivariateNormal(torch.tensor(post_mean), covariance_matrix=torch.tensor(post_cov).expand(5, -1, -1))
    np.testing.assert_allclose(gap.numpy(), D.kl_divergence(diag_q(m, log_s), post).numpy(), rtol=1e-9)


# --- fit_per_datapoint ----------------------------------------------------------------------------

N_STEPS = 150


@pytest.fixture(scope="module")
def grey100():
    return load_digits().x_train[:100].double()


@pytest.fixture(scope="module")
def runs(grey100):
    return {s: V.fit_per_datapoint(grey100, latent_dim=2, n_steps=N_STEPS, schedule=s)
            for s in ("in_sync", "alternating")}


@pytest.mark.parametrize("schedule", ["in_sync", "alternating"])
def test_fit_history_elbo_stays_below_log_px(runs, grey100, schedule):
    theta, (q_mean, q_log_std), history = runs[schedule]
    assert len(history["elbo"]) == len(history["log_px"]) == N_STEPS
    elbo, log_px = np.array(history["elbo"]), np.array(history["log_px"])
    assert np.all(elbo <= log_px + 1e-9)
    # the first record is theta's initial value, scored independently
    init = V.Theta.initial(grey100, 2, seed=0)
    assert log_px[0] == pytest.approx(scipy_log_marginal(grey100, init.W, init.b, init.log_sigma).mean(), abs=1e-9)
    # learning: much better than at the start
    assert log_px[-1] > log_px[0] + 10
    assert theta.W.shape == (64, 2) and q_mean.shape == (100, 2) and q_log_std.shape == (100, 2)
    assert not any(p.requires_grad for p in theta.params())


def test_fit_in_sync_starts_from_q_equal_to_the_prior(runs, grey100):
    """In sync, phi_i starts at m = 0, log s = 0: q_i = p(z), so the first ELBO is E_p(z)[log p(x|z)]."""
    history = runs["in_sync"][2]
    init = V.Theta.initial(grey100, 2, seed=0)
    model = LinearGaussianModel(init.W, init.b, torch.exp(init.log_sigma))
    want = model.elbo(grey100, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64)).mean().item()
    assert history["elbo"][0] == pytest.approx(want, abs=1e-9)


def test_fit_both_schedules_reach_the_same_likelihood(runs, grey100):
    final = {}
    for schedule, (theta, _, history) in runs.items():
        final[schedule] = scipy_log_marginal(grey100, theta.W, theta.b, theta.log_sigma).mean()
        assert final[schedule] == pytest.approx(history["log_px"][-1], abs=0.05)
    assert abs(final["in_sync"] - final["alternating"]) < 0.05, final


def test_fit_is_deterministic(grey100):
    a = V.fit_per_datapoint(grey100[:20], n_steps=5, schedule="in_sync", seed=3)
    b = V.fit_per_datapoint(grey100[:20], n_steps=5, schedule="in_sync", seed=3)
    assert a[2] == b[2]
    assert torch.equal(a[0].W, b[0].W)


def test_fit_errors(grey100):
    x = grey100[:10]
    with pytest.raises(ValueError, match="schedule"):
        V.fit_per_datapoint(x, n_steps=2, schedule="sync")
    with pytest.raises(ValueError, match="x"):
        V.fit_per_datapoint(x[0], n_steps=2)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x"):
        V.fit_per_datapoint(bad, n_steps=2)
    with pytest.raises(ValueError, match="latent_dim"):
        V.fit_per_datapoint(x, latent_dim=0, n_steps=2)
    with pytest.raises(ValueError, match="n_steps"):
        V.fit_per_datapoint(x, n_steps=0)


# --- pca_em_step ---------------------------------------------------------------------------------

def ppca_mle(x, latent_dim):
    """Tipping and Bishop (1999): with S the sample covariance (divided by N) and eigenvalues
    l_1 >= ... >= l_D, sigma^2 = mean(l_{d+1..D}), W = U_d (L_d - sigma^2 I)^{1/2}, b = mean."""
    X = np.asarray(x, dtype=np.float64)
    S = np.cov(X.T, bias=True)
    ev, U = np.linalg.eigh(S)
    ev, U = ev[::-1], U[:, ::-1]
    sigma2 = ev[latent_dim:].mean()
    W = U[:, :latent_dim] * np.sqrt(ev[:latent_dim] - sigma2)
    return W, X.mean(0), sigma2


@pytest.fixture(scope="module")
def em_run(grey100):
    theta, reports = V.Theta.initial(grey100, 2, seed=0), []
    for _ in range(100):
        theta, r = V.pca_em_step(grey100, theta)
        reports.append(r)
    return theta, reports


def test_em_e_step_makes_the_bound_tight_and_likelihood_never_falls(em_run):
    _, reports = em_run
    for i, r in enumerate(reports):
        assert r.elbo_after_e == pytest.approx(r.log_lik_before, abs=1e-10)
        assert r.elbo_after_m >= r.elbo_after_e - 1e-9  # the M-step raises the bound
        assert r.log_lik_after >= r.elbo_after_m - 1e-9  # which stays below log p(x)
        assert r.log_lik_after >= r.log_lik_before - 1e-9
        if i:
            assert r.log_lik_before == reports[i - 1].log_lik_after
    assert reports[0].log_lik_after > reports[0].log_lik_before + 1  # a real first step


def test_em_reports_are_what_they_say(grey100):
    """Every number of one report, recomputed: scipy for log p(x), and the model's ELBO with
    q_n = the exact posterior under the old theta for the bound after the M-step."""
    old = V.Theta.initial(grey100, 2, seed=1)
    new, r = V.pca_em_step(grey100, old)
    assert r.log_lik_before == pytest.approx(scipy_log_marginal(grey100, old.W, old.b, old.log_sigma).mean(), abs=1e-9)
    assert r.log_lik_after == pytest.approx(scipy_log_marginal(grey100, new.W, new.b, new.log_sigma).mean(), abs=1e-9)
    post_mean, post_cov = posterior_by_conditioning(grey100, old.W, old.b, old.log_sigma)
    model = LinearGaussianModel(new.W, new.b, torch.exp(new.log_sigma))
    want = model.elbo(grey100, torch.tensor(post_mean), torch.tensor(post_cov)).mean().item()
    assert r.elbo_after_m == pytest.approx(want, abs=1e-9)
    np.testing.assert_allclose(new.b.numpy(), grey100.mean(0).numpy(), rtol=0, atol=1e-12)


def test_em_converges_to_the_closed_form_maximum_likelihood(em_run, grey100):
    """After 100 iterations (seed 0, 100 digits, d = 2) the log-likelihood is within 1e-6 nats per
    image of the closed-form maximum (measured: ~1e-13; after 50 iterations ~3e-8), and the
    rotation-invariant W W^T and sigma^2 match it too."""
    theta, reports = em_run
    W, b, sigma2 = ppca_mle(grey100, 2)
    best = stats.multivariate_normal(b, W @ W.T + sigma2 * np.eye(64)).logpdf(grey100.numpy()).mean()
    final = scipy_log_marginal(grey100, theta.W, theta.b, theta.log_sigma).mean()
    assert reports[49].log_lik_after == pytest.approx(best, abs=1e-3)
    assert final == pytest.approx(best, abs=1e-6)
    assert final <= best + 1e-9  # it is the maximum
    Wt = theta.W.numpy()
    np.testing.assert_allclose(Wt @ Wt.T, W @ W.T, atol=1e-5)
    assert math.exp(2 * theta.log_sigma.item()) == pytest.approx(sigma2, rel=1e-6)


def test_em_m_step_raises_the_bound_from_any_theta(em_run, grey100):
    theta, _ = em_run
    shifted = V.Theta(theta.W.clone(), theta.b + theta.W @ torch.tensor([1.0, 0.0], dtype=F64), theta.log_sigma.clone())
    _, r = V.pca_em_step(grey100, shifted)
    assert r.elbo_after_e == pytest.approx(r.log_lik_before, abs=1e-10)
    assert r.elbo_after_m >= r.elbo_after_e - 1e-9


def test_posterior_correlation_is_that_of_the_exact_posterior_and_rotation_changes_only_it():
    """posterior_correlation equals the correlation of LinearGaussianModel.posterior's covariance; a
    rotation W -> W R keeps log p(x) (to 1e-9) and changes the correlation, and the rotation that
    diagonalizes W^T W makes it 0."""
    from vae_lesson.models import LinearGaussianModel
    from vae_lesson.variational import posterior_correlation

    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 2, generator=g, dtype=torch.float64)
    b, log_sigma = torch.zeros(6, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64)
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    model = LinearGaussianModel(W, b, log_sigma.exp())
    cov = model.posterior(x).covariance_matrix[0]
    assert abs(posterior_correlation(W, log_sigma) - float(cov[0, 1] / (cov[0, 0] * cov[1, 1]).sqrt())) < 1e-12
    assert abs(posterior_correlation(W, log_sigma)) > 0.05  # a random W: correlated
    angle = torch.tensor(0.7, dtype=torch.float64)
    R = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    rotated = LinearGaussianModel(W @ R, b, log_sigma.exp())
    assert torch.allclose(rotated.log_marginal(x), model.log_marginal(x), atol=1e-9)
    assert abs(posterior_correlation(W @ R, log_sigma) - posterior_correlation(W, log_sigma)) > 1e-3
    _, eigenvectors = torch.linalg.eigh(W.T @ W)
    assert abs(posterior_correlation(W @ eigenvectors, log_sigma)) < 1e-12


def test_posterior_correlation_needs_a_2d_latent():
    from vae_lesson.variational import posterior_correlation

    with pytest.raises(ValueError, match="2-D latent"):
        posterior_correlation(torch.zeros(6, 3), 0.0)
