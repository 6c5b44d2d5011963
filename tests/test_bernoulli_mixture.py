"""The mixture of Bernoullis (binary digits) and its answers about partially observed images.

Expected values are computed here, independently of ``vae_lesson.bernoulli_mixture``: with
scipy.stats.bernoulli in float64, by explicit loops over pixels and components, and, for the
conditionals p(x_m | x_o), by brute-force enumeration of every completion of the missing
pixels on a 6-pixel model. Monte Carlo comparisons use tolerances in standard errors.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from conftest import SMALL_BERNOULLI_PROBS, SMALL_BERNOULLI_WEIGHTS
from scipy import stats
from scipy.special import logsumexp

from vae_lesson.bernoulli_mixture import BernoulliMixture, fit_bernoulli_mixture, observed_bottom_half
from vae_lesson.data import load_digits
from vae_lesson.models import EMStepReport, fit_em

N_SE = 4.0  # tolerance for Monte Carlo comparisons, in standard errors

# A small known model: K = 3 components over P = 6 pixels (float64 numpy, the "truth").
W6 = np.array(SMALL_BERNOULLI_WEIGHTS)
P6 = np.array(SMALL_BERNOULLI_PROBS)
OBS6 = np.array([True, False, True, False, False, True])  # observe pixels 0, 2, 5


def bm(w=W6, p=P6, dtype=torch.float64) -> BernoulliMixture:
    return BernoulliMixture(torch.tensor(w, dtype=dtype), torch.tensor(p, dtype=dtype))


def scipy_component_logpmf(x, p):
    """(N, C): sum_j log Bernoulli(x_nj; p_cj), with scipy in float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([stats.bernoulli(p[k]).logpmf(x).sum(1) for k in range(len(p))], 1)


def scipy_log_marginal(x, w, p):
    return logsumexp(np.log(w) + scipy_component_logpmf(x, p), axis=1)


def joint_pmf_by_hand(x_full, w=W6, p=P6):
    """(K,): p(x_full, z=k) = w_k prod_j p_kj^x_j (1 - p_kj)^(1 - x_j), explicit products."""
    out = np.array(w, dtype=np.float64)
    for k in range(len(w)):
        for j, xj in enumerate(x_full):
            out[k] *= p[k, j] if xj == 1 else 1 - p[k, j]
    return out


def enumerate_conditional(x_obs_full, observed, w=W6, p=P6):
    """Brute force over every completion of the missing pixels of one image.

    Returns (completions (2^m, P), p(x_m | x_o) for each (2^m,), p(x_o), p(z | x_o) (K,)).
    """
    missing = np.flatnonzero(~observed)
    completions, joints = [], []
    for bits in itertools.product([0.0, 1.0], repeat=len(missing)):
        x = np.array(x_obs_full, dtype=np.float64)
        x[missing] = bits
        completions.append(x)
        joints.append(joint_pmf_by_hand(x, w, p))  # (K,) p(x_full, z=k)
    joints = np.array(joints)  # (2^m, K)
    p_obs = joints.sum()  # p(x_o) = sum over completions and components
    return np.array(completions), joints.sum(1) / p_obs, p_obs, joints.sum(0) / p_obs


def random_model(k, p_pixels, seed, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k))
    probs = rng.uniform(0.02, 0.98, size=(k, p_pixels))
    return w, probs, BernoulliMixture(torch.tensor(w, dtype=dtype), torch.tensor(probs, dtype=dtype))


@pytest.fixture(scope="module")
def digits():
    return load_digits(binarized=True)


@pytest.fixture(scope="module")
def fitted20(digits):
    """K = 20, 50 EM iterations, alpha = 1 (the defaults of fit_bernoulli_mixture)."""
    return fit_bernoulli_mixture(digits.x_train, n_components=20, n_iter=50, seed=0)


