"""Latent1DModel: a 1-D latent with a saturating decoder, whose integrals run on a grid.

The reference is written here with scipy.stats.norm and numpy.tanh and integrated with
scipy.integrate.quad, over the whole real line and over the model's grid range [-z_max, z_max].
"""
import functools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import distributions as D

from vae_lesson import objectives
from vae_lesson.models import Latent1DModel

X_LECTURE = 1.2
_DEFAULT_GRID = Latent1DModel().z  # the range and points the model integrates over
ZMAX, NGRID = _DEFAULT_GRID[-1].item(), _DEFAULT_GRID.shape[0]
Q_GOOD = (2.0, math.sqrt(2.0))    # the lecture's q = N(2, variance 2)
Q_BAD = (-4.0, math.sqrt(0.75))   # the lecture's q = N(-4, variance 0.75)
PARAMS = [
    dict(),                                                    # the default: prior_std 3, a 2, c 2, noise 0.6
    dict(prior_std=1.5, a=-1.0, c=0.7, noise_std=0.4),
    dict(prior_std=2.0, a=3.0, c=1.0, noise_std=1.1),
]
XS = [-2.5, -1.0, 0.0, 0.5, 1.2, 2.4]
QS = [Q_GOOD, Q_BAD, (0.0, 1.0), (1.3, 0.4), (-1.0, 1.5), (3.5, 0.8), (2.0, 0.15), (-2.5, 1.2), (4.0, 0.5)]
KW = dict(epsabs=0.0, epsrel=1e-13, limit=500)


def ref_log_joint(z, x, prior_std=3.0, a=2.0, c=2.0, noise_std=0.6):
    return stats.norm.logpdf(z, 0.0, prior_std) + stats.norm.logpdf(x, a * np.tanh(z / c), noise_std)


def quad(f, lo, hi, points=()):
    """integral of f over [lo, hi] (possibly infinite), split at ``points`` for quad's sake."""
    cuts = [lo] + sorted(p for p in points if lo < p < hi) + [hi]
    return sum(integrate.quad(f, u, v, **KW)[0] for u, v in zip(cuts[:-1], cuts[1:]))


def ref_log_marginal(x, lo=-np.inf, hi=np.inf, **params):
    return _ref_log_marginal(x, lo, hi, tuple(sorted(params.items())))


@functools.lru_cache(maxsize=None)
def _ref_log_marginal(x, lo, hi, params):
    f = lambda z: math.exp(ref_log_joint(z, x, **dict(params)))  # noqa: E731
    return math.log(quad(f, lo, hi, points=(-1.0, 0.0, 1.0, 2.0)))


def ref_elbo(x, m, s, **params):
    """integral over the real line of q(z) [log p(x, z) - log q(z)], q = N(m, s^2)."""
    def f(z):
        lq = stats.norm.logpdf(z, m, s)
        return math.exp(lq) * (ref_log_joint(z, x, **params) - lq)
    return quad(f, -np.inf, np.inf, points=(m - 3 * s, m, m + 3 * s))


def ref_kl(x, m, s, log_px, **params):
    """integral of q(z) [log q(z) - log p(x, z) + log p(x)]."""
    def f(z):
        lq = stats.norm.logpdf(z, m, s)
        return math.exp(lq) * (lq - ref_log_joint(z, x, **params))
    return quad(f, -np.inf, np.inf, points=(m - 3 * s, m, m + 3 * s)) + log_px


# --- densities --------------------------------------------------------------------------------

@pytest.mark.parametrize("params", PARAMS, ids=["default", "p1", "p2"])
def test_prior_decoder_and_joint_match_scipy(params):
    model = Latent1DModel(**params)
    p = dict(prior_std=3.0, a=2.0, c=2.0, noise_std=0.6) | params
    z = np.linspace(-6, 6, 25).reshape(5, 5)
    zt = torch.tensor(z)
    np.testing.assert_allclose(model.prior.log_prob(zt).numpy(), stats.norm.logpdf(z, 0, p["prior_std"]), rtol=1e-13)
    dec = model.decoder(zt)
    np.testing.assert_allclose(dec.mean.numpy(), p["a"] * np.tanh(z / p["c"]), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dec.stddev.numpy(), p["noise_std"])
    got = model.joint_log_prob(0.7, zt)
    assert got.shape == (5, 5) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref_log_joint(z, 0.7, **p), rtol=1e-12)


