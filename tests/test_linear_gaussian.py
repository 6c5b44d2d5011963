"""LinearGaussianModel (probabilistic PCA): every closed form against an independent computation.

The "truth" here is float64 NumPy/SciPy: the marginal N(b, W W^T + sigma^2 I) with
scipy.stats.multivariate_normal, brute-force integration over a 1-D latent with scipy.integrate.quad,
the posterior by conditioning the joint Gaussian of (z, x) (Sigma_zx Sigma_xx^{-1}: a different
algebraic route from the model's M^{-1} W^T), and Monte Carlo with tolerances from standard errors.
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import distributions as D

from vae_lesson.models import LinearGaussianModel

N_SE = 4.0  # Monte Carlo tolerance, in standard errors

# A known model: D = 4, d = 2 (NumPy float64, the "truth" for every test below).
_rng = np.random.default_rng(7)
W2 = _rng.normal(size=(4, 2))
B2 = _rng.normal(size=4)
SIGMA2 = np.float64(0.6)
X2 = np.array([[0.3, -1.0, 2.0, 0.5], [1.5, 0.2, -0.7, -2.0], [0.0, 0.0, 0.0, 0.0], [4.0, -3.0, 1.0, 2.5]])

# ... and one with a 1-D latent, for brute-force integration over z: D = 3, d = 1.
W1 = np.array([[1.2], [-0.5], [0.8]])
B1 = np.array([0.3, -0.2, 1.0])
SIGMA1 = np.float64(0.7)
X1 = np.array([[1.0, 0.0, 2.0], [-1.5, 0.9, -0.4], [3.0, -1.0, 3.5]])


def model2() -> LinearGaussianModel:
    return LinearGaussianModel(torch.tensor(W2), torch.tensor(B2), SIGMA2)


def model1() -> LinearGaussianModel:
    return LinearGaussianModel(torch.tensor(W1), torch.tensor(B1), SIGMA1)


def t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def scipy_log_marginal(x, W, b, sigma):
    cov = W @ W.T + sigma**2 * np.eye(len(b))
    return np.atleast_1d(stats.multivariate_normal(b, cov).logpdf(x))


def conditioned_posterior(x, W, b, sigma):
    """p(z | x) from the joint Gaussian of (z, x): Sigma_zz = I, Sigma_zx = W^T, Sigma_xx = W W^T + sigma^2 I.
    mean_n = Sigma_zx Sigma_xx^{-1} (x_n - b), cov = I - Sigma_zx Sigma_xx^{-1} Sigma_xz."""
    d = W.shape[1]
    s_xx = W @ W.T + sigma**2 * np.eye(len(b))
    gain = np.linalg.solve(s_xx, W).T  # Sigma_zx Sigma_xx^{-1} (s_xx is symmetric)
    return (x - b) @ gain.T, np.eye(d) - gain @ W


def log_joint_1d(z, x_row, W, b, sigma):
    """log p(z) + log p(x | z) for scalar z (1-D latent), with scipy.stats.norm."""
    return stats.norm.logpdf(z) + stats.norm.logpdf(x_row, W[:, 0] * z + b, sigma).sum()


def quad_log_marginal_1d(x_row, W, b, sigma):
    """log integral p(z) p(x | z) dz by adaptive quadrature over the whole real line, scaled by the
    integrand's value at its peak (located on a dense grid) so nothing underflows."""
    grid = np.linspace(-10, 10, 20001)
    vals = np.array([log_joint_1d(z, x_row, W, b, sigma) for z in grid[::50]])
    zc = grid[::50][vals.argmax()]
    top = log_joint_1d(zc, x_row, W, b, sigma)
    f = lambda z: math.exp(log_joint_1d(z, x_row, W, b, sigma) - top)  # noqa: E731
    kw = dict(epsabs=0.0, epsrel=1e-13, limit=200)
    left, _ = integrate.quad(f, -np.inf, zc, **kw)
    right, _ = integrate.quad(f, zc, np.inf, **kw)
    return top + math.log(left + right)


def random_gaussian_q(rng, n, d, spread=1.0):
    mean = rng.normal(scale=spread, size=(n, d))
    A = rng.normal(size=(n, d, d))
    cov = A @ A.transpose(0, 2, 1) / d + 0.2 * np.eye(d)
    return mean, cov


# --- the marginal -----------------------------------------------------------------------------

def test_log_marginal_matches_scipy():
    got = model2().log_marginal(t(X2))
    assert got.shape == (len(X2),) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), scipy_log_marginal(X2, W2, B2, SIGMA2), rtol=1e-12, atol=1e-12)


