"""Finite mixtures (GaussianMixture, EM) and the latent Gaussian model.

Every expected value is computed here, independently of ``vae_lesson.models``: with scipy
(float64), with torch.distributions built in the test, with scikit-learn's EM, or by hand.
Monte Carlo comparisons use tolerances derived from standard errors.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import bent_latent_model
from scipy import integrate, stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from torch import distributions as D

from vae_lesson.models import EMStepReport, GaussianMixture, LatentGaussianModel, fit_em

# A known 3-component 2-D mixture (float64 numpy, the "truth" for every test below).
W = np.array([0.5, 0.3, 0.2])
M = np.array([[-2.0, 0.0], [2.0, 0.5], [0.0, 3.0]])
C = np.array([
    [[1.0, 0.3], [0.3, 0.5]],
    [[0.6, -0.2], [-0.2, 0.8]],
    [[0.4, 0.0], [0.0, 1.2]],
])
N_SE = 5.0  # tolerance for Monte Carlo comparisons, in standard errors


def gm(dtype=torch.float32, w=W, m=M, c=C) -> GaussianMixture:
    return GaussianMixture(torch.tensor(w, dtype=dtype), torch.tensor(m, dtype=dtype), torch.tensor(c, dtype=dtype))


def scipy_component_logpdf(x, m=M, c=C):
    """(N, C) log N(x_n; m_c, s_c) with scipy, float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([stats.multivariate_normal(m[k], c[k]).logpdf(x).reshape(len(x)) for k in range(len(m))], 1)


def scipy_log_marginal(x, w=W, m=M, c=C):
    return logsumexp(np.log(w) + scipy_component_logpdf(x, m, c), axis=1)


