import math

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from conftest import bent_latent_model
from scipy import stats
from scipy.special import logsumexp

from vae_lesson.models import LatentGaussianModel
from vae_lesson.widgets import WidgetParts, latent_samples_explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_K, SEED = 200, 3


@pytest.fixture(scope="module")
def model():
    """A small untrained model, bent so that its Gaussians are narrow (std about 0.1) and their
    centres move with z: then a single latent value is a poor mixture, and K matters."""
    return bent_latent_model(seed=0, hidden=16, std_bias=-2.5)


@pytest.fixture(scope="module")
def data(model):
    x, _ = model.sample(12, generator=torch.Generator().manual_seed(1))
    return x


@pytest.fixture()
def parts(model, data):
    return latent_samples_explorer(model, data, max_k=MAX_K, seed=SEED)


def avg_log_pk_by_hand(model, data, z):
    """Mean over the data of log (1/K) sum_k N(x; mu(z_k), diag sigma(z_k)^2), in float64 with scipy."""
    with torch.no_grad():
        d = model.decoder(torch.as_tensor(z, dtype=torch.float32)).base_dist
    loc, scale = d.loc.double().numpy(), d.scale.double().numpy()
    x = data.double().numpy()
    comp = stats.norm.logpdf(x[:, None, :], loc[None], scale[None]).sum(-1)  # (N, K)
    return float((logsumexp(comp, axis=1) - math.log(len(loc))).mean())


def random_z(k):
    return torch.randn(MAX_K, 1, generator=torch.Generator().manual_seed(SEED))[:k]


def test_builds_the_parts(parts):
    assert isinstance(parts, WidgetParts)
    assert set(parts.controls) == {"k", "source"}
    assert parts.controls["k"].min == 1 and parts.controls["k"].max == MAX_K
    assert parts.controls["k"].value == 1 and parts.controls["source"].value == "random"
    assert isinstance(parts.box, widgets.Box)
    assert bytes(parts.image.value).startswith(PNG_MAGIC)
    assert parts.state["k"] == 1 and parts.state["source"] == "random"
    assert "K = 1" in parts.label.value
    bundle = parts._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_moving_the_slider_redraws(parts, model, data):
    image_before, label_before = bytes(parts.image.value), parts.label.value
    avg_before = parts.state["avg_log_pk"]
    parts.controls["k"].value = 37
    assert bytes(parts.image.value) != image_before
    assert bytes(parts.image.value).startswith(PNG_MAGIC)
    assert parts.label.value != label_before
    assert "K = 37" in parts.label.value
    assert parts.state["k"] == 37
    assert parts.state["avg_log_pk"] != avg_before


@pytest.mark.parametrize("k", [1, 5, 37])
def test_avg_log_pk_matches_independent_computation(parts, model, data, k):
    parts.controls["k"].value = k
    z = random_z(k)
    with torch.no_grad():
        expected = model.mixture_from_latents(z).log_prob(data).mean().item()
    assert parts.state["avg_log_pk"] == pytest.approx(expected, abs=1e-5)
    assert parts.state["avg_log_pk"] == pytest.approx(avg_log_pk_by_hand(model, data, z), abs=1e-4)
    assert f"{parts.state['avg_log_pk']:.3f}" in parts.label.value


def test_switching_to_quantiles(parts, model, data):
    parts.controls["k"].value = 20
    image_random = bytes(parts.image.value)
    parts.controls["source"].value = "quantiles"
    assert bytes(parts.image.value) != image_random
    assert parts.state["source"] == "quantiles" and parts.state["k"] == 20
    # K evenly spaced quantiles of N(0, 1), computed with scipy
    z = stats.norm.ppf((np.arange(20) + 0.5) / 20)[:, None]
    assert parts.state["avg_log_pk"] == pytest.approx(avg_log_pk_by_hand(model, data, z), abs=1e-4)


def test_exact_log_px_is_the_quadrature(parts, model, data):
    with torch.no_grad():
        exact = model.log_marginal_quadrature(data, n_points=8000).mean().item()
    assert parts.state["exact_log_px"] == pytest.approx(exact, abs=1e-4)
    assert f"{exact:.3f}" in parts.label.value


def test_many_quantiles_approach_the_exact_value(parts):
    parts.controls["source"].value = "quantiles"
    parts.controls["k"].value = 200
    assert parts.state["avg_log_pk"] == pytest.approx(parts.state["exact_log_px"], abs=0.05)
    parts.controls["k"].value = 1
    assert abs(parts.state["avg_log_pk"] - parts.state["exact_log_px"]) > 0.2  # so the check means something


def test_seed_changes_the_random_stream(model, data):
    a = latent_samples_explorer(model, data, max_k=10, seed=0)
    b = latent_samples_explorer(model, data, max_k=10, seed=1)
    assert a.state["avg_log_pk"] != b.state["avg_log_pk"]


def test_refuses_a_2d_latent(data):
    with pytest.raises(ValueError, match="latent_dim=2"):
        latent_samples_explorer(LatentGaussianModel(latent_dim=2), data)


@pytest.mark.parametrize("max_k", [0, -1, 2.5])
def test_refuses_bad_max_k(model, data, max_k):
    with pytest.raises(ValueError, match="max_k"):
        latent_samples_explorer(model, data, max_k=max_k)


def test_redraws_do_not_leak_pyplot_figures(model, data):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    parts = latent_samples_explorer(model, data, max_k=20, seed=0)
    for k in (2, 3, 4):
        parts.controls["k"].value = k
    parts.controls["source"].value = "quantiles"
    assert set(plt.get_fignums()) == before