# --- the full model: p(x | z), p(x), p(z | x) ----------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_component_log_prob_and_marginal_match_scipy(dtype, tol):
    w, p, model = random_model(5, 64, seed=1, dtype=dtype)
    x = np.random.default_rng(2).integers(0, 2, size=(40, 64)).astype(np.float64)
    xt = torch.tensor(x, dtype=dtype)
    comp = model.component_log_prob(xt)
    assert comp.shape == (40, 5) and comp.dtype == dtype
    np.testing.assert_allclose(comp.double().numpy(), scipy_component_logpmf(x, p), rtol=tol, atol=tol)
    np.testing.assert_allclose(model.log_marginal(xt).double().numpy(), scipy_log_marginal(x, w, p), rtol=tol, atol=tol)
    joint = np.log(w) + scipy_component_logpmf(x, p)
    post = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    np.testing.assert_allclose(model.posterior(xt).double().numpy(), post, rtol=0, atol=tol)


def test_log_marginal_by_hand_on_all_64_images_of_6_pixels():
    """p(x) sums to 1 over all 2^6 binary images, and matches explicit products."""
    x = np.array(list(itertools.product([0.0, 1.0], repeat=6)))
    got = bm().log_marginal(torch.tensor(x)).numpy()
    expected = np.log([joint_pmf_by_hand(xi).sum() for xi in x])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.exp(got).sum() == pytest.approx(1.0, abs=1e-12)


def test_extreme_probs_stay_finite_and_accurate():
    """Probabilities very close to 0 and 1 (log1p for log(1 - p)): finite and exact in float64."""
    p = np.array([[1e-9, 1 - 1e-9, 0.5], [1e-12, 0.3, 1 - 1e-12]])
    w = np.array([0.4, 0.6])
    x = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    got = bm(w, p).component_log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, scipy_component_logpmf(x, p), rtol=1e-12)
    # float32 cannot hold 1 - 1e-9 (it rounds to 1, which the constructor rejects): use 1 - 1e-6
    p32 = np.array([[1e-30, 1 - 1e-6, 0.5], [1e-20, 0.3, 1 - 2e-7]], dtype=np.float32).astype(np.float64)
    got32 = bm(w, p32, torch.float32).log_marginal(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got32, scipy_log_marginal(x, w, p32), rtol=1e-5)


def test_properties_and_dtype():
    model = bm(dtype=torch.float32)
    assert model.n_components == 3 and model.dim == 6
    assert model.weights.dtype == model.probs.dtype == torch.float32
    assert bm().probs.dtype == torch.float64
    mixed = BernoulliMixture(torch.tensor(W6, dtype=torch.float32), torch.tensor(P6))
    assert mixed.weights.dtype == mixed.probs.dtype == torch.float64  # common dtype
    np.testing.assert_allclose(model.prior.probs.numpy(), W6, rtol=1e-6)


