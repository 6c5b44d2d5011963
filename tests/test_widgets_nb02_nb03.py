"""The widgets of notebooks 02 and 03, driven from Python: importance_sampling_explorer (a proposal
q over a 1-D latent of probabilistic PCA) and elbo_explorer (ELBO + KL = log p(x) on a 1-D model).
Their numbers are recomputed here with scipy from the documented fixed noise."""
import math

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from vae_lesson.models import Latent1DModel, LinearGaussianModel
from vae_lesson.widgets import WidgetParts, elbo_explorer, importance_sampling_explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_REPEATS, SEED = 200, 5


@pytest.fixture(scope="module")
def ppca():
    model = LinearGaussianModel.random(data_dim=20, latent_dim=1, sigma=0.3, seed=3)
    x, _ = model.sample(1, generator=torch.Generator().manual_seed(0))
    return model, x


@pytest.fixture(scope="module")
def fresh_is_parts(ppca):
    """Built once (a build renders a figure); the tests that move sliders share it and set every slider they
    rely on, so their order does not matter."""
    model, x = ppca
    return importance_sampling_explorer(model, x, n_repeats=N_REPEATS, seed=SEED)


@pytest.fixture()
def is_parts(fresh_is_parts):
    return fresh_is_parts


def set_q(parts, m, s, k):
    parts.controls["mean"].value = m
    parts.controls["std"].value = s
    parts.controls["k"].value = k


def params(model):
    return model.W.numpy(), model.b.numpy(), model.sigma.item()


def exact_log_px(model, x):
    W, b, s = params(model)
    return stats.multivariate_normal(b, W @ W.T + s**2 * np.eye(len(b))).logpdf(x.numpy()[0])