def sample_truth(n, seed):
    """n points from the known mixture, drawn with NumPy (independent of GaussianMixture.sample)."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(W), size=n, p=W)
    x = np.empty((n, 2))
    for k in range(len(W)):
        idx = z == k
        x[idx] = rng.multivariate_normal(M[k], C[k], size=idx.sum())
    return x, z


@pytest.fixture(scope="module")
def points():
    """Evaluation points: some from the mixture, some far out in the tails."""
    x, _ = sample_truth(40, seed=1)
    far = np.array([[8.0, -6.0], [-7.0, 9.0], [0.0, 0.0], [12.0, 12.0]])
    return np.concatenate([x, far])


# --- GaussianMixture: density, posterior, ELBO ------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_log_marginal_matches_scipy(points, dtype, tol):
    got = gm(dtype).log_marginal(torch.tensor(points, dtype=dtype))
    assert got.shape == (len(points),)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.numpy(), scipy_log_marginal(points), rtol=tol, atol=tol)


def test_log_marginal_matches_torch_mixture_same_family(points):
    reference = D.MixtureSameFamily(
        D.Categorical(probs=torch.tensor(W)),
        D.MultivariateNormal(torch.tensor(M), covariance_matrix=torch.tensor(C)),
    )
    x = torch.tensor(points)
    torch.testing.assert_close(gm(torch.float64).log_marginal(x), reference.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        gm().log_marginal(x.float()), reference.log_prob(x).float(), rtol=1e-4, atol=1e-4)


def test_joint_log_prob_and_components(points):
    x = torch.tensor(points)
    expected = np.log(W) + scipy_component_logpdf(points)
    np.testing.assert_allclose(gm(torch.float64).joint_log_prob(x).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(
        gm(torch.float64).component_log_prob(x).numpy(), scipy_component_logpdf(points), rtol=1e-10)


def test_far_points_do_not_underflow():
    """log p(x) far in the tails is finite (log-sum-exp), where exp(log p) itself is 0."""
    x = np.array([[60.0, -60.0]])
    got = gm().log_marginal(torch.tensor(x, dtype=torch.float32))
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), scipy_log_marginal(x), rtol=1e-4)


def bayes_by_hand(x):
    """p(z=k | x) = w_k N(x; m_k, c_k) / sum_j w_j N(x; m_j, c_j), with explicit densities."""
    num = W * np.exp(scipy_component_logpdf(x))
    return num / num.sum(1, keepdims=True)


def test_posterior_is_bayes_rule(points):
    x = points[:40]  # points where the densities are representable without logs
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        post = gm(dtype).posterior(torch.tensor(x, dtype=dtype))
        assert post.shape == (len(x), 3)
        torch.testing.assert_close(post.sum(1), torch.ones(len(x), dtype=dtype), rtol=0, atol=tol)
        np.testing.assert_allclose(post.numpy(), bayes_by_hand(x), rtol=0, atol=tol)


def test_posterior_rows_sum_to_one_in_tails(points):
    post = gm().posterior(torch.tensor(points, dtype=torch.float32))
    assert torch.isfinite(post).all()
    torch.testing.assert_close(post.sum(1), torch.ones(len(points)), rtol=0, atol=1e-6)


def test_prior_is_categorical_of_weights():
    prior = gm().prior
    assert isinstance(prior, D.Categorical)
    np.testing.assert_allclose(prior.probs.numpy(), W, rtol=1e-6)
    assert gm().n_components == 3 and gm().dim == 2


def test_elbo_is_tight_at_the_posterior(points):
    model = gm()
    x = torch.tensor(points, dtype=torch.float32)
    elbo = model.elbo(x, model.posterior(x))
    assert elbo.shape == (len(points),)
    torch.testing.assert_close(elbo, model.log_marginal(x), rtol=0, atol=1e-5)


def kl_categorical(q, log_p):
    """KL(q || p) per row, with 0 log 0 = 0."""
    with np.errstate(divide="ignore"):
        log_q = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), 0.0)
    return np.sum(np.where(q > 0, q * (log_q - log_p), 0.0), axis=1)


def _check_elbo_gap(x, dtype, tol):
    model = gm(dtype)
    rng = np.random.default_rng(3)
    log_post = np.log(W) + scipy_component_logpdf(x)
    log_post -= logsumexp(log_post, axis=1, keepdims=True)
    log_px = scipy_log_marginal(x)
    q_random = rng.dirichlet(np.ones(3), size=len(x))
    q_onehot = np.eye(3)[rng.integers(0, 3, size=len(x))]  # exercises 0 log 0
    q_uniform = np.full((len(x), 3), 1 / 3)
    for q in (q_random, q_onehot, q_uniform):
        elbo = model.elbo(torch.tensor(x, dtype=dtype), torch.tensor(q, dtype=dtype)).double().numpy()
        gap = kl_categorical(q, log_post)
        clear = gap > 1e-3  # where q is clearly not the posterior (a one-hot q can nearly be it)
        assert clear.mean() > 0.5
        assert np.all(elbo[clear] < log_px[clear])
        np.testing.assert_allclose(log_px - elbo, gap, rtol=tol, atol=tol)


def test_elbo_gap_is_kl_to_posterior(points):
    _check_elbo_gap(points[:40], torch.float32, 2e-5)


def test_elbo_gap_is_kl_to_posterior_float64(points):
    _check_elbo_gap(points[:40], torch.float64, 1e-8)


def test_elbo_accepts_numpy_q(points):
    model = gm()
    x = torch.tensor(points[:40], dtype=torch.float32)
    q = np.full((40, 3), 1 / 3)
    expected = model.elbo(x, torch.tensor(q, dtype=torch.float32))
    torch.testing.assert_close(model.elbo(x, q).float(), expected)


def test_elbo_float32_is_below_log_marginal(points):
    model = gm()
    x = torch.tensor(points[:40], dtype=torch.float32)
    q = torch.softmax(torch.randn(40, 3), -1)
    assert (model.elbo(x, q) < model.log_marginal(x)).all()


@pytest.mark.parametrize("q, match", [
    (np.full((3, 3), 1 / 3), "shape"),            # wrong number of rows
    (np.full((40, 2), 0.5), "shape"),              # wrong number of components
    (np.full((40, 3), 0.5), "sum to 1"),           # rows do not sum to 1
    (np.tile([1.5, -0.25, -0.25], (40, 1)), "non-negative"),
])
def test_elbo_rejects_bad_q(points, q, match):
    with pytest.raises(ValueError, match=match) as info:
        gm().elbo(torch.tensor(points[:40], dtype=torch.float32), torch.tensor(q, dtype=torch.float32))
    assert str(info.value).startswith("q ")


# --- GaussianMixture: sampling --------------------------------------------------------------

def test_sample_moments_match_parameters():
    n = 200_000
    model = gm()
    x, z = model.sample(n, generator=torch.Generator().manual_seed(5))
    assert x.shape == (n, 2) and x.dtype == torch.float32
    assert z.shape == (n,) and z.dtype == torch.int64
    x, z = x.double().numpy(), z.numpy()

    # mixture weights: binomial standard error
    freq = np.bincount(z, minlength=3) / n
    se_w = np.sqrt(W * (1 - W) / n)
    assert np.all(np.abs(freq - W) < N_SE * se_w), (freq, W)

    for k in range(3):
        xk = x[z == k]
        nk = len(xk)
        # means given z = k: SE = sqrt(var / n_k)
        se_mean = np.sqrt(np.diag(C[k]) / nk)
        assert np.all(np.abs(xk.mean(0) - M[k]) < N_SE * se_mean), (k, xk.mean(0), M[k])
        # covariances given z = k (Gaussian): Var(x_i x_j) = C_ii C_jj + C_ij^2
        se_cov = np.sqrt((np.outer(np.diag(C[k]), np.diag(C[k])) + C[k] ** 2) / nk)
        assert np.all(np.abs(np.cov(xk.T) - C[k]) < N_SE * se_cov), (k, np.cov(xk.T), C[k])

    # the marginal moments of x alone (no use of z): mean and covariance of the mixture
    mix_mean = W @ M
    mix_cov = sum(W[k] * (C[k] + np.outer(M[k], M[k])) for k in range(3)) - np.outer(mix_mean, mix_mean)
    assert np.all(np.abs(x.mean(0) - mix_mean) < N_SE * np.sqrt(np.diag(mix_cov) / n))
    centred = x - mix_mean
    products = centred[:, :, None] * centred[:, None, :]  # (n, 2, 2)
    se_mix_cov = products.std(0) / np.sqrt(n)  # the mixture is not Gaussian: use the empirical 4th moments
    assert np.all(np.abs(products.mean(0) - mix_cov) < N_SE * se_mix_cov)


def test_sample_is_reproducible_with_a_generator():
    a = gm().sample(100, generator=torch.Generator().manual_seed(3))
    b = gm().sample(100, generator=torch.Generator().manual_seed(3))
    c = gm().sample(100, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_sample_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must"):
        gm().sample(n)


# --- EM -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def em_data():
    x, _ = sample_truth(1500, seed=2)
    return x


def scipy_elbo(q, w, m, c, x):
    """Mean over x of sum_k q_nk [log w_k + log N(x_n; m_k, c_k) - log q_nk], by hand in float64."""
    joint = np.log(w) + scipy_component_logpdf(x, m, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (joint - np.log(np.where(q > 0, q, 1.0))), 0.0)
    return terms.sum(1).mean()


def params(model):
    return (model.weights.double().numpy(), model.means.double().numpy(), model.covs.double().numpy())


def test_em_step_report_matches_independent_computation(em_data):
    x = torch.tensor(em_data, dtype=torch.float32)
    model = GaussianMixture.initialize(x, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        old = params(model)
        new, report = model.em_step(x)
        assert isinstance(report, EMStepReport)
        q_old = np.exp(np.log(old[0]) + scipy_component_logpdf(em_data, old[1], old[2])
                       - scipy_log_marginal(em_data, *old)[:, None])
        assert report.log_lik_before == pytest.approx(scipy_log_marginal(em_data, *old).mean(), abs=1e-4)
        assert report.elbo_after_e == pytest.approx(scipy_elbo(q_old, *old, em_data), abs=1e-4)
        assert report.elbo_after_m == pytest.approx(scipy_elbo(q_old, *params(new), em_data), abs=1e-4)
        assert report.log_lik_after == pytest.approx(scipy_log_marginal(em_data, *params(new)).mean(), abs=1e-4)
        model = new


def test_fit_em_bounds_and_monotone_log_likelihood(em_data):
    x = torch.tensor(em_data, dtype=torch.float32)
    init = GaussianMixture.initialize(x, 3, generator=torch.Generator().manual_seed(0))
    final, reports = fit_em(init, x, n_iter=40)
    assert len(reports) == 40
    tol = 1e-5  # float32
    for r in reports:
        assert r.elbo_after_e == pytest.approx(r.log_lik_before, abs=tol)  # E-step: tight
        assert r.elbo_after_m >= r.elbo_after_e - tol  # M-step maximizes the bound
        assert r.log_lik_after >= r.elbo_after_m - tol  # the bound stays below log p(x)
        assert r.log_lik_after >= r.log_lik_before - tol  # never decreases
    for prev, nxt in zip(reports, reports[1:]):
        assert nxt.log_lik_before == pytest.approx(prev.log_lik_after, abs=1e-6)
    assert reports[-1].log_lik_after > reports[0].log_lik_before + 0.1  # EM actually improved the fit
    assert final.log_marginal(x).mean().item() == pytest.approx(reports[-1].log_lik_after, abs=1e-6)

    # the same as iterating em_step by hand
    model = init
    for r in reports[:3]:
        model, mine = model.em_step(x)
        assert mine == r


def test_em_history_has_every_point_of_the_staircase_in_float64(em_data):
    """What notebook 01's EM plot draws: per iteration, the ELBO after the E-step equals log p(x)
    (tight), the M-step raises the ELBO, log p(x) after the M-step exceeds the ELBO after it by
    the KL gap KL(q || p(z|x; theta_new)) >= 0, and log p(x) never decreases."""
    x = torch.tensor(em_data, dtype=torch.float64)
    init = GaussianMixture.initialize(x, 3, generator=torch.Generator().manual_seed(0))
    _, reports = fit_em(init, x, n_iter=30)
    for r in reports:
        assert r.elbo_after_e == pytest.approx(r.log_lik_before, abs=1e-6)  # E-step: tight
        assert r.elbo_after_m >= r.elbo_after_e  # M-step raises the ELBO
        assert r.log_lik_after - r.elbo_after_m >= 0  # the KL gap
        assert r.log_lik_after >= r.log_lik_before
    for prev, nxt in zip(reports, reports[1:]):
        assert nxt.log_lik_before == pytest.approx(prev.log_lik_after, abs=1e-9)  # the E-step keeps theta
    assert reports[0].log_lik_after - reports[0].elbo_after_m > 1e-3  # a gap worth drawing


def test_fit_em_recovers_the_truth(em_data):
    x = torch.tensor(em_data, dtype=torch.float32)
    init = GaussianMixture.initialize(x, 3, generator=torch.Generator().manual_seed(0))
    final, _ = fit_em(init, x, n_iter=100)
    w, m, c = params(final)
    order = [int(np.argmin(np.linalg.norm(m - M[k], axis=1))) for k in range(3)]
    assert sorted(order) == [0, 1, 2], "each true component is matched by a distinct fitted one"
    n = len(em_data)
    for k, j in enumerate(order):
        nk = W[k] * n
        assert abs(w[j] - W[k]) < N_SE * math.sqrt(W[k] * (1 - W[k]) / n)
        assert np.all(np.abs(m[j] - M[k]) < N_SE * np.sqrt(np.diag(C[k]) / nk))
        se_cov = np.sqrt((np.outer(np.diag(C[k]), np.diag(C[k])) + C[k] ** 2) / nk)
        assert np.all(np.abs(c[j] - C[k]) < N_SE * se_cov)


def sklearn_from(w0, m0, c0, max_iter):
    return SkGaussianMixture(
        n_components=len(w0), covariance_type="full", weights_init=w0, means_init=m0,
        precisions_init=np.linalg.inv(c0), max_iter=max_iter, reg_covar=1e-6, tol=0.0, n_init=1,
        random_state=0,
    )


EM_INIT = (
    np.array([0.2, 0.5, 0.3]),
    np.array([[-1.0, 1.0], [1.0, -1.0], [0.5, 2.0]]),
    np.stack([np.eye(2), 2 * np.eye(2), np.array([[1.0, 0.5], [0.5, 1.0]])]),
)


def sklearn_fit(max_iter, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
        return sklearn_from(*EM_INIT, max_iter=max_iter).fit(x)


def manual_em_step(model, x):
    """E-step then M-step, spelled out with the model's own pieces (works in float64)."""
    return GaussianMixture.m_step(x, model.posterior(x))


