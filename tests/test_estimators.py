"""Monte Carlo estimators of log p(x), tested on probabilistic PCA, where log p(x) is known exactly
(scipy.stats.multivariate_normal). Tolerances come from standard errors over repeated estimates."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp
from torch import distributions as D

from vae_lesson import estimators
from vae_lesson.estimators import (
    _log_mean_exp_chunked, effective_sample_size, log_marginal_importance, log_marginal_naive, log_mean_exp,
)
from vae_lesson.models import LinearGaussianModel

N_SE = 4.0

# The model (NumPy float64 truth): D = 3, d = 2.
W = np.array([[1.0, 0.3], [-0.5, 0.8], [0.4, -0.6]])
B = np.array([0.2, -0.1, 0.5])
SIGMA = np.float64(0.8)
X = np.array([[1.1, -0.4, 0.9]])  # one data point
X_MANY = np.array([[1.1, -0.4, 0.9], [-2.0, 1.5, 0.3], [0.0, 0.0, 0.0], [3.0, -1.0, -2.5]])


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


@pytest.fixture(scope="module")
def model():
    return LinearGaussianModel(t(W), t(B), SIGMA)


def exact_log_px(x):
    return stats.multivariate_normal(B, W @ W.T + SIGMA**2 * np.eye(3)).logpdf(x)


def conditioned_posterior(x):
    """p(z | x) by conditioning the joint Gaussian of (z, x), in NumPy."""
    gain = np.linalg.solve(W @ W.T + SIGMA**2 * np.eye(3), W).T
    return (x - B) @ gain.T, np.eye(2) - gain @ W


def shifted_wide_proposal():
    """A q near the posterior of X but shifted and twice as wide: the weights are bounded."""
    m, c = conditioned_posterior(X)
    return D.MultivariateNormal(t(m[0] + [0.3, -0.2]), covariance_matrix=t(2.0 * c))


def naive(model, r, k, chunk_size=1000):
    prior = model.prior.expand((r,))
    return log_marginal_naive(lambda z: model.log_likelihood(t(X), z), prior, k, chunk_size)


def importance(model, q, r, k, chunk_size=1000):
    return log_marginal_importance(lambda z: model.joint_log_prob(t(X), z), q.expand((r,)), k, chunk_size)


# --- log_mean_exp -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, dim", [((7,), -1), ((5, 4), 0), ((5, 4), 1), ((3, 6, 2), 1), ((3, 6, 2), -1)])
def test_log_mean_exp_matches_scipy(shape, dim):
    a = np.random.default_rng(0).normal(scale=5.0, size=shape)
    got = log_mean_exp(t(a), dim=dim)
    expected = logsumexp(a, axis=dim) - math.log(shape[dim])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("offset", [-1000.0, 1000.0, -1e5])
def test_log_mean_exp_is_stable_far_from_zero(offset):
    small = np.array([0.3, -1.2, 0.7, 2.0])
    got = log_mean_exp(t(small + offset)).item()
    assert math.isfinite(got)
    assert got == pytest.approx(offset + math.log(np.mean(np.exp(small))), rel=1e-14, abs=1e-9)
    # the naive formula does fail there: the test is about something
    with np.errstate(over="ignore", divide="ignore"):
        assert not np.isfinite(np.log(np.mean(np.exp(small + offset))))


def test_log_mean_exp_float32_at_minus_1000():
    got = log_mean_exp(torch.full((5,), -1000.0))
    assert got.dtype == torch.float32 and got.item() == pytest.approx(-1000.0, abs=1e-4)


def test_log_mean_exp_with_minus_infinity():
    """A zero weight (log w = -inf) counts in K but adds nothing."""
    got = log_mean_exp(torch.tensor([0.0, -math.inf, -math.inf, 0.0], dtype=torch.float64)).item()
    assert got == pytest.approx(math.log(0.5), abs=1e-15)


@pytest.mark.parametrize("shape, dim", [((0,), -1), ((3, 0), 1), ((0, 4), 0)])
def test_log_mean_exp_rejects_empty(shape, dim):
    with pytest.raises(ValueError, match="empty"):
        log_mean_exp(torch.zeros(shape), dim=dim)


# --- the chunked average ------------------------------------------------------------------------

@pytest.mark.parametrize("n_samples, chunk_size", [(50, 7), (50, 50), (50, 1000), (49, 7), (1, 1), (13, 1)])
def test_chunking_gives_log_mean_exp(n_samples, chunk_size):
    table = t(np.random.default_rng(1).normal(scale=20.0, size=(n_samples, 3)) - 500.0)
    requested, position = [], [0]

    def log_weights(k):
        requested.append(k)
        out = table[position[0]:position[0] + k]
        position[0] += k
        return out

    got = _log_mean_exp_chunked(log_weights, n_samples, chunk_size)
    assert sum(requested) == n_samples and position[0] == n_samples
    assert requested == [chunk_size] * (n_samples // chunk_size) + (
        [n_samples % chunk_size] if n_samples % chunk_size else [])
    np.testing.assert_allclose(got.numpy(), logsumexp(table.numpy(), axis=0) - math.log(n_samples),
                               rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_samples=0, chunk_size=5), "n_samples"),
    (dict(n_samples=-3, chunk_size=5), "n_samples"),
    (dict(n_samples=10, chunk_size=0), "chunk_size"),
    (dict(n_samples=10.0, chunk_size=5), "n_samples"),
])
def test_chunked_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        _log_mean_exp_chunked(lambda k: torch.zeros(k), **kwargs)


@pytest.mark.parametrize("which", ["naive", "importance"])
@pytest.mark.parametrize("n_samples", [0, -1])
def test_estimators_reject_zero_samples(model, which, n_samples):
    with pytest.raises(ValueError, match="^n_samples must"):
        if which == "naive":
            naive(model, 3, n_samples)
        else:
            importance(model, shifted_wide_proposal(), 3, n_samples)


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_naive_is_the_average_of_the_prior_samples_it_draws(model, chunk_size):
    """Same seed, same draws (chunk by chunk): log p_hat = log (1/K) sum_k N(x; W z_k + b, sigma^2 I), by scipy."""
    r, k = 5, 30
    torch.manual_seed(3)
    got = naive(model, r, k, chunk_size).numpy()
    torch.manual_seed(3)
    prior = model.prior.expand((r,))
    z = torch.cat([prior.sample((min(chunk_size, k - s),)) for s in range(0, k, chunk_size)]).numpy()  # (K, R, 2)
    log_lik = stats.norm.logpdf(X[0], z @ W.T + B, SIGMA).sum(-1)  # (K, R)
    np.testing.assert_allclose(got, logsumexp(log_lik, axis=0) - math.log(k), rtol=1e-12)


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_importance_is_the_average_of_the_weights_it_draws(model, chunk_size):
    r, k = 5, 30
    q = shifted_wide_proposal()
    torch.manual_seed(4)
    got = importance(model, q, r, k, chunk_size).numpy()
    torch.manual_seed(4)
    qr = q.expand((r,))
    z = torch.cat([qr.sample((min(chunk_size, k - s),)) for s in range(0, k, chunk_size)]).numpy()
    log_w = (stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
             + stats.norm.logpdf(X[0], z @ W.T + B, SIGMA).sum(-1)
             - stats.multivariate_normal(q.mean.numpy(), q.covariance_matrix.numpy()).logpdf(z))
    np.testing.assert_allclose(got, logsumexp(log_w, axis=0) - math.log(k), rtol=1e-12)


def test_chunk_size_does_not_change_the_distribution(model):
    """chunk_size = K and chunk_size = 7 draw differently, but estimate the same thing: their means over
    repeated estimates agree within standard errors, and so do their spreads (roughly)."""
    r, k = 4000, 20
    q = shifted_wide_proposal()
    torch.manual_seed(5)
    whole = importance(model, q, r, k, chunk_size=k).numpy()
    torch.manual_seed(6)
    chunked = importance(model, q, r, k, chunk_size=7).numpy()
    se = math.sqrt(whole.var(ddof=1) / r + chunked.var(ddof=1) / r)
    assert abs(whole.mean() - chunked.mean()) < N_SE * se
    assert chunked.std() == pytest.approx(whole.std(), rel=0.1)


def test_estimates_are_reproducible_with_a_seed(model):
    q = shifted_wide_proposal()
    torch.manual_seed(9)
    a = importance(model, q, 10, 50, chunk_size=7)
    torch.manual_seed(9)
    b = importance(model, q, 10, 50, chunk_size=7)
    assert torch.equal(a, b)


# --- unbiased p_hat, biased log p_hat ---------------------------------------------------------------

@pytest.mark.parametrize("which, k", [("naive", 3), ("naive", 30), ("importance", 3), ("importance", 30)])
def test_p_hat_is_unbiased(model, which, k):
    """E[p_hat / p(x)] = 1: the mean of exp(log p_hat - log p) over R repeats is 1 within N_SE standard errors."""
    r = 20_000
    torch.manual_seed(10)
    est = naive(model, r, k) if which == "naive" else importance(model, shifted_wide_proposal(), r, k)
    assert est.shape == (r,) and est.dtype == torch.float64
    ratio = np.exp(est.numpy() - exact_log_px(X[0]))
    se = ratio.std(ddof=1) / math.sqrt(r)
    assert abs(ratio.mean() - 1.0) < N_SE * se, (ratio.mean(), se)
    assert N_SE * se < 0.05  # a tight check: with a bias of 5% it would fail


def test_log_p_hat_is_biased_low_and_the_bias_shrinks_with_k(model):
    """Jensen: E[log p_hat] < log p(x); the gap closes as K grows (naive and importance sampling)."""
    r = 3000
    log_px = exact_log_px(X[0])
    for which in ("naive", "importance"):
        biases, ses = [], []
        for k in (1, 10, 100):
            torch.manual_seed(11 + k)
            est = (naive(model, r, k) if which == "naive" else importance(model, shifted_wide_proposal(), r, k)).numpy()
            biases.append(est.mean() - log_px)
            ses.append(est.std(ddof=1) / math.sqrt(r))
        assert biases[0] < -3 * ses[0], (which, biases, ses)  # clearly below at small K
        for i in range(2):  # each step in K closes the gap by more than the noise
            assert biases[i + 1] - biases[i] > 3 * math.hypot(ses[i], ses[i + 1]), (which, biases, ses)
        assert abs(biases[2]) < abs(biases[0]) / 5


def test_importance_with_the_exact_posterior_has_zero_variance(model):
    """q = p(z | x): every weight p(x, z) / q(z) equals p(x), so every estimate is exact, for any K."""
    pm, pc = conditioned_posterior(X_MANY)
    q = D.MultivariateNormal(t(pm), covariance_matrix=t(np.broadcast_to(pc, (4, 2, 2)).copy()))
    log_px = exact_log_px(X_MANY)
    for k, chunk in ((1, 1000), (37, 10), (500, 1000)):
        got = log_marginal_importance(lambda z: model.joint_log_prob(t(X_MANY), z), q, k, chunk)
        assert got.shape == (4,)
        np.testing.assert_allclose(got.numpy(), log_px, rtol=0, atol=1e-10)


def test_importance_beats_naive_with_a_good_proposal(model):
    r, k = 2000, 10
    torch.manual_seed(12)
    err_naive = naive(model, r, k).numpy() - exact_log_px(X[0])
    err_is = importance(model, shifted_wide_proposal(), r, k).numpy() - exact_log_px(X[0])
    assert err_is.std() < 0.8 * err_naive.std()  # about 0.25 against 0.39


# --- effective sample size ------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 1000])
def test_ess_of_equal_weights_is_k(k):
    for level in (0.0, -1000.0, 700.0):
        assert effective_sample_size(torch.full((k,), level, dtype=torch.float64)).item() == pytest.approx(k, rel=1e-12)


def test_ess_of_one_dominant_weight_is_about_one():
    log_w = torch.full((1000,), -50.0, dtype=torch.float64)
    log_w[17] = 0.0
    assert effective_sample_size(log_w).item() == pytest.approx(1.0, abs=1e-12)
    log_w[3] = 0.0  # two equal dominant weights: 2
    assert effective_sample_size(log_w).item() == pytest.approx(2.0, abs=1e-12)


def test_ess_matches_the_formula_and_is_scale_invariant():
    lw = np.random.default_rng(2).normal(scale=2.0, size=(6, 40))
    w = np.exp(lw)
    expected = w.sum(1) ** 2 / (w**2).sum(1)
    got = effective_sample_size(t(lw), dim=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(effective_sample_size(t(lw - 900.0), dim=1).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(effective_sample_size(t(lw.T), dim=0).numpy(), expected, rtol=1e-12)
    assert np.all((got >= 1) & (got <= 40))


def test_module_exports():
    for name in ("log_mean_exp", "log_marginal_naive", "log_marginal_importance", "effective_sample_size"):
        assert callable(getattr(estimators, name))