def estimates_by_hand(model, x, m, s, k, n_repeats=N_REPEATS, seed=SEED):
    """R estimates log (1/K) sum_k p(x, z_k) / q(z_k), z = m + s * eps with the documented noise table
    torch.randn(n_repeats, 10000, generator=manual_seed(seed), float64); densities from scipy."""
    eps = torch.randn(n_repeats, 10000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    z = m + s * eps[:, :k]  # (R, K)
    W, b, sigma = params(model)
    log_lik = stats.norm.logpdf(x.numpy()[0], z[..., None] * W[:, 0] + b, sigma).sum(-1)
    log_w = log_lik + stats.norm.logpdf(z) - stats.norm.logpdf(z, m, s)
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    ess = (w.sum(1) ** 2 / (w**2).sum(1) / k).mean()
    return logsumexp(log_w, axis=1) - math.log(k), ess


# --- importance_sampling_explorer -----------------------------------------------------------------

def test_importance_explorer_builds_the_parts(ppca):
    is_parts = importance_sampling_explorer(*ppca, n_repeats=N_REPEATS, seed=SEED)
    assert isinstance(is_parts, WidgetParts)
    assert set(is_parts.controls) == {"mean", "std", "k"}
    assert is_parts.controls["mean"].value == 0.0 and is_parts.controls["std"].value == 1.0
    assert is_parts.controls["k"].value == 100 and 10000 in is_parts.controls["k"].options
    assert isinstance(is_parts.box, widgets.Box)
    assert bytes(is_parts.image.value).startswith(PNG_MAGIC)
    state = is_parts.state
    assert set(state) >= {"mean", "std", "k", "exact", "estimates", "ess_fraction"}
    assert state["estimates"].shape == (N_REPEATS,)
    assert state["exact"] == pytest.approx(exact_log_px(*ppca), abs=1e-9)
    assert f"{state['exact']:.3f}" in is_parts.label.value
    assert "application/vnd.jupyter.widget-view+json" in is_parts._repr_mimebundle_()


@pytest.mark.parametrize("control, value", [("mean", 1.25), ("std", 0.25), ("k", 1000)])
def test_each_control_redraws(is_parts, control, value):
    set_q(is_parts, 0.0, 1.0, 100)
    image, label = bytes(is_parts.image.value), is_parts.label.value
    estimates = is_parts.state["estimates"].clone()
    is_parts.controls[control].value = value
    assert bytes(is_parts.image.value) != image and bytes(is_parts.image.value).startswith(PNG_MAGIC)
    assert is_parts.label.value != label
    assert is_parts.state[control] == value
    assert not torch.equal(is_parts.state["estimates"], estimates)


@pytest.mark.parametrize("m, s, k", [(0.0, 1.0, 100), (0.75, 0.5, 30), (1.5, 0.125, 300), (1.5, 0.125, 1)])
def test_estimates_match_an_independent_computation(is_parts, ppca, m, s, k):
    """Slider values exactly representable in float32. The widget keeps its R x K table of log-weights
    in float32 (for speed): each log-weight carries a relative round-off of about 1e-7 of its size
    (tens of nats here), so the estimates agree to 1e-4 nats, far below what the histogram shows."""
    set_q(is_parts, m, s, k)
    expected, ess = estimates_by_hand(*ppca, m, s, k)
    np.testing.assert_allclose(is_parts.state["estimates"].numpy(), expected, rtol=0, atol=1e-4)
    assert is_parts.state["ess_fraction"] == pytest.approx(ess, rel=1e-4)
    mean = is_parts.state["estimates"].mean().item()
    assert f"{mean:.3f}" in is_parts.label.value and f"{ess:.1%}" in is_parts.label.value


def test_the_posterior_as_proposal_is_nearly_exact(is_parts, ppca):
    model, x = ppca
    post = model.posterior(x)
    pm, ps = post.mean.item(), post.covariance_matrix.sqrt().item()
    assert -3 < pm < 3 and 0.01 < ps < 10**0.5  # within the sliders' ranges
    set_q(is_parts, pm, ps, 1000)
    state = is_parts.state
    assert state["ess_fraction"] > 0.3
    errors = state["estimates"].numpy() - exact_log_px(model, x)
    assert np.abs(errors).max() < 0.05
    assert np.abs(errors).max() < 1e-5  # zero-variance importance sampling, up to the float32 q's rounding
    assert f"{pm:.3f}" in is_parts.label.value and f"{ps:.3f}" in is_parts.label.value


def test_the_prior_with_one_sample_is_biased_low(is_parts, ppca):
    """mean 0, std 1 (q = the prior: naive Monte Carlo), K = 1: Jensen's gap, many nats below log p(x)."""
    set_q(is_parts, 0.0, 1.0, 1)
    errors = is_parts.state["estimates"].numpy() - is_parts.state["exact"]
    se = errors.std(ddof=1) / math.sqrt(N_REPEATS)
    assert errors.mean() < -5 and errors.mean() < -4 * se
    assert is_parts.state["ess_fraction"] == pytest.approx(1.0)  # one sample is always "all of K"
    is_parts.controls["k"].value = 1000  # more samples: much closer
    assert is_parts.state["estimates"].mean().item() - is_parts.state["exact"] > errors.mean() + 5


def test_seed_sets_the_noise(ppca):
    a = importance_sampling_explorer(*ppca, n_repeats=20, seed=0)
    b = importance_sampling_explorer(*ppca, n_repeats=20, seed=1)
    assert not torch.equal(a.state["estimates"], b.state["estimates"])
    expected, _ = estimates_by_hand(*ppca, 0.0, 1.0, 100, n_repeats=20, seed=1)
    np.testing.assert_allclose(b.state["estimates"].numpy(), expected, rtol=0, atol=1e-4)  # float32 table of log-weights


def test_importance_explorer_rejects_a_2d_latent():
    model = LinearGaussianModel.random(data_dim=5, latent_dim=2, sigma=0.5)
    x, _ = model.sample(1)
    with pytest.raises(ValueError, match="latent_dim=2"):
        importance_sampling_explorer(model, x)


def test_importance_explorer_rejects_several_points(ppca):
    model, _ = ppca
    x, _ = model.sample(2)
    with pytest.raises(ValueError, match=r"^x must be one data point of shape \(1, 20\)"):
        importance_sampling_explorer(model, x)
    with pytest.raises(ValueError, match="^x must have 2 dimension"):
        importance_sampling_explorer(model, x[0])


@pytest.mark.parametrize("n_repeats", [0, -1, 2.5])
def test_importance_explorer_rejects_bad_n_repeats(ppca, n_repeats):
    with pytest.raises(ValueError, match="^n_repeats must"):
        importance_sampling_explorer(*ppca, n_repeats=n_repeats)


# --- elbo_explorer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def latent1d():
    return Latent1DModel()


@pytest.fixture(scope="module")
def elbo_parts(latent1d):
    """Shared like the one above: every test sets the sliders it relies on."""
    return elbo_explorer(latent1d, 1.2)


SETTINGS = [(2.0, math.sqrt(2.0)), (-4.0, math.sqrt(0.75)), (1.35, 0.6), (5.0, 0.1)]


def test_elbo_explorer_builds_the_parts(latent1d):
    elbo_parts = elbo_explorer(latent1d, 1.2)
    assert set(elbo_parts.controls) == {"mean", "std"}
    assert elbo_parts.controls["mean"].value == -4.0 and elbo_parts.controls["std"].value == 0.87
    assert bytes(elbo_parts.image.value).startswith(PNG_MAGIC)
    assert set(elbo_parts.state) >= {"mean", "std", "elbo", "kl", "log_px"}


def test_log_px_is_the_integral(elbo_parts):
    """log p(1.2) against quad of N(z; 0, 3^2) N(1.2; 2 tanh(z/2), 0.6^2) over the whole real line."""
    f = lambda z: stats.norm.pdf(z, 0, 3) * stats.norm.pdf(1.2, 2 * np.tanh(z / 2), 0.6)  # noqa: E731
    p = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0] for lo, hi in ((-np.inf, 0), (0, np.inf)))
    assert elbo_parts.state["log_px"] == pytest.approx(math.log(p), abs=1e-8)
    assert f"{math.log(p):.4f}" in elbo_parts.label.value