def test_one_em_step_matches_sklearn(em_data):
    """sklearn with all three *_init given and max_iter=1 runs exactly one E-step (from the
    given parameters) and one M-step: its k-means run only fills parameters that are then
    overridden, and its final E-step (for labels) does not change the parameters. So one EM
    step must match to rounding."""
    sk = sklearn_fit(1, em_data)
    # float64, E and M spelled out: agreement to rounding
    w, m, c = params(manual_em_step(gm(torch.float64, *EM_INIT), torch.tensor(em_data)))
    np.testing.assert_allclose(w, sk.weights_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m, sk.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c, sk.covariances_, rtol=1e-10, atol=1e-12)
    # the course's float32 em_step: agreement to float32 precision
    new, _ = gm(torch.float32, *EM_INIT).em_step(torch.tensor(em_data, dtype=torch.float32))
    w, m, c = params(new)
    np.testing.assert_allclose(w, sk.weights_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m, sk.means_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c, sk.covariances_, rtol=1e-4, atol=1e-5)


def test_em_converges_like_sklearn(em_data):
    n_iter = 60
    sk = sklearn_fit(n_iter, em_data)
    x = torch.tensor(em_data)
    model = gm(torch.float64, *EM_INIT)
    for _ in range(n_iter - 1):
        model = manual_em_step(model, x)
    last_e_step_log_lik = model.log_marginal(x).mean().item()
    model = manual_em_step(model, x)
    w, m, c = params(model)
    np.testing.assert_allclose(w, sk.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m, sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(c, sk.covariances_, rtol=1e-8, atol=1e-10)
    # sklearn's lower bound is the log-likelihood at its last E-step, before the last M-step
    assert last_e_step_log_lik == pytest.approx(sk.lower_bound_, abs=1e-10)
    assert model.log_marginal(x).mean().item() == pytest.approx(sk.score(em_data), abs=1e-10)

    # the course's float32 fit_em from the same start ends at the same optimum
    final, reports = fit_em(gm(torch.float32, *EM_INIT), x.float(), n_iter=n_iter)
    w, m, c = params(final)
    np.testing.assert_allclose(w, sk.weights_, atol=1e-3)
    np.testing.assert_allclose(m, sk.means_, atol=1e-3)
    np.testing.assert_allclose(c, sk.covariances_, atol=1e-3)
    assert reports[-1].log_lik_after == pytest.approx(sk.score(em_data), abs=1e-4)


def test_em_step_in_float64(em_data):
    sk = sklearn_fit(1, em_data)
    new, _ = gm(torch.float64, *EM_INIT).em_step(torch.tensor(em_data))
    np.testing.assert_allclose(params(new)[1], sk.means_, rtol=1e-10)


def test_fit_em_accepts_numpy_data(em_data):
    ref, _ = fit_em(gm(torch.float32, *EM_INIT), torch.tensor(em_data, dtype=torch.float32), n_iter=3)
    got, _ = fit_em(gm(torch.float32, *EM_INIT), em_data, n_iter=3)
    np.testing.assert_allclose(params(got)[1], params(ref)[1], rtol=1e-4)


def test_initialize_from_numpy_then_em(em_data):
    model = GaussianMixture.initialize(em_data, 3, generator=torch.Generator().manual_seed(0))
    fit_em(model, em_data, n_iter=2)


def test_m_step_formulas_by_hand(em_data):
    x = em_data[:200]
    r = np.random.default_rng(0).dirichlet(np.ones(3), size=len(x))
    new = GaussianMixture.m_step(torch.tensor(x), torch.tensor(r))
    nk = r.sum(0)
    means = np.stack([(r[:, k:k + 1] * x).sum(0) / nk[k] for k in range(3)])
    covs = np.stack([
        sum(r[n, k] * np.outer(x[n] - means[k], x[n] - means[k]) for n in range(len(x))) / nk[k] + 1e-6 * np.eye(2)
        for k in range(3)
    ])
    w, m, c = params(new)
    np.testing.assert_allclose(w, nk / len(x), rtol=1e-10)
    np.testing.assert_allclose(m, means, rtol=1e-10)
    np.testing.assert_allclose(c, covs, rtol=1e-10)


def test_initialize():
    x = torch.tensor(sample_truth(50, seed=4)[0], dtype=torch.float32)
    init = GaussianMixture.initialize(x, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(init.weights, torch.full((4,), 0.25))
    # means are 4 distinct data points
    assert (init.means[:, None, :] == x[None, :, :]).all(-1).any(1).all()
    assert len({tuple(row) for row in init.means.tolist()}) == 4
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture.initialize(x, 51)
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture.initialize(x, 0)


def test_fit_em_rejects_bad_n_iter():
    with pytest.raises(ValueError, match="n_iter"):
        fit_em(gm(), torch.zeros(5, 2), n_iter=0)


# --- GaussianMixture: argument checks -------------------------------------------------------

@pytest.mark.parametrize("w, m, c, name", [
    ([0.5, 0.3, 0.3], M, C, "weights"),                      # sums to 1.1
    ([0.5, 0.3], M, C, "mismatched sizes"),                  # K differs
    (W, M[:, :1], C, "mismatched sizes"),                    # D differs
    (W, M, C[:2], "mismatched sizes"),
    ([1.2, -0.1, -0.1], M, C, "weights"),                    # sums to 1 but negative
    (W, M, np.stack([C[0], C[1], np.diag([0.4, -1.2])]), "covs"),  # negative variance
    (W, M, np.stack([C[0], C[1], np.array([[1.0, 2.0], [2.0, 1.0]])]), "covs"),  # symmetric, not PD
    (W, M, np.stack([C[0], C[1], np.array([[1.0, 0.5], [0.0, 1.0]])]), "covs"),  # not symmetric
    (W, M.ravel(), C, "means"),                              # means (K*D,)
    ([[0.5, 0.3, 0.2]], M, C, "weights"),                    # weights (1, K)
    (W, M, C[:, 0], "covs"),                                  # covs (K, D)
    ([0.5, np.nan, 0.2], M, C, "weights"),
    (W, np.where(M == 0, np.nan, M), C, "means"),
])
def test_gaussian_mixture_rejects_bad_parameters(w, m, c, name):
    with pytest.raises(ValueError, match=name):
        GaussianMixture(torch.tensor(np.asarray(w, dtype=np.float64)), torch.tensor(np.asarray(m)),
                        torch.tensor(np.asarray(c)))


BAD_X = {
    "one point of shape (D,)": (np.array([0.0, 1.0]), "x must have 2 dimension"),
    "wrong last dimension": (np.zeros((4, 3)), "x must have last dimension 2"),
    "NaN": (np.array([[0.0, 1.0], [np.nan, 0.0]]), "x contains 1 NaN"),
    "inf": (np.array([[0.0, np.inf]]), "x contains 1 NaN or infinite"),
    "3-D batch": (np.zeros((2, 2, 2)), "x must have 2 dimension"),
}


@pytest.mark.parametrize("case", sorted(BAD_X))
@pytest.mark.parametrize("method", ["log_marginal", "posterior", "joint_log_prob", "elbo", "em_step", "fit_em"])
def test_gaussian_mixture_rejects_bad_x(case, method):
    x, match = BAD_X[case]
    model = gm()
    calls = {
        "log_marginal": lambda: model.log_marginal(x),
        "posterior": lambda: model.posterior(x),
        "joint_log_prob": lambda: model.joint_log_prob(x),
        "elbo": lambda: model.elbo(x, np.full((len(x), 3), 1 / 3)),
        "em_step": lambda: model.em_step(x),
        "fit_em": lambda: fit_em(model, x, n_iter=2),
    }
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        calls[method]()


def test_single_point_with_batch_axis_works():
    x = np.array([[0.5, -0.5]])
    np.testing.assert_allclose(gm().log_marginal(torch.tensor(x)).numpy(), scipy_log_marginal(x), rtol=1e-5)


# --- LatentGaussianModel ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def lgm():
    """A small untrained model, bent so that its density is a curved, fairly narrow ridge
    (stds between about 0.17 and 1): a harder target for the integrators than the default init."""
    return bent_latent_model(seed=1, hidden=32, std_bias=-1.0)


@pytest.fixture(scope="module")
def lgm_points(lgm):
    x, _ = lgm.sample(5, generator=torch.Generator().manual_seed(2))
    return torch.cat([x, torch.tensor([[1.5, 1.0]])])  # 5 typical points and one off the ridge


def decoder_params(model, z):
    d = model.decoder(z).base_dist
    return d.loc.double().numpy(), d.scale.double().numpy()


def log_normal_diag(x, loc, scale):
    """log N(x; loc, diag scale^2) by hand, summed over the last axis."""
    return np.sum(-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), axis=-1)


def test_quadrature_agrees_with_monte_carlo(lgm, lgm_points):
    n, seed = 200_000, 123
    log_mc = lgm.log_marginal_mc(lgm_points, n_samples=n, generator=torch.Generator().manual_seed(seed))
    log_quad = lgm.log_marginal_quadrature(lgm_points)
    assert log_mc.shape == log_quad.shape == (len(lgm_points),)
    # the Monte Carlo weights p(x | z_k), z_k ~ p(z), from the same stream, computed by hand
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))
    loc, scale = decoder_params(lgm, z)
    x = lgm_points.double().numpy()
    w = np.exp(log_normal_diag(x[:, None, :], loc[None], scale[None]))  # (N, n)
    p_hat = w.mean(1)
    se = w.std(1, ddof=1) / np.sqrt(n)  # standard error of the mean of the weights
    np.testing.assert_allclose(np.exp(log_mc.double().numpy()), p_hat, rtol=1e-4)  # same estimator
    p_quad = np.exp(log_quad.double().numpy())
    assert np.all(np.abs(p_quad - p_hat) < 4 * se), (p_quad, p_hat, se)
    # the comparison must be sharp enough to mean something: ~0.1% on the ridge, a few % off it
    assert np.median(se / p_hat) < 0.01 and np.all(se / p_hat < 0.1)