def test_log_marginal_matches_brute_force_integration_over_z():
    got = model1().log_marginal(t(X1)).numpy()
    expected = np.array([quad_log_marginal_1d(x, W1, B1, SIGMA1) for x in X1])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)


def test_brute_force_helper_is_right():
    """The quadrature helper agrees with the closed-form Gaussian marginal (so the test above means something)."""
    expected = scipy_log_marginal(X1, W1, B1, SIGMA1)
    got = [quad_log_marginal_1d(x, W1, B1, SIGMA1) for x in X1]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_marginal_distribution():
    marg = model2().marginal()
    np.testing.assert_allclose(marg.mean.numpy(), B2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(marg.covariance_matrix.numpy(), W2 @ W2.T + SIGMA2**2 * np.eye(4), rtol=1e-12)


def test_float32_and_numpy_inputs_are_computed_in_float64():
    m = LinearGaussianModel(W2.astype(np.float32), B2.astype(np.float32), np.float32(SIGMA2))
    assert m.W.dtype == m.b.dtype == m.sigma.dtype == torch.float64
    got = m.log_marginal(X2.astype(np.float32))
    assert got.dtype == torch.float64
    expected = scipy_log_marginal(X2.astype(np.float32).astype(np.float64), W2.astype(np.float32).astype(np.float64),
                                  B2.astype(np.float32).astype(np.float64), float(np.float32(SIGMA2)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


# --- the posterior ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["d2", "d1"])
def test_posterior_is_the_conditioned_joint_gaussian(which):
    W, b, s, x, model = (W2, B2, SIGMA2, X2, model2()) if which == "d2" else (W1, B1, SIGMA1, X1, model1())
    post = model.posterior(t(x))
    d = W.shape[1]
    assert isinstance(post, D.MultivariateNormal)
    assert post.batch_shape == (len(x),) and post.event_shape == (d,)
    mean, cov = conditioned_posterior(x, W, b, s)
    np.testing.assert_allclose(post.mean.numpy(), mean, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(post.covariance_matrix.numpy(), np.broadcast_to(cov, (len(x), d, d)),
                               rtol=1e-11, atol=1e-12)


def test_posterior_density_is_joint_over_marginal_by_integration():
    """1-D latent: p(z | x) = p(x, z) / p(x), with p(x) by quadrature, at many z; and it integrates to 1."""
    post = model1().posterior(t(X1))
    zs = np.linspace(-3, 3, 13)
    for n, x in enumerate(X1):
        log_px = quad_log_marginal_1d(x, W1, B1, SIGMA1)
        expected = np.array([log_joint_1d(z, x, W1, B1, SIGMA1) for z in zs]) - log_px
        got = np.array([post.log_prob(t([[z]] * len(X1)))[n].item() for z in zs])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)

        def density(z, n=n):
            return post.log_prob(t([[z]] * len(X1)))[n].exp().item()

        mu = post.mean[n, 0].item()
        mass = sum(integrate.quad(density, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
                   for lo, hi in ((-np.inf, mu), (mu, np.inf)))
        assert mass == pytest.approx(1.0, abs=1e-10)


# --- log_likelihood and joint_log_prob --------------------------------------------------------

def scipy_log_lik(x, z, W, b, sigma):
    """log N(x; W z + b, sigma^2 I) with numpy broadcasting of x (..., D) against z (..., d)."""
    return stats.norm.logpdf(x, z @ W.T + b, sigma).sum(-1)


@pytest.mark.parametrize("z_shape, n, expected_shape", [
    ((5, 4, 2), 4, (5, 4)),     # z (S, N, d) -> (S, N)
    ((2,), 4, (4,)),            # z (d,) -> (N,)
    ((6, 2), 1, (6,)),          # z (S, d) with N = 1 -> (S,)
    ((3, 1, 2), 4, (3, 4)),     # z (S, 1, d) broadcast against N points -> (S, N)
])
def test_log_likelihood_shapes_and_values(z_shape, n, expected_shape):
    rng = np.random.default_rng(11)
    z = rng.normal(scale=1.5, size=z_shape)
    x = X2[:n]
    model = model2()
    got = model.log_likelihood(t(x), t(z))
    assert got.shape == expected_shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), scipy_log_lik(x, z, W2, B2, SIGMA2), rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(got, model.decoder(t(z)).log_prob(t(x)), rtol=1e-11, atol=1e-11)


def test_log_likelihood_accepts_float32_z():
    z = np.random.default_rng(1).normal(size=(7, 4, 2)).astype(np.float32)
    got = model2().log_likelihood(t(X2), torch.tensor(z))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), scipy_log_lik(X2, z.astype(np.float64), W2, B2, SIGMA2), rtol=1e-11)


def test_joint_log_prob_is_prior_plus_likelihood():
    rng = np.random.default_rng(12)
    z = rng.normal(size=(5, 4, 2))
    got = model2().joint_log_prob(t(X2), t(z))
    expected = stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z) + scipy_log_lik(X2, z, W2, B2, SIGMA2)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-11, atol=1e-11)