@pytest.mark.parametrize("params", PARAMS, ids=["default", "p1", "p2"])
@pytest.mark.parametrize("x", XS)
def test_log_marginal_matches_quad_over_the_grid_range(params, x):
    """The trapezoid rule on the model's grid reproduces quad's integral over the same range."""
    got = Latent1DModel(**params).log_marginal(x)
    assert isinstance(got, float)
    assert got == pytest.approx(ref_log_marginal(x, -ZMAX, ZMAX, **params), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("x", XS)
def test_log_marginal_matches_quad_over_the_real_line_to_1e6(x):
    assert Latent1DModel().log_marginal(x) == pytest.approx(ref_log_marginal(x), abs=5e-6)


def test_log_marginal_matches_quad_over_the_real_line_to_1e8():
    assert Latent1DModel().log_marginal(X_LECTURE) == pytest.approx(ref_log_marginal(X_LECTURE), rel=1e-8, abs=0)


def test_a_wider_grid_matches_the_real_line_to_1e8():
    """A grid of +-30 at the same spacing also agrees with quad over the real line to 1e-8."""
    model = Latent1DModel(z_max=30.0, n_grid=60001)
    for x in (X_LECTURE, -2.5, 2.4):
        assert model.log_marginal(x) == pytest.approx(ref_log_marginal(x), rel=1e-8, abs=0)


@pytest.mark.parametrize("x", [X_LECTURE, -2.5])
def test_posterior_is_joint_over_marginal_and_integrates_to_one(x):
    model = Latent1DModel()
    z = np.linspace(-8, 8, 33)
    log_px = ref_log_marginal(x, -ZMAX, ZMAX)
    got = model.posterior_log_prob(x, torch.tensor(z))
    np.testing.assert_allclose(got.numpy(), ref_log_joint(z, x) - log_px, rtol=1e-10, atol=1e-10)
    mass = quad(lambda v: model.posterior_log_prob(x, torch.tensor(v, dtype=torch.float64)).exp().item(),
                -ZMAX, ZMAX, points=(-1.0, 0.0, 1.0, 2.0))
    assert mass == pytest.approx(1.0, abs=1e-9)
    grid = np.linspace(-ZMAX, ZMAX, NGRID)  # and on the model's own grid, with NumPy's trapezoid rule
    assert np.trapezoid(np.exp(model.posterior_log_prob(x, torch.tensor(grid)).numpy()), grid) == pytest.approx(
        1.0, abs=1e-12)


def test_posterior_is_not_gaussian():
    """The saturating decoder skews p(z | x): its skewness (on a grid) is clearly non-zero."""
    model = Latent1DModel()
    z = np.linspace(-ZMAX, ZMAX, NGRID)
    p = np.exp(model.posterior_log_prob(X_LECTURE, torch.tensor(z)).numpy())
    mean = np.trapezoid(z * p, z)
    var = np.trapezoid((z - mean) ** 2 * p, z)
    skew = np.trapezoid((z - mean) ** 3 * p, z) / var**1.5
    assert abs(skew) > 0.3, skew


# --- ELBO and KL ------------------------------------------------------------------------------

@pytest.mark.parametrize("q", QS, ids=str)
def test_elbo_matches_quad(q):
    assert Latent1DModel().elbo(X_LECTURE, *q) == pytest.approx(ref_elbo(X_LECTURE, *q), rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("q", QS, ids=str)
def test_kl_to_posterior_matches_quad(q):
    model = Latent1DModel()
    # with log p(x) over the model's grid range (its definition of p(x)) to 1e-8 ...
    expected = ref_kl(X_LECTURE, *q, ref_log_marginal(X_LECTURE, -ZMAX, ZMAX))
    assert model.kl_to_posterior(X_LECTURE, *q) == pytest.approx(expected, rel=1e-8, abs=1e-8)
    # ... and with the real line's p(x)
    assert model.kl_to_posterior(X_LECTURE, *q) == pytest.approx(
        ref_kl(X_LECTURE, *q, ref_log_marginal(X_LECTURE)), abs=1e-6)


@pytest.mark.parametrize("params", PARAMS, ids=["default", "p1", "p2"])
def test_log_marginal_is_elbo_plus_kl(params):
    model = Latent1DModel(**params)
    rng = np.random.default_rng(4)
    qs = QS + [(m, s) for m, s in zip(rng.uniform(-4, 4, 12), rng.uniform(0.1, 1.5, 12))]
    for x in (X_LECTURE, -0.8, 2.0):
        log_px = model.log_marginal(x)
        for m, s in qs:
            elbo, kl = model.elbo(x, m, s), model.kl_to_posterior(x, m, s)
            assert elbo + kl == pytest.approx(log_px, abs=1e-8), (x, m, s)
            assert kl >= 0 and elbo <= log_px


@pytest.mark.parametrize("q", [(0.0, 4.0), (8.0, 4.0), (5.0, 2.5)], ids=str)
def test_log_marginal_is_elbo_plus_kl_for_wide_q(q):
    model = Latent1DModel()
    assert model.elbo(X_LECTURE, *q) + model.kl_to_posterior(X_LECTURE, *q) == pytest.approx(
        model.log_marginal(X_LECTURE), abs=1e-8)


def test_kl_is_positive_and_never_zero():
    """No Gaussian q is the (skewed) posterior: over a grid of (mean, std) around it, KL stays > 0.01."""
    model = Latent1DModel()
    kls = np.array([[model.kl_to_posterior(X_LECTURE, m, s) for s in np.linspace(0.5, 3.0, 11)]
                    for m in np.linspace(0.0, 3.0, 13)])
    assert kls.min() > 0.01, kls.min()
    assert kls.min() < 0.5  # and the grid does come close to the posterior


def test_lecture_q_near_the_posterior_beats_the_far_one():
    model = Latent1DModel()
    good, bad = model.elbo(X_LECTURE, *Q_GOOD), model.elbo(X_LECTURE, *Q_BAD)
    assert good > bad + 5  # about -1.73 against -15.4
    assert good == pytest.approx(ref_elbo(X_LECTURE, *Q_GOOD), abs=1e-8)
    assert bad == pytest.approx(ref_elbo(X_LECTURE, *Q_BAD), abs=1e-8)
    assert model.kl_to_posterior(X_LECTURE, *Q_GOOD) < model.kl_to_posterior(X_LECTURE, *Q_BAD)


@pytest.mark.parametrize("q", [Q_GOOD, Q_BAD, (0.5, 2.0)], ids=str)
def test_monte_carlo_elbo_agrees_with_the_grid(q):
    model = Latent1DModel()
    torch.manual_seed(7)
    dist = D.Normal(torch.tensor(q[0], dtype=torch.float64), torch.tensor(q[1], dtype=torch.float64))
    value, se = objectives.elbo_monte_carlo(lambda z: model.joint_log_prob(X_LECTURE, z), dist, 20_000)
    assert value.shape == () and se.shape == ()
    exact = model.elbo(X_LECTURE, *q)
    assert abs(value.item() - exact) < 4 * se.item(), (value.item(), exact, se.item())
    assert 4 * se.item() < 0.15  # a tight comparison (ELBOs here differ by several nats)


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(prior_std=0.0), "prior_std"),
    (dict(prior_std=-1.0), "prior_std"),
    (dict(prior_std=float("nan")), "prior_std"),
    (dict(noise_std=0.0), "noise_std"),
    (dict(c=-2.0), "c"),
    (dict(z_max=0.0), "z_max"),
    (dict(z_max=float("inf")), "z_max"),
    (dict(n_grid=0), "n_grid"),
    (dict(n_grid=100.5), "n_grid"),
])
def test_rejects_bad_construction(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        Latent1DModel(**kwargs)


@pytest.mark.parametrize("method", ["elbo", "kl_to_posterior"])
@pytest.mark.parametrize("q_std", [0.0, -1.0, float("nan"), float("inf")])
def test_rejects_bad_q_std(method, q_std):
    with pytest.raises(ValueError, match="^q_std must"):
        getattr(Latent1DModel(), method)(X_LECTURE, 0.0, q_std)