def test_quadrature_matches_scipy_quad(lgm, lgm_points):
    got = lgm.log_marginal_quadrature(lgm_points[:3]).double().numpy()
    for i, xi in enumerate(lgm_points[:3].double().numpy()):
        def integrand(z):
            loc, scale = decoder_params(lgm, torch.tensor([[z]], dtype=torch.float32))
            return stats.norm.pdf(z) * np.exp(log_normal_diag(xi, loc[0], scale[0]))
        value, _ = integrate.quad(integrand, -8, 8, limit=200, epsabs=0, epsrel=1e-8)
        assert got[i] == pytest.approx(np.log(value), abs=1e-4)


def test_quadrature_converges(lgm, lgm_points):
    coarse = lgm.log_marginal_quadrature(lgm_points, n_points=2000)
    fine = lgm.log_marginal_quadrature(lgm_points, n_points=8000)
    assert (coarse - fine).abs().max() < 1e-4
    shifted = lgm.log_marginal_quadrature(lgm_points, n_points=2000, generator=torch.Generator().manual_seed(0))
    assert (shifted - fine).abs().max() < 1e-4  # the stratified (randomly shifted) grid too


def test_density_integrates_to_one(lgm):
    # a box that holds (almost) all the mass: every centre mu(z), |z| <= 6, plus 7 stds
    loc, scale = decoder_params(lgm, torch.linspace(-6, 6, 2001)[:, None])
    lo = loc.min(0) - 7 * scale.max(0)
    hi = loc.max(0) + 7 * scale.max(0)
    h = scale.min(0) / 2  # the midpoint rule is very accurate on smooth bumps this well resolved
    n1, n2 = np.ceil((hi - lo) / h).astype(int)
    g1 = lo[0] + (np.arange(n1) + 0.5) * (hi[0] - lo[0]) / n1
    g2 = lo[1] + (np.arange(n2) + 0.5) * (hi[1] - lo[1]) / n2
    cell = (hi[0] - lo[0]) / n1 * (hi[1] - lo[1]) / n2
    grid = torch.tensor(np.stack(np.meshgrid(g1, g2), -1).reshape(-1, 2), dtype=torch.float32)
    total = sum(
        lgm.log_marginal_quadrature(chunk, n_points=1000).double().exp().sum().item()
        for chunk in grid.split(4096)
    ) * cell
    assert total == pytest.approx(1.0, abs=1e-2)


