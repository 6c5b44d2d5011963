"""widgets.posterior_explorer (notebook 07): the true posterior p(z | x) on a grid beside the encoder's
q_phi(z | x) and a refined q, driven from Python. Its numbers are compared with the same quantities
computed here with vae_lesson.latent_grid and vae.refine; its picture must change with the digit and
come back unchanged (from the cache) when a digit is revisited. A tiny untrained 2-D VAE."""
import io
import math
import time

import numpy as np
import PIL.Image
import pytest
import torch

from vae_lesson import latent_grid as lg
from vae_lesson.data import load_digits
from vae_lesson.vae import VAE, refine
from vae_lesson.widgets import WidgetParts, posterior_explorer

N_DIGITS, STEPS = 6, 20


def tiny(latent_dim: int = 2) -> VAE:
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim, hidden=16, layers=1).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight *= 3  # p(x | z) changes with z: a posterior that is not the prior
    return model


@pytest.fixture(scope="module")
def digits():
    d = load_digits(binarized=True)
    return d.x_test[:N_DIGITS], d.y_test[:N_DIGITS]


@pytest.fixture(scope="module")
def explorer(digits):
    images, labels = digits
    return posterior_explorer(tiny(), images, labels, first=0, refine_steps=STEPS, n=61, n_samples=2000)


def expected(model, x, i):
    """What the widget should show for digit i, computed independently of it."""
    with torch.no_grad():
        mean, log_std = model.encoder.params(x[None])
    r = refine(model, x[None], n_steps=STEPS, lr=0.01, eval_samples=50, seed=i)
    qs = [(mean[0], log_std[0].exp()), (r.mean[0], r.log_std[0].exp())]
    _, grid = lg.zoomed_posterior_grid(model, x, covering=qs, n=61)
    return {"log_px_grid": grid.log_px, "kl_encoder": lg.kl_on_grid(grid, *qs[0]),
            "kl_refined": lg.kl_on_grid(grid, *qs[1]),
            "log_px_iw": float(lg.importance_log_px(model, x, n_samples=2000, seed=0).value)}


def png_array(data) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(bytes(data))))


def test_builds_and_shows_digit_0(explorer, digits):
    assert isinstance(explorer, WidgetParts) and explorer.state["digit"] == 0
    assert bytes(explorer.image.value).startswith(b"\x89PNG\r\n\x1a\n")
    images, labels = digits
    want = expected(tiny(), images[0], 0)
    for key, value in want.items():
        assert explorer.state[key] == pytest.approx(value, abs=1e-6), key
    assert f"<b>{want['log_px_grid']:.3f}</b>" in explorer.label.value
    assert f"<b>{want['kl_encoder']:.3f}</b>" in explorer.label.value
    assert f"(a {int(labels[0])})" in explorer.label.value


def test_numbers_obey_the_identity_and_the_bound(explorer):
    s = explorer.state
    assert s["kl_encoder"] == pytest.approx(s["log_px_grid"] - s["elbo_encoder"], abs=1e-9)
    assert s["kl_refined"] == pytest.approx(s["log_px_grid"] - s["elbo_refined"], abs=1e-9)
    assert s["kl_encoder"] > 0 and s["kl_refined"] > 0
    assert s["border_mass"] < 1e-5
    assert abs(s["log_px_grid"] - s["log_px_iw"]) < 4 * s["iw_se"] + 1e-3


def test_changing_the_digit_redraws_and_revisiting_uses_the_cache(explorer, digits):
    images, _ = digits
    digit = explorer.controls["digit"]
    digit.value = 0
    first_png, first_label = bytes(explorer.image.value), explorer.label.value
    digit.value = 3
    assert explorer.state["digit"] == 3
    assert bytes(explorer.image.value) != first_png and explorer.label.value != first_label
    assert png_array(explorer.image.value).shape == png_array(first_png).shape  # same layout
    want = expected(tiny(), images[3], 3)
    assert explorer.state["log_px_grid"] == pytest.approx(want["log_px_grid"], abs=1e-6)
    assert explorer.state["kl_refined"] == pytest.approx(want["kl_refined"], abs=1e-6)
    start = time.perf_counter()
    digit.value = 0  # cached: nothing is computed or drawn again
    assert time.perf_counter() - start < 0.1
    assert bytes(explorer.image.value) == first_png and explorer.label.value == first_label


def test_refined_q_is_closer_than_the_encoder(digits):
    """Refinement climbs this digit's ELBO, so its KL to p(z | x) falls (the tiny model's encoder is
    untrained, so the encoder's q is far off)."""
    images, labels = digits
    w = posterior_explorer(tiny(), images, labels, first=1, refine_steps=STEPS, n=61, n_samples=500)
    assert w.state["kl_refined"] < w.state["kl_encoder"]


def test_input_checks(digits):
    images, labels = digits
    with pytest.raises(ValueError, match="2-D latent"):
        posterior_explorer(tiny(latent_dim=3), images, labels)
    with pytest.raises(ValueError, match="one entry per image"):
        posterior_explorer(tiny(), images, labels[:-1])
    with pytest.raises(ValueError, match="first must be"):
        posterior_explorer(tiny(), images, labels, first=N_DIGITS)
    with pytest.raises(ValueError, match="positive integer"):
        posterior_explorer(tiny(), images, labels, refine_steps=0)


def test_says_when_the_importance_weighted_estimate_misses(digits):
    """An encoder that puts a narrow q far from p(z | x): the K-sample estimate then falls many
    standard errors below the grid's log p(x), and the label says why; a good one gets no such note."""
    images, labels = digits
    model = tiny()
    with torch.no_grad():
        model.encoder.net[-1].weight.zero_()
        model.encoder.net[-1].bias.copy_(torch.tensor([2.5, 2.5, math.log(0.1), math.log(0.1)]))
    w = posterior_explorer(model, images, labels, refine_steps=STEPS, n=61, n_samples=500)
    s = w.state
    assert s["log_px_grid"] - s["log_px_iw"] > 3 * s["iw_se"]
    assert "misses part of p(z|x)" in w.label.value
    assert s["kl_encoder"] > 1.0
    blind = tiny()
    with torch.no_grad():
        blind.decoder.net[-1].weight.zero_()  # p(z | x) = p(z): the untrained encoder's q is wide and near it
    ok = posterior_explorer(blind, images, labels, refine_steps=STEPS, n=61, n_samples=2000)
    assert abs(ok.state["log_px_grid"] - ok.state["log_px_iw"]) < 3 * ok.state["iw_se"] + 1e-3
    assert "misses" not in ok.label.value