@pytest.mark.parametrize("m, s", SETTINGS, ids=str)
def test_elbo_plus_kl_is_log_px(elbo_parts, latent1d, m, s):
    image = bytes(elbo_parts.image.value)
    elbo_parts.controls["mean"].value = m
    elbo_parts.controls["std"].value = s
    state = elbo_parts.state
    assert (state["mean"], state["std"]) == (m, s)
    assert state["elbo"] + state["kl"] == pytest.approx(state["log_px"], abs=1e-8)
    assert state["elbo"] == latent1d.elbo(1.2, m, s)
    assert state["kl"] == latent1d.kl_to_posterior(1.2, m, s)
    assert state["kl"] > 0.01  # no Gaussian is the posterior
    assert bytes(elbo_parts.image.value) != image
    label = elbo_parts.label.value
    for v in (state["elbo"], state["kl"], state["elbo"] + state["kl"], state["log_px"]):
        assert f"{v:.4f}" in label
    assert f"N({m:.2f}, {s:.2f}" in label


def test_elbo_explorer_elbo_by_quadrature(elbo_parts):
    """The state's ELBO for q = N(2, 2) against quad of q (log p(x, z) - log q), written with scipy."""
    elbo_parts.controls["mean"].value = 2.0
    elbo_parts.controls["std"].value = math.sqrt(2.0)

    def f(z):
        lq = stats.norm.logpdf(z, 2.0, math.sqrt(2.0))
        lj = stats.norm.logpdf(z, 0, 3) + stats.norm.logpdf(1.2, 2 * np.tanh(z / 2), 0.6)
        return math.exp(lq) * (lj - lq)

    expected = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0]
                   for lo, hi in ((-np.inf, 2.0), (2.0, np.inf)))
    assert elbo_parts.state["elbo"] == pytest.approx(expected, abs=1e-8)


def test_moving_q_towards_the_posterior_raises_the_elbo(elbo_parts):
    elbo_parts.controls["mean"].value = -4.0
    elbo_parts.controls["std"].value = 0.87
    before = elbo_parts.state["elbo"]  # q = N(-4, 0.87^2), far from the posterior
    elbo_parts.controls["mean"].value = 1.5
    assert elbo_parts.state["elbo"] > before + 5
    assert elbo_parts.state["log_px"] == pytest.approx(elbo_parts.state["elbo"] + elbo_parts.state["kl"], abs=1e-8)


def test_elbo_plus_kl_is_log_px_at_the_sliders_corner(elbo_parts):
    elbo_parts.controls["mean"].value = elbo_parts.controls["mean"].max  # 8
    elbo_parts.controls["std"].value = elbo_parts.controls["std"].max  # 4
    state = elbo_parts.state
    assert state["elbo"] + state["kl"] == pytest.approx(state["log_px"], abs=1e-8)


def test_redraws_do_not_leak_pyplot_figures(ppca, latent1d):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    a = importance_sampling_explorer(*ppca, n_repeats=10)
    a.controls["k"].value = 10
    b = elbo_explorer(latent1d, 1.2)
    b.controls["std"].value = 1.0
    assert set(plt.get_fignums()) == before