def test_quadrature_is_a_midpoint_rule(lgm, lgm_points):
    """With 1 point the midpoint rule evaluates p(x | z=0); with 2 points on [-2, 2] it averages
    p(x | z=-1) and p(x | z=1) (equal prior weights, by symmetry), all computed by hand."""
    x = lgm_points.double().numpy()
    loc, scale = decoder_params(lgm, torch.tensor([[0.0], [-1.0], [1.0]]))
    logs = log_normal_diag(x[:, None, :], loc[None], scale[None])  # (N, 3)
    one = lgm.log_marginal_quadrature(lgm_points, n_points=1).double().numpy()
    np.testing.assert_allclose(one, logs[:, 0], rtol=1e-5, atol=1e-5)
    two = lgm.log_marginal_quadrature(lgm_points, n_points=2, z_max=2.0).double().numpy()
    np.testing.assert_allclose(two, logsumexp(logs[:, 1:], axis=1) - np.log(2), rtol=1e-5, atol=1e-5)


def test_monte_carlo_estimate_by_hand(lgm, lgm_points):
    """log_marginal_mc is log((1/n) sum_k p(x | z_k)) for z_k the generator's first n normal draws."""
    for n in (1, 10, 1000):
        got = lgm.log_marginal_mc(lgm_points, n_samples=n, generator=torch.Generator().manual_seed(5))
        z = torch.randn(n, 1, generator=torch.Generator().manual_seed(5))
        loc, scale = decoder_params(lgm, z)
        x = lgm_points.double().numpy()
        expected = logsumexp(log_normal_diag(x[:, None, :], loc[None], scale[None]), axis=1) - np.log(n)
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=2e-5)


