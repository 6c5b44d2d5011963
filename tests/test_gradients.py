"""Gradient estimators of d/dphi E_q[f(z)] (vae_lesson.gradients): score function (REINFORCE, with
and without a leave-one-out baseline), pathwise (reparameterization), their categorical versions
(REINFORCE and Gumbel-softmax) and fitting a Gaussian q with either.

Expected values are computed here independently of the package: gradients of Gaussian expectations
in closed form, the exact variances (and 4th central moments) of the single-sample estimators by
numerical integration (scipy.integrate.quad) of the estimators written out by hand, the categorical
gradient by enumeration, per-sample estimates from the same random numbers (a generator seeded
identically) with hand-written formulas or autograd one sample at a time, and the best
diagonal-Gaussian ELBO of probabilistic PCA in closed form. Monte Carlo comparisons use tolerances
in standard errors (N_SE).
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vae_lesson import gradients as G
from vae_lesson.models import LinearGaussianModel
from vae_lesson.variational import optimal_diagonal_q

N_SE = 4.0  # tolerance for Monte Carlo comparisons, in standard errors
F64 = torch.float64


def t(a):
    return torch.tensor(a, dtype=F64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- the test functions f(z), (S, d) -> (S,), with their closed forms --------------------------------
# name -> (f, f' per coordinate (elementwise), d/dmu E[f], d/dsigma E[f]) for q = N(mu, diag sigma^2)
#   E[sum z]       = sum mu                      -> d/dmu = 1,            d/dsigma = 0
#   E[sum z^2]     = sum mu^2 + sigma^2          -> d/dmu = 2 mu,         d/dsigma = 2 sigma
#   E[sum (z-a)^2] = sum (mu - a)^2 + sigma^2    -> d/dmu = 2 (mu - a),   d/dsigma = 2 sigma

def cases(a):
    return {
        "z": (lambda z: z.sum(-1), lambda z: np.ones_like(z),
              lambda mu, s: torch.ones_like(mu), lambda mu, s: torch.zeros_like(s)),
        "z^2": (lambda z: (z**2).sum(-1), lambda z: 2 * z,
                lambda mu, s: 2 * mu, lambda mu, s: 2 * s),
        "(z-a)^2": (lambda z: ((z - a) ** 2).sum(-1), lambda z: 2 * (z - np.asarray(a)),
                    lambda mu, s: 2 * (mu - a), lambda mu, s: 2 * s),
    }


MU1, SIGMA1, A1 = 0.7, 1.3, -1.5  # the 1-D q and shift
MU5 = t([0.5, -1.0, 2.0, 0.0, 1.5])  # the 5-D q: per-coordinate mean and std
SIGMA5 = t([0.3, 1.0, 2.0, 0.7, 1.2])
A5 = t([1.0, 0.0, -1.0, 2.0, 0.5])


def estimates(estimator, f, mu, sigma, n, seed):
    if estimator == "score":
        return G.score_function_samples(f, mu, sigma, n, generator=gen(seed))
    return G.pathwise_samples(f, mu, sigma, n, generator=gen(seed))


def assert_unbiased(est, exact, what=""):
    """Each coordinate of the mean of (S, d) iid estimates within N_SE standard errors of ``exact``."""
    n = est.shape[0]
    mean, se = est.mean(0), est.std(0) / math.sqrt(n)
    gap = (mean - exact).abs()
    assert (gap <= N_SE * se + 1e-12).all(), f"{what}: mean {mean}, exact {exact}, se {se}"


# --- unbiasedness against closed forms ------------------------------------------------------------------

@pytest.mark.parametrize("estimator", ["score", "pathwise"])
@pytest.mark.parametrize("name", ["z", "z^2", "(z-a)^2"])
@pytest.mark.parametrize("dim", [1, 5])
def test_gaussian_estimators_are_unbiased(estimator, name, dim):
    if dim == 1:
        mu, sigma, a = t([MU1]), t([SIGMA1]), t([A1])
    else:
        mu, sigma, a = MU5, SIGMA5, A5
    f, _, d_mu, d_sigma = cases(a)[name]
    g_mu, g_sigma = estimates(estimator, f, mu, sigma, 100_000, seed=11)
    assert g_mu.shape == g_sigma.shape == (100_000, dim)
    assert g_mu.dtype == g_sigma.dtype == F64
    assert_unbiased(g_mu, d_mu(mu, sigma), f"{estimator} d/dmu, f = {name}")
    assert_unbiased(g_sigma, d_sigma(mu, sigma), f"{estimator} d/dsigma, f = {name}")


def test_unbiasedness_test_can_fail():
    """The tolerance is tight enough to see a wrong gradient: the score estimate of d/dsigma E[z^2]
    is far (in standard errors) from 2 mu, the d/dmu answer."""
    f, *_ = cases(t([A1]))["z^2"]
    mu, sigma = t([MU1]), t([SIGMA1])
    _, g_sigma = estimates("score", f, mu, sigma, 100_000, seed=11)
    with pytest.raises(AssertionError):
        assert_unbiased(g_sigma, 2 * mu)


# --- per-sample variances against numerical integration ----------------------------------------------------

def single_sample_estimators(name):
    """The four single-sample estimators of d/dmu and d/dsigma in 1-D, written out as functions of z."""
    f_np = {"z": lambda z: z, "z^2": lambda z: z**2, "(z-a)^2": lambda z: (z - A1) ** 2}[name]
    fp_np = {"z": lambda z: 1.0 + 0 * z, "z^2": lambda z: 2 * z, "(z-a)^2": lambda z: 2 * (z - A1)}[name]
    mu, s = MU1, SIGMA1
    return {
        ("score", "mu"): lambda z: f_np(z) * (z - mu) / s**2,
        ("score", "sigma"): lambda z: f_np(z) * ((z - mu) ** 2 - s**2) / s**3,
        ("pathwise", "mu"): lambda z: fp_np(z),
        ("pathwise", "sigma"): lambda z: fp_np(z) * (z - mu) / s,  # f'(z) eps
    }


def gaussian_moment(h):
    """E[h(z)] for z ~ N(MU1, SIGMA1^2), by quad over mu +- 14 sigma (the tails beyond hold < 1e-30)."""
    pdf = stats.norm(MU1, SIGMA1).pdf
    lo, hi = MU1 - 14 * SIGMA1, MU1 + 14 * SIGMA1
    val, _ = integrate.quad(lambda z: h(z) * pdf(z), lo, hi, points=[MU1], limit=400, epsabs=1e-13, epsrel=1e-11)
    return val


@pytest.mark.parametrize("estimator", ["score", "pathwise"])
@pytest.mark.parametrize("name", ["z", "z^2", "(z-a)^2"])
def test_single_sample_variances_match_quadrature(estimator, name):
    """Sample variance of n = 200k single-sample estimates vs the exact variance
    E[g^2] - E[g]^2 by quad, within N_SE standard errors of a sample variance,
    sqrt((mu4 - var^2) / n), with the 4th central moment mu4 also by quad."""
    n = 200_000
    f, _, d_mu, d_sigma = cases(t([A1]))[name]
    g_mu, g_sigma = estimates(estimator, f, t([MU1]), t([SIGMA1]), n, seed=23)
    exact_mean = {"mu": d_mu(t([MU1]), t([SIGMA1])).item(), "sigma": d_sigma(t([MU1]), t([SIGMA1])).item()}
    for param, samples in (("mu", g_mu[:, 0]), ("sigma", g_sigma[:, 0])):
        g = single_sample_estimators(name)[(estimator, param)]
        m = gaussian_moment(g)
        assert m == pytest.approx(exact_mean[param], abs=1e-8)  # the hand-written g is unbiased
        var = gaussian_moment(lambda z: g(z) ** 2) - m**2
        mu4 = gaussian_moment(lambda z: (g(z) - m) ** 4)
        se_var = math.sqrt(max(mu4 - var**2, 0.0) / n)
        got = samples.var().item()
        assert abs(got - var) <= N_SE * se_var + 1e-12, (estimator, name, param, got, var, se_var)


def test_known_variances_in_closed_form():
    """Two of the quad variances against hand formulas, for f = z: score d/dmu is z (z - mu) / sigma^2
    with variance (mu^2 + 2 sigma^2) / sigma^2; pathwise d/dsigma is eps, variance 1."""
    g = single_sample_estimators("z")
    var_score = gaussian_moment(lambda z: g[("score", "mu")](z) ** 2) - 1.0
    assert var_score == pytest.approx((MU1**2 + 2 * SIGMA1**2) / SIGMA1**2, rel=1e-9)
    assert gaussian_moment(lambda z: g[("pathwise", "sigma")](z) ** 2) == pytest.approx(1.0, rel=1e-9)


# --- the same random numbers: per-sample values --------------------------------------------------------------

def test_score_function_samples_reproduce_by_hand():
    """Without a baseline, estimate_s = f(z_s) (z_s - mu) / sigma^2 and f(z_s) ((z_s - mu)^2 - sigma^2) / sigma^3,
    with z = mu + sigma * randn(S, d) from the same generator."""
    mu, sigma, a = t([0.3, -0.8, 1.1]), t([0.5, 1.4, 0.9]), t([1.0, 1.0, -2.0])
    f = lambda z: ((z - a) ** 2).sum(-1) + z.prod(-1)  # noqa: E731
    g_mu, g_sigma = G.score_function_samples(f, mu, sigma, 50, generator=gen(7))
    z = mu + sigma * torch.randn(50, 3, generator=gen(7), dtype=F64)
    fz = f(z)[:, None]
    torch.testing.assert_close(g_mu, fz * (z - mu) / sigma**2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_sigma, fz * ((z - mu) ** 2 - sigma**2) / sigma**3, rtol=1e-12, atol=1e-12)


def loo_by_hand(fz, group_size):
    """b_s = mean of f over the other samples of s's consecutive group, with explicit loops."""
    n = len(fz)
    out = []
    for s in range(n):
        start = (s // group_size) * group_size
        others = [fz[j] for j in range(start, start + group_size) if j != s]
        out.append(sum(others) / len(others))
    return torch.stack(out)


@pytest.mark.parametrize("group_size", [None, 2, 4, 12])
def test_leave_one_out_groups_reproduce_by_hand(group_size):
    n, mu, sigma = 12, t([0.2, -0.4]), t([0.8, 1.5])
    f = lambda z: (z**2).sum(-1) + 3 * z[:, 0]  # noqa: E731
    g_mu, g_sigma = G.score_function_samples(f, mu, sigma, n, "leave_one_out", gen(3), group_size=group_size)
    z = mu + sigma * torch.randn(n, 2, generator=gen(3), dtype=F64)
    fz = f(z)
    centred = (fz - loo_by_hand(fz, group_size or n))[:, None]
    torch.testing.assert_close(g_mu, centred * (z - mu) / sigma**2, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(g_sigma, centred * ((z - mu) ** 2 - sigma**2) / sigma**3, rtol=1e-11, atol=1e-11)


def test_group_size_changes_the_baseline():
    """Groups really are separate: group_size 4 and 12 give different estimates from the same draws, and
    no group_size means one group of all the samples."""
    mu, sigma, f = t([0.2]), t([0.8]), (lambda z: (z**2).sum(-1))
    run = lambda gs: G.score_function_samples(f, mu, sigma, 12, "leave_one_out", gen(3), group_size=gs)[0]  # noqa: E731
    assert not torch.allclose(run(4), run(12))
    assert torch.equal(run(None), run(12))


def test_pathwise_matches_autograd_one_sample_at_a_time():
    mu, sigma = t([0.3, -0.8, 1.1]), t([0.5, 1.4, 0.9])

    def f(z):
        return (torch.sin(z) * z**2).sum(-1) + z[:, 0] * z[:, 1] + torch.exp(0.3 * z[:, 2])

    g_mu, g_sigma = G.pathwise_samples(f, mu, sigma, 20, generator=gen(9))
    eps = torch.randn(20, 3, generator=gen(9), dtype=F64)
    for s in range(20):
        m, sd = mu.clone().requires_grad_(True), sigma.clone().requires_grad_(True)
        want_mu, want_sigma = torch.autograd.grad(f((m + sd * eps[s])[None])[0], (m, sd))
        torch.testing.assert_close(g_mu[s], want_mu, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_sigma[s], want_sigma, rtol=1e-12, atol=1e-12)
    # and the chain rule by hand: d/dmu = f'(z), d/dsigma = f'(z) eps
    z = mu + sigma * eps
    fprime = torch.sin(z) * 2 * z + torch.cos(z) * z**2
    fprime[:, 0] += z[:, 1]
    fprime[:, 1] += z[:, 0]
    fprime[:, 2] += 0.3 * torch.exp(0.3 * z[:, 2])
    torch.testing.assert_close(g_mu, fprime, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_sigma, fprime * eps, rtol=1e-12, atol=1e-12)


# --- the leave-one-out baseline ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 3])
def test_leave_one_out_is_unbiased_and_reduces_variance(dim):
    """f = ||z - a||^2 with a far from mu: f is large everywhere, so (f - b) is much smaller than f.
    With groups of 10 the group means are iid, so the standard error comes from them."""
    n, k = 100_000, 10
    mu, sigma, a = torch.zeros(dim, dtype=F64), torch.ones(dim, dtype=F64), torch.full((dim,), 6.0, dtype=F64)
    f = lambda z: ((z - a) ** 2).sum(-1)  # noqa: E731
    plain = G.score_function_samples(f, mu, sigma, n, generator=gen(5))
    loo = G.score_function_samples(f, mu, sigma, n, "leave_one_out", gen(5), group_size=k)
    for which, exact in ((0, 2 * (mu - a)), (1, 2 * sigma)):
        group_means = loo[which].reshape(n // k, k, dim).mean(1)
        assert_unbiased(group_means, exact, f"leave-one-out {'mu sigma'.split()[which]}")
        assert_unbiased(plain[which], exact, f"plain {'mu sigma'.split()[which]}")
        # the per-sample variance falls by a clear factor (about 3 to 6 in 1-D, 12 to 20 in 3-D here)
        assert (loo[which].var(0) * 2 < plain[which].var(0)).all()


def test_leave_one_out_one_group_is_unbiased():
    n, mu, sigma, a = 50_000, t([0.5]), t([0.7]), t([4.0])
    f = lambda z: ((z - a) ** 2).sum(-1)  # noqa: E731
    g_mu, g_sigma = G.score_function_samples(f, mu, sigma, n, "leave_one_out", gen(8))
    # one group of n: the estimates are (weakly) dependent, the usual SE is accurate to O(1/n)
    assert_unbiased(g_mu, 2 * (mu - a))
    assert_unbiased(g_sigma, 2 * sigma)


# --- summarize --------------------------------------------------------------------------------------------------------

def test_summarize_formulas():
    est = torch.randn(40, 3, generator=gen(2), dtype=F64) * t([1.0, 2.0, 0.5]) + t([0.3, -1.0, 2.0])
    exact = t([0.0, -1.0, 2.5])
    out = G.summarize(est, exact)
    x = est.numpy()
    mean, var = x.mean(0), x.var(0, ddof=1)
    np.testing.assert_allclose(out["mean"].numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(out["variance"].numpy(), var, rtol=1e-12)
    np.testing.assert_allclose(out["std_error"].numpy(), np.sqrt(var / 40), rtol=1e-12)
    np.testing.assert_allclose(out["z_score"].numpy(), (mean - exact.numpy()) / np.sqrt(var / 40), rtol=1e-12)
    assert "z_score" not in G.summarize(est)


def test_summarize_constant_estimates():
    """A zero-variance estimator that is exactly right has z-score 0, not NaN."""
    out = G.summarize(torch.ones(10, 2, dtype=F64), torch.ones(2, dtype=F64))
    eps = torch.finfo(F64).eps
    torch.testing.assert_close(out["std_error"], torch.zeros(2, dtype=F64), atol=eps, rtol=0)
    torch.testing.assert_close(out["z_score"], torch.zeros(2, dtype=F64), atol=eps, rtol=0)


# --- categorical latents ---------------------------------------------------------------------------------------------

V = t([1.0, 3.0, -2.0, 0.5])
THETA = t([0.2, -0.5, 1.0, 0.0])


def exact_categorical_gradient(v, theta):
    """d/dtheta sum_k softmax(theta)_k v_k = p * (v - p . v)."""
    p = torch.softmax(theta, -1)
    return p * (v - p @ v)


def test_categorical_exact_gradient():
    torch.testing.assert_close(G.categorical_exact_gradient(V, THETA), exact_categorical_gradient(V, THETA),
                               rtol=1e-12, atol=1e-12)
    # central finite differences, numpy float64
    v, th, h = V.numpy(), THETA.numpy(), 1e-6

    def expectation(x):
        p = np.exp(x - x.max())
        return (p / p.sum()) @ v

    fd = np.array([(expectation(th + h * e) - expectation(th - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(G.categorical_exact_gradient(V, THETA).numpy(), fd, atol=1e-8)
    # a list of numbers works too
    torch.testing.assert_close(G.categorical_exact_gradient([1.0, 3.0, -2.0, 0.5], [0.2, -0.5, 1.0, 0.0]),
                               exact_categorical_gradient(V, THETA).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("baseline", [None, "leave_one_out"])
def test_categorical_score_is_unbiased(baseline):
    n, k = 200_000, 10
    est = G.categorical_score_samples(V, THETA, n, baseline, group_size=k if baseline else None, generator=gen(4))
    assert est.shape == (n, 4)
    if baseline:
        est = est.reshape(n // k, k, 4).mean(1)  # iid group means
    assert_unbiased(est, exact_categorical_gradient(V, THETA))


def test_categorical_baseline_reduces_variance():
    shifted = V + 20.0  # the same gradient, a large common offset
    plain = G.categorical_score_samples(shifted, THETA, 20_000, generator=gen(4))
    loo = G.categorical_score_samples(shifted, THETA, 20_000, "leave_one_out", group_size=10, generator=gen(4))
    assert (loo.var(0) * 20 < plain.var(0)).all()


@pytest.mark.parametrize("group_size", [None, 5])
@pytest.mark.parametrize("baseline", [None, "leave_one_out"])
def test_categorical_score_per_sample_form(baseline, group_size):
    """estimate_s = (v_{k_s} - b_s)(onehot(k_s) - p), with k_s drawn by torch.multinomial from the same
    generator, written with loops."""
    n = 20
    est = G.categorical_score_samples(V, THETA, n, baseline, group_size=group_size, generator=gen(6))
    p = torch.softmax(THETA, -1)
    ks = torch.multinomial(p, n, replacement=True, generator=gen(6))
    fk = V[ks]
    b = loo_by_hand(fk, group_size or n) if baseline else torch.zeros(n, dtype=F64)
    for s in range(n):
        onehot = torch.zeros(4, dtype=F64)
        onehot[ks[s]] = 1.0
        torch.testing.assert_close(est[s], (V[ks[s]] - b[s]) * (onehot - p), rtol=1e-12, atol=1e-12)


def test_categorical_score_rows_have_the_score_form():
    """Without reproducing the sampler: each row is c (e_k - p), so row + c p is c times a one-hot vector,
    with c = -row_j / p_j at every j != k; and each k appears about p_k n times."""
    n = 4000
    est = G.categorical_score_samples(V, THETA, n, generator=gen(1))
    p = torch.softmax(THETA, -1)
    ratios = -est / p  # = c at j != k, c (p_k - 1) / p_k at j = k
    ks = []
    for row, r in zip(est, ratios):
        k = int((row > 0).nonzero()[0]) if (row > 0).sum() == 1 else int((row < 0).nonzero()[0])
        c = r[[j for j in range(4) if j != k]]
        assert torch.allclose(c, c[0].expand(3), rtol=1e-12)  # one common factor
        assert c[0].item() == pytest.approx(V[k].item(), rel=1e-12)  # c = v_k (no baseline)
        ks.append(k)
    counts = np.bincount(ks, minlength=4)
    pn = p.numpy()
    assert (np.abs(counts - n * pn) <= N_SE * np.sqrt(n * pn * (1 - pn))).all()


# --- Gumbel-softmax ------------------------------------------------------------------------------------------------

N_GUMBEL = 20_000


@pytest.fixture(scope="module")
def gumbel_runs():
    """Package estimates at several temperatures (the sampler uses the global RNG: seeded here)."""
    torch.manual_seed(123)
    return {tau: G.gumbel_softmax_samples(V, THETA, tau, N_GUMBEL) for tau in (0.1, 0.5, 1.0, 3.0)}


def hand_gumbel(tau, n, seed):
    """(n, K) single-sample Gumbel-softmax estimates with our own noise: y = softmax((theta + g)/tau),
    d(y . v)/dtheta = (1/tau) y (v - y . v)."""
    u = torch.rand(n, 4, generator=gen(seed), dtype=F64).clamp(1e-300, 1 - 1e-16)
    y = torch.softmax((THETA - torch.log(-torch.log(u))) / tau, -1)
    return y * (V - (y @ V)[:, None]) / tau


def test_hand_gumbel_formula_is_its_gradient():
    u = torch.rand(3, 4, generator=gen(0), dtype=F64)
    g = -torch.log(-torch.log(u))
    for tau in (0.3, 2.0):
        for s in range(3):
            th = THETA.clone().requires_grad_(True)
            want = torch.autograd.grad(torch.softmax((th + g[s]) / tau, -1) @ V, th)[0]
            y = torch.softmax((THETA + g[s]) / tau, -1)
            torch.testing.assert_close(y * (V - y @ V) / tau, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_gumbel_softmax_mean_matches_hand_written(gumbel_runs, tau):
    ours = hand_gumbel(tau, 100_000, seed=31)
    theirs = gumbel_runs[tau]
    assert theirs.shape == (N_GUMBEL, 4)
    gap = (theirs.mean(0) - ours.mean(0)).abs()
    se = (theirs.var(0) / N_GUMBEL + ours.var(0) / len(ours)).sqrt()
    assert (gap <= N_SE * se).all(), (gap, se)
    # and the test can fail: at tau = 1 the relaxed gradient is clearly not the exact one
    if tau == 1.0:
        assert ((ours.mean(0) - exact_categorical_gradient(V, THETA)).abs() > 10 * se).any()


def test_gumbel_softmax_bias_vanishes_as_temperature_falls(gumbel_runs):
    exact = exact_categorical_gradient(V, THETA)

    def bias(tau):
        est = gumbel_runs[tau]
        return (est.mean(0) - exact).norm().item(), (est.var(0) / N_GUMBEL).sum().sqrt().item()

    (b_cold, se_cold), (b_hot, se_hot) = bias(0.1), bias(3.0)
    assert b_cold + N_SE * se_cold < (b_hot - N_SE * se_hot) / 3
    assert b_hot - N_SE * se_hot > 0.3  # the hot relaxation is far off


def test_gumbel_softmax_variance_grows_as_temperature_falls(gumbel_runs):
    total = {tau: est.var(0).sum().item() for tau, est in gumbel_runs.items()}
    assert total[0.1] > 3 * total[0.5] > 3 * 3 * total[3.0]
    assert total[0.5] > total[1.0] > total[3.0]


# --- fitting q with either estimator ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pca():
    model = LinearGaussianModel.random(data_dim=6, latent_dim=2, sigma=0.5, seed=5)
    x, _ = model.sample(1, generator=gen(1))
    return model, x


def elbo_of(model, x, m, log_s):
    return model.elbo(x, m, torch.diag(torch.exp(2 * log_s))).item()


def best_diagonal_elbo(model, x):
    m, log_s = optimal_diagonal_q(x, model.W, model.b, model.sigma.log())
    return elbo_of(model, x, m[0], log_s[0])


@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_fit_gaussian_q_reaches_the_best_diagonal_elbo(pca, estimator):
    model, x = pca
    best = best_diagonal_elbo(model, x)
    assert best <= model.log_marginal(x).item() + 1e-9
    path = G.fit_gaussian_q(lambda z: model.joint_log_prob(x, z), 2, estimator, n_steps=300, seed=0)
    assert path.shape == (300, 2, 2) and path.dtype == F64
    start, end = elbo_of(model, x, path[0, 0], path[0, 1]), elbo_of(model, x, path[-1, 0], path[-1, 1])
    assert end <= best + 1e-9  # no diagonal q beats the optimal one
    assert best - end < 0.1
    assert best - start > 1.0  # and it had a long way to go


def test_fit_gaussian_q_is_deterministic_given_the_seed(pca):
    model, x = pca
    run = lambda seed: G.fit_gaussian_q(lambda z: model.joint_log_prob(x, z), 2, "pathwise", n_steps=50,  # noqa: E731
                                        seed=seed)
    first = run(3)
    torch.manual_seed(999)  # the global state before the call does not matter
    assert torch.equal(run(3), first)
    assert not torch.equal(run(4), first)


# --- argument errors ----------------------------------------------------------------------------------------------------

def _f(z):
    return z.sum(-1)


ERRORS = {
    "std zero": (lambda: G.score_function_samples(_f, [0.0, 0.0], [1.0, 0.0], 4), "std"),
    "std negative (pathwise)": (lambda: G.pathwise_samples(_f, [0.0], [-1.0], 4), "std"),
    "shape mismatch": (lambda: G.score_function_samples(_f, [0.0, 0.0], [1.0, 1.0, 1.0], 4), "mean and std"),
    "shape mismatch (pathwise)": (lambda: G.pathwise_samples(_f, [0.0, 0.0], [1.0], 4), "mean and std"),
    "2-D mean": (lambda: G.pathwise_samples(_f, [[0.0, 0.0]], [[1.0, 1.0]], 4), "mean"),
    "n_samples zero": (lambda: G.pathwise_samples(_f, [0.0], [1.0], 0), "n_samples"),
    "unknown baseline": (lambda: G.score_function_samples(_f, [0.0], [1.0], 4, baseline="mean"), "baseline"),
    "group_size not dividing": (
        lambda: G.score_function_samples(_f, [0.0], [1.0], 10, "leave_one_out", group_size=3), "group_size"),
    "group_size one": (
        lambda: G.score_function_samples(_f, [0.0], [1.0], 10, "leave_one_out", group_size=1), "group_size"),
    "one sample, leave-one-out": (lambda: G.score_function_samples(_f, [0.0], [1.0], 1, "leave_one_out"), "group_size"),
    "categorical unknown baseline": (lambda: G.categorical_score_samples(V, THETA, 4, baseline="loo"), "baseline"),
    "temperature zero": (lambda: G.gumbel_softmax_samples(V, THETA, 0.0, 4), "temperature"),
    "temperature negative": (lambda: G.gumbel_softmax_samples(V, THETA, -1.0, 4), "temperature"),
    "fit: unknown estimator": (lambda: G.fit_gaussian_q(_f, 2, "reinforce"), "estimator"),
    "fit: one sample": (lambda: G.fit_gaussian_q(_f, 2, "score", n_samples=1), "n_samples"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_name_the_argument(name):
    run, phrase = ERRORS[name]
    with pytest.raises(ValueError, match=phrase):
        run()


def test_categorical_group_size_error_names_the_argument():
    with pytest.raises(ValueError, match="group_size"):
        G.categorical_score_samples(V, THETA, 6, "leave_one_out", group_size=4)


def test_categorical_group_size_error_is_a_value_error():
    with pytest.raises(ValueError, match="leave-one-out"):
        G.categorical_score_samples(V, THETA, 6, "leave_one_out", group_size=4)


def test_gumbel_softmax_accepts_values_of_another_dtype():
    torch.manual_seed(0)
    est = G.gumbel_softmax_samples([1.0, 3.0, -2.0, 0.5], THETA, 0.5, 8)
    assert est.shape == (8, 4) and est.dtype == F64