def test_prior_and_decoder():
    model = model2()
    prior = model.prior
    assert prior.event_shape == (2,) and prior.mean.dtype == torch.float64
    np.testing.assert_allclose(prior.covariance_matrix.numpy(), np.eye(2))
    z = np.array([[0.5, -1.0], [2.0, 0.3]])
    dec = model.decoder(t(z))
    assert dec.event_shape == (4,) and dec.batch_shape == (2,)
    np.testing.assert_allclose(dec.mean.numpy(), z @ W2.T + B2, rtol=1e-12)
    np.testing.assert_allclose(dec.stddev.numpy(), np.full((2, 4), SIGMA2))
    assert model.data_dim == 4 and model.latent_dim == 2


# --- expected log-likelihood and the ELBO ------------------------------------------------------

def _mc_terms(x, mean, cov, n_samples, seed):
    """Per-sample log p(x_n | z) and log p(x_n, z) - log q_n(z), z ~ q_n, with NumPy sampling and scipy densities."""
    rng = np.random.default_rng(seed)
    lik, elbo = [], []
    for n in range(len(x)):
        z = rng.multivariate_normal(mean[n], cov[n], size=n_samples)
        ll = scipy_log_lik(x[n], z, W2, B2, SIGMA2)
        lp = stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
        lq = stats.multivariate_normal(mean[n], cov[n]).logpdf(z)
        lik.append(ll)
        elbo.append(ll + lp - lq)
    return np.array(lik), np.array(elbo)  # (N, S)


def test_expected_log_likelihood_and_elbo_agree_with_monte_carlo():
    mean, cov = random_gaussian_q(np.random.default_rng(3), len(X2), 2)
    model = model2()
    ell = model.expected_log_likelihood(t(X2), t(mean), t(cov)).numpy()
    elbo = model.elbo(t(X2), t(mean), t(cov)).numpy()
    assert ell.shape == elbo.shape == (len(X2),)
    lik, terms = _mc_terms(X2, mean, cov, n_samples=20_000, seed=4)
    # the comparisons have teeth: a formula without the trace term tr(W S W^T) / (2 sigma^2) (for
    # E_q log p(x|z)), or without the KL term (for the ELBO), would be off by more than the tolerance
    trace_term = np.array([np.trace(W2 @ S @ W2.T) for S in cov]) / (2 * SIGMA2**2)
    kl_term = ell - elbo
    for mc, exact, slip in ((lik, ell, trace_term), (terms, elbo, kl_term)):
        se = mc.std(1, ddof=1) / math.sqrt(mc.shape[1])
        assert np.all(np.abs(mc.mean(1) - exact) < N_SE * se), (mc.mean(1), exact, se)
        assert np.all(2 * N_SE * se < slip), (se, slip)