def test_quadrature_refuses_2d_latent():
    model = LatentGaussianModel(latent_dim=2)
    with pytest.raises(ValueError, match="latent_dim=2") as info:
        model.log_marginal_quadrature(torch.zeros(3, 2))
    assert "1-D latent" in str(info.value)
    assert "Monte Carlo" in str(info.value)


@pytest.mark.parametrize("kwargs, match", [({"n_points": 0}, "n_points"), ({"z_max": 0.0}, "z_max"),
                                           ({"z_max": -1.0}, "z_max")])
def test_quadrature_rejects_bad_arguments(lgm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lgm.log_marginal_quadrature(torch.zeros(2, 2), **kwargs)


@pytest.mark.parametrize("x, match", [
    (torch.zeros(2), "x must have 2 dimension"),
    (torch.zeros(3, 3), "x must have last dimension 2"),
    (torch.tensor([[0.0, float("nan")]]), "x contains"),
])
@pytest.mark.parametrize("method", ["log_marginal_quadrature", "log_marginal_mc"])
def test_latent_model_rejects_bad_x(lgm, x, match, method):
    with pytest.raises(ValueError, match=match):
        getattr(lgm, method)(x)


def test_mixture_from_latents_is_a_uniform_mixture(lgm, lgm_points):
    K = 7
    z = torch.randn(K, 1, generator=torch.Generator().manual_seed(9))
    mix = lgm.mixture_from_latents(z)
    assert isinstance(mix, D.MixtureSameFamily)
    assert mix.event_shape == (2,) and mix.batch_shape == ()
    torch.testing.assert_close(mix.mixture_distribution.probs, torch.full((K,), 1 / K))
    loc, scale = decoder_params(lgm, z)
    x = lgm_points.double().numpy()
    expected = logsumexp(log_normal_diag(x[:, None, :], loc[None], scale[None]), axis=1) - np.log(K)
    np.testing.assert_allclose(mix.log_prob(lgm_points).double().numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="z must have 2 dimension"):
        lgm.mixture_from_latents(torch.zeros(K))


def test_joint_log_prob_by_hand(lgm, lgm_points):
    z = torch.randn(len(lgm_points), 1)
    loc, scale = decoder_params(lgm, z)
    zn = z.double().numpy()
    expected = stats.norm.logpdf(zn[:, 0]) + log_normal_diag(lgm_points.double().numpy(), loc, scale)
    np.testing.assert_allclose(lgm.joint_log_prob(lgm_points, z).double().numpy(), expected, rtol=1e-5)


def test_latent_model_sample(lgm):
    n = 20_000
    x, z = lgm.sample(n, generator=torch.Generator().manual_seed(4))
    assert x.shape == (n, 2) and z.shape == (n, 1)
    assert x.dtype == z.dtype == torch.float32
    x2, z2 = lgm.sample(n, generator=torch.Generator().manual_seed(4))
    assert torch.equal(x, x2) and torch.equal(z, z2)
    # z ~ N(0, 1) and, given z, (x - mu(z)) / sigma(z) ~ N(0, I): check means and variances
    loc, scale = decoder_params(lgm, z)
    eps = (x.double().numpy() - loc) / scale
    for v in (z.double().numpy(), eps):
        assert np.all(np.abs(v.mean(0)) < N_SE / np.sqrt(n))
        assert np.all(np.abs(v.var(0) - 1) < N_SE * np.sqrt(2 / n))
    other = LatentGaussianModel(latent_dim=3, data_dim=5, hidden=8)
    xs, zs = other.sample(4)
    assert xs.shape == (4, 5) and zs.shape == (4, 3)
    with pytest.raises(ValueError, match="n must"):
        lgm.sample(0)


def test_prior_is_standard_normal():
    model = LatentGaussianModel(latent_dim=3)
    z = torch.randn(10, 3)
    np.testing.assert_allclose(model.prior.log_prob(z).numpy(), stats.norm.logpdf(z.numpy()).sum(1), rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"latent_dim": 0}, "latent_dim"), ({"data_dim": -1}, "data_dim"), ({"hidden": 0}, "hidden"),
    ({"min_std": 0.0}, "min_std"),
])
def test_latent_model_rejects_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LatentGaussianModel(**kwargs)


def test_decoder_std_stays_above_min_std():
    model = LatentGaussianModel(min_std=0.1)
    with torch.no_grad():
        model.decoder.net[-1].bias[2:] = -50.0  # softplus(-50) ~ 0
        scale = model.decoder(torch.randn(100, 1)).base_dist.scale
    assert (scale >= 0.1).all() and (scale < 0.1 + 1e-6).all()
    with pytest.raises(ValueError, match="z must have last dimension 1"):
        model.decoder(torch.zeros(3, 2))