def test_accepts_numpy_and_integer_images():
    model = bm()
    x = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
    expected = scipy_log_marginal(x, W6, P6)
    np.testing.assert_allclose(model.log_marginal(x).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(model.log_marginal(torch.tensor(x, dtype=torch.bool)).numpy(), expected, rtol=1e-12)


def test_sample_frequencies_match_parameters():
    n = 100_000
    x, z = bm(dtype=torch.float32).sample(n, generator=torch.Generator().manual_seed(5))
    assert x.shape == (n, 6) and x.dtype == torch.float32 and z.shape == (n,) and z.dtype == torch.int64
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    x, z = x.double().numpy(), z.numpy()
    freq = np.bincount(z, minlength=3) / n
    assert np.all(np.abs(freq - W6) < N_SE * np.sqrt(W6 * (1 - W6) / n)), freq
    for k in range(3):
        xk = x[z == k]
        se = np.sqrt(P6[k] * (1 - P6[k]) / len(xk))
        assert np.all(np.abs(xk.mean(0) - P6[k]) < N_SE * se), (k, xk.mean(0))
    # the marginal pixel means, from x alone
    mix = W6 @ P6
    assert np.all(np.abs(x.mean(0) - mix) < N_SE * np.sqrt(mix * (1 - mix) / n))


def test_sample_is_reproducible_with_a_generator():
    a = bm().sample(50, generator=torch.Generator().manual_seed(3))
    b = bm().sample(50, generator=torch.Generator().manual_seed(3))
    c = bm().sample(50, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


# --- partial observation: exact, against brute-force enumeration ---------------------------

ALL_OBSERVED_PATTERNS = [np.array(bits) for bits in itertools.product([0.0, 1.0], repeat=int(OBS6.sum()))]


def image_with(observed_values, observed=OBS6, fill=0.0):
    x = np.full(len(observed), fill)
    x[observed] = observed_values
    return x


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_partial_observation_matches_enumeration(dtype, tol):
    """For each of the 8 possible observed values of pixels 0, 2, 5: p(x_o), p(z | x_o),
    p(x_j = 1 | x_o) and log p(x_m | x_o) of all 8 completions, by enumeration."""
    model = bm(dtype=dtype)
    obs = torch.tensor(OBS6)
    missing = np.flatnonzero(~OBS6)
    for values in ALL_OBSERVED_PATTERNS:
        x0 = image_with(values)
        completions, cond, p_obs, post = enumerate_conditional(x0, OBS6)
        assert cond.sum() == pytest.approx(1.0, abs=1e-12)
        x0t = torch.tensor(x0[None], dtype=dtype)

        got = model.log_marginal_observed(x0t, obs)
        assert got.shape == (1,) and got.dtype == dtype
        assert got.item() == pytest.approx(math.log(p_obs), abs=tol)

        got_post = model.cluster_posterior_observed(x0t, obs)
        assert got_post.shape == (1, 3)
        np.testing.assert_allclose(got_post[0].double().numpy(), post, rtol=0, atol=tol)

        marg = model.missing_marginals(x0t, obs)[0].double().numpy()
        expected = x0.copy()
        for j in missing:
            expected[j] = cond[completions[:, j] == 1].sum()  # P(x_j = 1 | x_o), summed over completions
        np.testing.assert_allclose(marg, expected, rtol=0, atol=tol)

        lp = model.log_prob_missing(torch.tensor(completions, dtype=dtype), obs)
        assert lp.shape == (len(completions),)
        np.testing.assert_allclose(lp.double().numpy(), np.log(cond), rtol=0, atol=10 * tol)


def test_partial_observation_with_one_mask_per_image():
    """observed (N, P): a different set of pixels per image, each checked by enumeration."""
    rng = np.random.default_rng(7)
    masks = rng.random((12, 6)) < 0.5
    masks[0], masks[1] = True, False  # include the all-observed and all-missing rows
    x = rng.integers(0, 2, size=(12, 6)).astype(np.float64)
    model = bm()
    xt, mt = torch.tensor(x), torch.tensor(masks)
    lmo = model.log_marginal_observed(xt, mt).numpy()
    post = model.cluster_posterior_observed(xt, mt).numpy()
    marg = model.missing_marginals(xt, mt).numpy()
    lpm = model.log_prob_missing(xt, mt).numpy()
    for n in range(12):
        completions, cond, p_obs, post_n = enumerate_conditional(x[n], masks[n])
        assert lmo[n] == pytest.approx(math.log(p_obs), abs=1e-12)
        np.testing.assert_allclose(post[n], post_n, atol=1e-12)
        for j in range(6):
            expected = x[n, j] if masks[n, j] else cond[completions[:, j] == 1].sum()
            assert marg[n, j] == pytest.approx(expected, abs=1e-12)
        this = np.flatnonzero((completions == x[n]).all(1))[0]  # x[n]'s own completion
        assert lpm[n] == pytest.approx(math.log(cond[this]), abs=1e-12)


def test_shared_mask_equals_repeated_mask():
    x = torch.tensor(np.random.default_rng(3).integers(0, 2, size=(5, 6)), dtype=torch.float64)
    model, shared = bm(), torch.tensor(OBS6)
    repeated = shared.expand(5, 6).clone()
    for name in ("log_marginal_observed", "cluster_posterior_observed", "missing_marginals", "log_prob_missing"):
        torch.testing.assert_close(getattr(model, name)(x, shared), getattr(model, name)(x, repeated), rtol=0, atol=0)
    # a numpy bool array and a list of bools work too
    torch.testing.assert_close(model.log_marginal_observed(x, OBS6), model.log_marginal_observed(x, shared))
    torch.testing.assert_close(model.log_marginal_observed(x, OBS6.tolist()), model.log_marginal_observed(x, shared))


def test_all_observed_and_all_missing():
    x = torch.tensor(np.random.default_rng(4).integers(0, 2, size=(7, 6)), dtype=torch.float64)
    model = bm()
    everything, nothing = torch.ones(6, dtype=torch.bool), torch.zeros(6, dtype=torch.bool)
    torch.testing.assert_close(model.log_marginal_observed(x, everything), model.log_marginal(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(model.cluster_posterior_observed(x, everything), model.posterior(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(model.missing_marginals(x, everything), x)
    torch.testing.assert_close(model.log_prob_missing(x, everything), torch.zeros(7, dtype=torch.float64))
    # nothing seen: p(x_o) = 1, the posterior is the prior, the guess is the mixture's pixel mean
    torch.testing.assert_close(model.log_marginal_observed(x, nothing), torch.zeros(7, dtype=torch.float64))
    np.testing.assert_allclose(model.cluster_posterior_observed(x, nothing).numpy(), np.tile(W6, (7, 1)), atol=1e-12)
    np.testing.assert_allclose(model.missing_marginals(x, nothing).numpy(), np.tile(W6 @ P6, (7, 1)), atol=1e-12)
    torch.testing.assert_close(model.log_prob_missing(x, nothing), model.log_marginal(x), rtol=0, atol=1e-12)


def test_chain_rule_log_p_x_equals_observed_plus_missing():
    """log p(x) = log p(x_o) + log p(x_m | x_o) for every image and mask."""
    _, _, model = random_model(7, 64, seed=9)
    rng = np.random.default_rng(9)
    x = torch.tensor(rng.integers(0, 2, size=(30, 64)), dtype=torch.float64)
    for mask in (observed_bottom_half(), torch.tensor(rng.random((30, 64)) < 0.3)):
        total = model.log_marginal_observed(x, mask) + model.log_prob_missing(x, mask)
        torch.testing.assert_close(total, model.log_marginal(x), rtol=0, atol=1e-10)


def test_values_at_unobserved_pixels_are_ignored():
    model = bm()
    obs = torch.tensor(OBS6)
    clean = torch.tensor(image_with([1.0, 0.0, 1.0])[None])
    for fill in (np.nan, 0.5, 7.0, -np.inf, 1.0):
        dirty = torch.tensor(image_with([1.0, 0.0, 1.0], fill=fill)[None])
        torch.testing.assert_close(model.log_marginal_observed(dirty, obs), model.log_marginal_observed(clean, obs))
        torch.testing.assert_close(
            model.cluster_posterior_observed(dirty, obs), model.cluster_posterior_observed(clean, obs))
        torch.testing.assert_close(model.missing_marginals(dirty, obs), model.missing_marginals(clean, obs))
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        torch.testing.assert_close(model.sample_missing(dirty, obs, 20, g1), model.sample_missing(clean, obs, 20, g2))


# --- sampling the missing pixels ----------------------------------------------------------

def test_sample_missing_matches_the_exact_conditional():
    """Frequencies of each missing pixel match p(x_j = 1 | x_o); frequencies of pairs match
    sum_k p(z=k | x_o) p_ki p_kj, computed by hand, so the pixels are drawn jointly through one
    k per sample (sampling each pixel from its own marginal fails the pair check)."""
    model = bm()
    obs = torch.tensor(OBS6)
    x = np.stack([image_with(v) for v in ([1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0])])
    xt = torch.tensor(x)
    s = 40_000
    draws = model.sample_missing(xt, obs, s, generator=torch.Generator().manual_seed(11))
    assert draws.shape == (s, 3, 6) and draws.dtype == torch.float64
    assert torch.equal(draws[:, :, OBS6], xt[:, OBS6].expand(s, -1, -1))  # observed pixels copied
    assert set(torch.unique(draws).tolist()) <= {0.0, 1.0}
    draws = draws.numpy()

    marg = model.missing_marginals(xt, obs).numpy()
    missing = np.flatnonzero(~OBS6)
    freq = draws.mean(0)
    se = np.sqrt(marg * (1 - marg) / s)
    assert np.all(np.abs(freq - marg)[:, missing] < N_SE * se[:, missing]), (freq, marg)

    dependence_seen = 0.0
    for n in range(3):
        _, _, _, post = enumerate_conditional(x[n], OBS6)
        for i, j in itertools.combinations(missing, 2):
            pair = np.sum(post * P6[:, i] * P6[:, j])  # P(x_i = 1, x_j = 1 | x_o)
            emp = np.mean(draws[:, n, i] * draws[:, n, j])
            se_pair = math.sqrt(pair * (1 - pair) / s)
            assert abs(emp - pair) < N_SE * se_pair, (n, i, j, emp, pair)
            dependence_seen = max(dependence_seen, abs(pair - marg[n, i] * marg[n, j]) / se_pair)
    assert dependence_seen > 10, "the model must make missing pixels dependent, or the pair check is toothless"


def test_sample_missing_is_reproducible():
    x = torch.tensor(image_with([1.0, 0.0, 1.0])[None])
    a = bm().sample_missing(x, OBS6, 30, generator=torch.Generator().manual_seed(1))
    b = bm().sample_missing(x, OBS6, 30, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


# --- EM -------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.01, 1.0, 2.5])
def test_m_step_formulas_by_hand(alpha):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(30, 6)).astype(np.float64)
    r = rng.dirichlet(np.ones(3), size=30)
    new = BernoulliMixture.m_step(torch.tensor(x), torch.tensor(r), alpha=alpha)
    nk = np.array([sum(r[n, k] for n in range(30)) for k in range(3)])
    probs = np.array([[(sum(r[n, k] * x[n, j] for n in range(30)) + alpha) / (nk[k] + 2 * alpha)
                       for j in range(6)] for k in range(3)])
    np.testing.assert_allclose(new.weights.numpy(), nk / 30, rtol=1e-10)
    np.testing.assert_allclose(new.probs.numpy(), probs, rtol=1e-10)


def test_m_step_smoothing_keeps_probs_inside():
    """A pixel that is always off (or on) in the data gets alpha / (N_k + 2 alpha), not 0 (or 1)."""
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    new = BernoulliMixture.m_step(x, torch.ones(3, 1), alpha=0.5)
    torch.testing.assert_close(new.probs, torch.tensor([[0.5 / 4, 3.5 / 4]]))
    torch.testing.assert_close(new.weights, torch.tensor([1.0]))


def test_em_step_uses_m_step_with_alpha_one():
    _, _, model = random_model(4, 10, seed=5)
    x = torch.tensor(np.random.default_rng(5).integers(0, 2, size=(50, 10)), dtype=torch.float64)
    new, report = model.em_step(x)
    assert isinstance(report, EMStepReport)
    expected = BernoulliMixture.m_step(x, model.posterior(x), alpha=1.0)
    torch.testing.assert_close(new.weights, expected.weights, rtol=0, atol=0)
    torch.testing.assert_close(new.probs, expected.probs, rtol=0, atol=0)


def test_initialize():
    x = torch.tensor(np.random.default_rng(6).integers(0, 2, size=(40, 64)), dtype=torch.float32)
    model = BernoulliMixture.initialize(x, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.weights, torch.full((5,), 0.2))
    assert model.probs.shape == (5, 64) and ((model.probs >= 0.05) & (model.probs <= 0.95)).all()
    # each component is a blurred copy of a distinct training image: 0.75 +- 0.05 on, 0.25 +- 0.05 off
    matches = [[bool(((model.probs[k] - (0.5 * x[n] + 0.25)).abs() <= 0.05 + 1e-6).all()) for n in range(40)]
               for k in range(5)]
    assert all(any(row) for row in matches)
    assert len({tuple(row) for row in matches}) == 5
    again = BernoulliMixture.initialize(x, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.probs, again.probs)


def penalized_objective(model, x, alpha=1.0):
    """sum_n log p(x_n) + alpha sum_kj log[p_kj (1 - p_kj)], in float64 numpy: what EM with
    smoothing (MAP) is guaranteed never to decrease."""
    p = model.probs.double().numpy()
    return (scipy_log_marginal(x, model.weights.double().numpy(), p).sum()
            + alpha * np.sum(np.log(p) + np.log1p(-p)))


def test_em_on_binarized_digits(digits):
    x = digits.x_train
    init = BernoulliMixture.initialize(x, 10, generator=torch.Generator().manual_seed(0))
    final, reports = fit_em(init, x, n_iter=30)
    assert len(reports) == 30
    tol = 1e-4  # float32, nats per image
    for r in reports:
        assert r.elbo_after_e == pytest.approx(r.log_lik_before, abs=tol)  # E-step: tight
        assert r.elbo_after_m >= r.elbo_after_e - tol  # M-step raises the bound
        assert r.log_lik_after >= r.elbo_after_m - tol  # the bound stays below log p(x)
        # With smoothing (alpha = 1) the M-step maximizes ELBO + log prior, so only the penalized
        # objective is guaranteed to rise; the plain log-likelihood still does here (K = 10, 30
        # steps, N = 1437: the prior's pull is small). It can fail for larger K: see below.
        assert r.log_lik_after >= r.log_lik_before - tol
    for prev, nxt in zip(reports, reports[1:]):
        assert nxt.log_lik_before == pytest.approx(prev.log_lik_after, abs=1e-6)

    xn = x.double().numpy()
    first = scipy_log_marginal(xn, init.weights.double().numpy(), init.probs.double().numpy()).mean()
    last = scipy_log_marginal(xn, final.weights.double().numpy(), final.probs.double().numpy()).mean()
    assert reports[0].log_lik_before == pytest.approx(first, abs=1e-4)
    assert reports[-1].log_lik_after == pytest.approx(last, abs=1e-4)
    assert last > first + 8.0, (first, last)  # from about -32 to about -19 nats per image
    assert ((final.probs > 0) & (final.probs < 1)).all()
    assert final.weights.sum().item() == pytest.approx(1.0, abs=1e-5)

    # the penalized objective (MAP-EM's guarantee), step by step, from the models themselves
    model, values = init, [penalized_objective(init, xn)]
    for r in reports[:10]:
        model, mine = model.em_step(x)
        assert mine == r  # fit_em is em_step repeated
        values.append(penalized_objective(model, xn))
    assert np.all(np.diff(values) >= -1e-3 * len(xn) * tol), np.diff(values)  # float32 params, float64 objective


def test_fit_bernoulli_mixture_is_initialize_then_fit_em(digits):
    x = digits.x_train[:300]
    model, reports = fit_bernoulli_mixture(x, n_components=4, n_iter=3, seed=2)
    init = BernoulliMixture.initialize(x, 4, generator=torch.Generator().manual_seed(2))
    ref, ref_reports = fit_em(init, x, n_iter=3)
    assert reports == ref_reports
    assert torch.equal(model.probs, ref.probs) and torch.equal(model.weights, ref.weights)


def test_single_component_is_the_smoothed_pixel_means(digits):
    """K = 1: every responsibility is 1, so EM lands in one step on (sum_n x_n + 1) / (N + 2)."""
    x = digits.x_train.double().numpy()
    model, _ = fit_bernoulli_mixture(digits.x_train, n_components=1, n_iter=1)
    np.testing.assert_allclose(model.probs[0].double().numpy(), (x.sum(0) + 1) / (len(x) + 2), rtol=1e-5)


def test_twenty_components_beat_one_on_test_digits(digits, fitted20):
    """The test-set average log p(x) of the K = 20 fit, recomputed with scipy from its
    parameters, beats the K = 1 model (independent pixels, smoothed training means) by far."""
    model, reports = fitted20
    assert len(reports) == 50
    xtr, xte = digits.x_train.double().numpy(), digits.x_test.double().numpy()
    w, p = model.weights.double().numpy(), model.probs.double().numpy()
    train20 = scipy_log_marginal(xtr, w, p).mean()
    test20 = scipy_log_marginal(xte, w, p).mean()
    means = (xtr.sum(0) + 1) / (len(xtr) + 2)
    test1 = stats.bernoulli(means).logpmf(xte).sum(1).mean()
    assert model.log_marginal(digits.x_test).mean().item() == pytest.approx(test20, abs=1e-4)
    assert test20 > test1 + 3.0, (test20, test1)  # about -19.0 vs -25.2 nats per image
    assert train20 > test20  # some overfitting, but not much
    assert train20 - test20 < 2.0


def test_bottom_half_tells_about_the_top_half(digits, fitted20):
    """Slide 11 on the test digits: seeing the bottom half makes the true top half more likely,
    log p(x_top | x_bottom) > log p(x_top), on average over test images."""
    model, _ = fitted20
    bottom = observed_bottom_half()
    x = digits.x_test
    conditional = model.log_prob_missing(x, bottom).mean().item()
    unconditional = model.log_marginal_observed(x, ~bottom).mean().item()
    assert conditional > unconditional + 0.5, (conditional, unconditional)  # about -8.9 vs -10.1
    # the posterior-mean completion gets most top pixels right
    guess = model.missing_marginals(x, bottom)
    assert torch.equal(guess[:, bottom], x[:, bottom])
    assert ((guess[:, ~bottom] > 0.5).float() == x[:, ~bottom]).float().mean() > 0.8


def test_observed_bottom_half():
    mask = observed_bottom_half()
    assert mask.dtype == torch.bool and mask.shape == (64,)
    assert torch.equal(mask.nonzero().ravel(), torch.arange(32, 64))
    image = mask.reshape(8, 8)
    assert not image[:4].any() and image[4:].all()


# --- argument checks --------------------------------------------------------------------------

@pytest.mark.parametrize("w, p, name", [
    (W6, np.where(P6 == 0.9, 0.0, P6), "probs must lie strictly between 0 and 1"),
    (W6, np.where(P6 == 0.9, 1.0, P6), "probs must lie strictly between 0 and 1"),
    (W6, np.where(P6 == 0.9, 1.3, P6), "probs must lie strictly between 0 and 1"),
    ([0.5, 0.3, 0.3], P6, "weights must be non-negative and sum to 1"),
    ([1.2, -0.1, -0.1], P6, "weights must be non-negative"),
    ([0.5, 0.5], P6, "mismatched sizes"),
    (W6, P6.ravel(), "probs must have 2 dimension"),
    ([W6], P6, "weights must have 1 dimension"),
    ([0.5, np.nan, 0.2], P6, "weights contains 1 NaN"),
    (W6, np.where(P6 == 0.9, np.nan, P6), "probs contains 1 NaN"),
])
def test_rejects_bad_parameters(w, p, name):
    with pytest.raises(ValueError, match=name):
        BernoulliMixture(torch.tensor(np.asarray(w, dtype=np.float64)), torch.tensor(np.asarray(p)))


BAD_X = {
    "grey levels": (np.full((2, 6), 0.5), "binarize"),
    "NaN": (np.array([[0.0, 1, 0, 1, 0, np.nan]]), "x contains 1 NaN"),
    "wrong last dimension": (np.zeros((2, 5)), r"x must have last dimension 6"),
    "one image of shape (P,)": (np.zeros(6), "x must have 2 dimension"),
}


@pytest.mark.parametrize("case", sorted(BAD_X))
@pytest.mark.parametrize("method", [
    "component_log_prob", "log_marginal", "posterior", "em_step", "log_prob_missing", "log_marginal_observed",
])
def test_rejects_bad_x(case, method):
    x, match = BAD_X[case]
    model = bm()
    calls = {
        "component_log_prob": lambda: model.component_log_prob(x),
        "log_marginal": lambda: model.log_marginal(x),
        "posterior": lambda: model.posterior(x),
        "em_step": lambda: model.em_step(x),
        "log_prob_missing": lambda: model.log_prob_missing(x, np.ones(6, dtype=bool)),
        "log_marginal_observed": lambda: model.log_marginal_observed(x, np.ones(6, dtype=bool)),
    }
    with pytest.raises(ValueError, match=match) as info:
        calls[method]()
    assert str(info.value).startswith("x")


@pytest.mark.parametrize("call", [
    lambda x: BernoulliMixture.initialize(x, 2),
    lambda x: BernoulliMixture.m_step(x, np.full((len(x), 2), 0.5)),
    lambda x: fit_bernoulli_mixture(x, n_components=2, n_iter=1),
])
def test_fitting_rejects_grey_images(call):
    with pytest.raises(ValueError, match="binarize"):
        call(np.full((4, 6), 0.25))


def test_grey_value_at_an_observed_pixel_is_rejected():
    x = image_with([1.0, 0.5, 0.0])[None]
    for method in ("log_marginal_observed", "cluster_posterior_observed", "missing_marginals"):
        with pytest.raises(ValueError, match="binarize"):
            getattr(bm(), method)(x, OBS6)
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        bm().missing_marginals(image_with([1.0, np.nan, 0.0])[None], OBS6)
    with pytest.raises(ValueError, match="binarize"):
        bm().sample_missing(x, OBS6, 3)


def test_log_prob_missing_needs_the_missing_values():
    """It scores the missing pixels, so they must be 0 or 1 too."""
    with pytest.raises(ValueError, match="x contains"):
        bm().log_prob_missing(image_with([1.0, 0.0, 1.0], fill=np.nan)[None], OBS6)


@pytest.mark.parametrize("observed, match", [
    (np.ones(5, dtype=bool), r"observed must have shape \(6,\)"),
    (np.ones((3, 6), dtype=bool), r"observed must have shape \(6,\) .* or \(2, 6\)"),
    (np.ones((2, 6, 1), dtype=bool), "observed must have shape"),
    (np.ones(6), "observed must be a boolean mask"),
    (np.ones(6, dtype=np.int64), "observed must be a boolean mask"),
])
@pytest.mark.parametrize("method", [
    "log_marginal_observed", "cluster_posterior_observed", "missing_marginals", "log_prob_missing", "sample_missing",
])
def test_rejects_bad_observed(observed, match, method):
    x = np.zeros((2, 6))
    model = bm()
    args = (x, observed, 3) if method == "sample_missing" else (x, observed)
    with pytest.raises(ValueError, match=match):
        getattr(model, method)(*args)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0.0}, "alpha must be a positive number"),
    ({"alpha": -1.0}, "alpha must be a positive number"),
    ({"alpha": float("nan")}, "alpha must be a positive number"),
    ({"resp": np.full((3, 2), 0.5)}, "resp must have one row per data point"),
    ({"resp": np.full(4, 0.5)}, "resp must have 2 dimension"),
    ({"resp": np.array([[1.5, -0.5]] * 4)}, "resp must be non-negative"),
])
def test_m_step_rejects_bad_arguments(kwargs, match):
    args = {"x": np.zeros((4, 6)), "resp": np.full((4, 2), 0.5), **kwargs}
    with pytest.raises(ValueError, match=match):
        BernoulliMixture.m_step(**args)


def test_rejects_bad_counts():
    x = np.zeros((4, 6))
    with pytest.raises(ValueError, match="n must"):
        bm().sample(0)
    with pytest.raises(ValueError, match="n_samples must"):
        bm().sample_missing(x, OBS6, 0)
    with pytest.raises(ValueError, match="n_components"):
        BernoulliMixture.initialize(x, 5)
    with pytest.raises(ValueError, match="n_components"):
        BernoulliMixture.initialize(x, 0)
    with pytest.raises(ValueError, match="n_iter"):
        fit_bernoulli_mixture(x, n_components=2, n_iter=0)
    with pytest.raises(ValueError, match="seed"):
        fit_bernoulli_mixture(x, n_components=2, seed=-1)