def test_expected_log_likelihood_closed_form_by_hand():
    """-D/2 log(2 pi sigma^2) - (||x - W m - b||^2 + tr(W S W^T)) / (2 sigma^2), written out in NumPy."""
    mean, cov = random_gaussian_q(np.random.default_rng(5), len(X2), 2)
    resid = X2 - mean @ W2.T - B2
    trace = np.array([np.trace(W2 @ S @ W2.T) for S in cov])
    expected = -0.5 * 4 * np.log(2 * np.pi * SIGMA2**2) - ((resid**2).sum(1) + trace) / (2 * SIGMA2**2)
    got = model2().expected_log_likelihood(t(X2), t(mean), t(cov)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_log_marginal_is_elbo_plus_kl_to_posterior(seed):
    """log p(x) = ELBO(q) + KL(q || p(z|x)) for any Gaussian q; posterior and log p(x) built independently."""
    mean, cov = random_gaussian_q(np.random.default_rng(100 + seed), len(X2), 2, spread=2.0)
    elbo = model2().elbo(t(X2), t(mean), t(cov))
    pm, pc = conditioned_posterior(X2, W2, B2, SIGMA2)
    posterior = D.MultivariateNormal(t(pm), covariance_matrix=t(np.broadcast_to(pc, (len(X2), 2, 2)).copy()))
    kl = D.kl_divergence(D.MultivariateNormal(t(mean), covariance_matrix=t(cov)), posterior)
    log_px = scipy_log_marginal(X2, W2, B2, SIGMA2)
    np.testing.assert_allclose((elbo + kl).numpy(), log_px, rtol=0, atol=1e-10)
    assert np.all(elbo.numpy() < log_px)  # a q away from the posterior: a strict bound
    assert np.all(kl.numpy() > 1e-3)


def test_elbo_is_tight_at_the_posterior():
    pm, pc = conditioned_posterior(X2, W2, B2, SIGMA2)
    log_px = scipy_log_marginal(X2, W2, B2, SIGMA2)
    # per-point (N, d, d) covariance and the shared (d, d) one (broadcast to every point)
    for cov in (np.broadcast_to(pc, (len(X2), 2, 2)).copy(), pc):
        np.testing.assert_allclose(model2().elbo(t(X2), t(pm), t(cov)).numpy(), log_px, rtol=0, atol=1e-10)


def test_elbo_is_below_log_marginal_for_nearby_q():
    """Small perturbations of the posterior (mean or covariance) give a strictly smaller ELBO."""
    pm, pc = conditioned_posterior(X2, W2, B2, SIGMA2)
    log_px = scipy_log_marginal(X2, W2, B2, SIGMA2)
    model = model2()
    for mean, cov in ((pm + 0.01, pc), (pm, 1.05 * pc), (pm, 0.95 * pc)):
        elbo = model.elbo(t(X2), t(mean), t(cov)).numpy()
        assert np.all(elbo < log_px - 1e-6), (elbo - log_px)


def test_elbo_accepts_a_shared_q_mean():
    """q_mean (d,) and q_cov (d, d) mean one q for every point."""
    model = model2()
    m, S = np.array([0.2, -0.4]), np.array([[0.5, 0.1], [0.1, 0.3]])
    shared = model.elbo(t(X2), t(m), t(S))
    per_point = model.elbo(t(X2), t(np.tile(m, (4, 1))), t(np.tile(S, (4, 1, 1))))
    torch.testing.assert_close(shared, per_point, rtol=1e-14, atol=1e-14)


# --- sampling ---------------------------------------------------------------------------------

def test_sample_moments_match_the_marginal():
    n = 200_000
    x, z = model2().sample(n, generator=torch.Generator().manual_seed(5))
    assert x.shape == (n, 4) and z.shape == (n, 2) and x.dtype == z.dtype == torch.float64
    x, z = x.numpy(), z.numpy()
    cov = W2 @ W2.T + SIGMA2**2 * np.eye(4)
    assert np.all(np.abs(x.mean(0) - B2) < N_SE * np.sqrt(np.diag(cov) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)  # Gaussian: Var(x_i x_j)
    assert np.all(np.abs(np.cov(x.T) - cov) < N_SE * se_cov), (np.cov(x.T), cov)
    # z is standard normal, and x - W z - b is independent noise of std sigma
    assert np.all(np.abs(z.mean(0)) < N_SE / math.sqrt(n))
    noise = x - z @ W2.T - B2
    assert np.all(np.abs(noise.std(0) - SIGMA2) < N_SE * SIGMA2 / math.sqrt(2 * n))
    assert np.all(np.abs(np.corrcoef(noise.T, z.T)[:4, 4:]) < N_SE / math.sqrt(n))


def test_sample_is_reproducible_with_a_generator():
    a = model2().sample(50, generator=torch.Generator().manual_seed(3))
    b = model2().sample(50, generator=torch.Generator().manual_seed(3))
    c = model2().sample(50, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize("n", [0, -2, 1.5])
def test_sample_rejects_bad_n(n):
    with pytest.raises(ValueError, match="^n must"):
        model2().sample(n)


# --- random() ---------------------------------------------------------------------------------

def test_random_is_seeded_and_scaled():
    a = LinearGaussianModel.random(data_dim=30, latent_dim=3, sigma=0.4, seed=2, scale=2.0)
    b = LinearGaussianModel.random(data_dim=30, latent_dim=3, sigma=0.4, seed=2, scale=2.0)
    c = LinearGaussianModel.random(data_dim=30, latent_dim=3, sigma=0.4, seed=3, scale=2.0)
    assert a.W.shape == (30, 3) and a.b.shape == (30,) and a.sigma.item() == pytest.approx(0.4, rel=1e-6)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b) and not torch.equal(a.W, c.W)
    # W ~ N(0, scale^2): the sample std of 90 entries is within a few SE of 2
    assert abs(a.W.std().item() - 2.0) < N_SE * 2.0 / math.sqrt(2 * 90)


@pytest.mark.parametrize("kwargs, name", [
    (dict(data_dim=0, latent_dim=1, sigma=0.5), "data_dim"),
    (dict(data_dim=-3, latent_dim=1, sigma=0.5), "data_dim"),
    (dict(data_dim=2.0, latent_dim=1, sigma=0.5), "data_dim"),
    (dict(data_dim=4, latent_dim=0, sigma=0.5), "latent_dim"),
    (dict(data_dim=4, latent_dim=True, sigma=0.5), "latent_dim"),
    (dict(data_dim=4, latent_dim=1, sigma=0.0), "sigma"),
    (dict(data_dim=4, latent_dim=1, sigma=-1.0), "sigma"),
])
def test_random_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        LinearGaussianModel.random(**kwargs)


# --- bad input --------------------------------------------------------------------------------

def _construct(W=W2, b=B2, sigma=SIGMA2):
    return lambda: LinearGaussianModel(W, b, sigma)


def _call(method, *args):
    return lambda: getattr(model2(), method)(*args)


GOOD_MEAN, GOOD_COV = np.zeros((4, 2)), np.tile(np.eye(2), (4, 1, 1))
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])  # symmetric, eigenvalues 3 and -1

BAD_INPUTS = [
    ("sigma zero", _construct(sigma=0.0), "sigma"),
    ("sigma negative", _construct(sigma=-0.5), "sigma"),
    ("sigma NaN", _construct(sigma=float("nan")), "sigma"),
    ("sigma vector", _construct(sigma=[0.5, 0.5]), "sigma"),
    ("W 1-D", _construct(W=W2[:, 0]), "W"),
    ("W 3-D", _construct(W=W2[None]), "W"),
    ("W NaN", _construct(W=np.where(np.eye(4, 2) > 0, np.nan, W2)), "W"),
    ("b wrong length", _construct(b=B2[:3]), "b"),
    ("b 2-D", _construct(b=B2[None]), "b"),
    ("x wrong last dim", _call("log_marginal", X2[:, :3]), "x"),
    ("x 1-D", _call("log_marginal", X2[0]), "x"),
    ("x NaN", _call("posterior", np.where(np.eye(4) > 0, np.nan, X2)), "x"),
    ("x wrong dim in log_likelihood", _call("log_likelihood", X2[:, :3], np.zeros(2)), "x"),
    ("z wrong last dim", _call("log_likelihood", X2, np.zeros((5, 3))), "z"),
    ("q_cov not positive definite", _call("elbo", X2, GOOD_MEAN, np.tile(NOT_PD, (4, 1, 1))), "q_cov"),
    ("q_cov zero", _call("elbo", X2, GOOD_MEAN, np.zeros((2, 2))), "q_cov"),
    ("q_cov wrong shape", _call("elbo", X2, GOOD_MEAN, np.eye(3)), "q_cov"),
    ("q_mean wrong N", _call("elbo", X2, np.zeros((3, 2)), GOOD_COV), "q_mean"),
    ("q_mean wrong d", _call("expected_log_likelihood", X2, np.zeros((4, 3)), GOOD_COV), "q_mean"),
    ("q_mean NaN", _call("elbo", X2, np.full((4, 2), np.nan), GOOD_COV), "q_mean"),
]


@pytest.mark.parametrize("case, fn, name", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_value_error_naming_the_argument(case, fn, name):
    with pytest.raises(ValueError) as info:
        fn()
    assert str(info.value).startswith(f"{name} "), str(info.value)


def test_non_numeric_input_raises_type_error():
    with pytest.raises(TypeError, match="^W "):
        LinearGaussianModel("not a matrix", B2, SIGMA2)


# --- float64 all the way: Python numbers and lists ----------------------------------------------

# Python floats and lists must go straight to float64 (not through torch's float32 default).
@pytest.mark.parametrize("case", ["sigma float", "random sigma", "W and b lists", "x list"])
def test_python_numbers_keep_float64_precision(case):
    exact = model2()  # built from float64 NumPy values: the model we mean
    if case == "sigma float":
        assert LinearGaussianModel(W2, B2, 0.6).sigma.item() == 0.6
    elif case == "random sigma":
        assert LinearGaussianModel.random(data_dim=5, latent_dim=1, sigma=0.3).sigma.item() == 0.3
    elif case == "W and b lists":
        m = LinearGaussianModel(W2.tolist(), B2.tolist(), SIGMA2)
        np.testing.assert_array_equal(m.W.numpy(), W2)
        np.testing.assert_array_equal(m.b.numpy(), B2)
    else:
        point = [[0.1, -0.3, 0.7, 1.1]]
        torch.testing.assert_close(exact.log_marginal(point), exact.log_marginal(np.array(point)),
                                   rtol=1e-12, atol=1e-12)
