"""The anywidget latent explorer from Python (vae_lesson/explorer.py): its traits, the decoder
weights it sends (re-run in NumPy float32 as the browser runs them, they give model.decode), the
kernel's overlay for a picked digit (the same numbers as latent_grid), bad input, and the
self-contained HTML export. The browser side is tested in tests/test_browser.py."""
import base64
import json
import re

import numpy as np
import pytest
import torch
import traitlets

from vae_lesson import data, explorer, latent_grid
from vae_lesson.vae import VAE, _seeded


@pytest.fixture(scope="module")
def digits():
    d = data.load_digits(binarized=True)
    return d.x_test[:120], d.y_test[:120]


@pytest.fixture(scope="module")
def model_2d():
    with _seeded(0):
        return VAE(latent_dim=2, hidden=32, layers=2).eval()


@pytest.fixture(scope="module")
def model_5d():
    with _seeded(1):
        model = VAE(latent_dim=5, hidden=16, layers=2).eval()
    with torch.no_grad():  # make dims 3 and 1 carry the most KL: their encoder means spread widely
        model.encoder.net[-1].bias[3] += 3.0
        model.encoder.net[-1].bias[1] += 2.0
    return model


@pytest.fixture(scope="module")
def widget(model_2d, digits):
    return explorer.latent_explorer(model_2d, *digits, lim=2.5)


def test_traits_hold_what_the_front_end_reads(widget, model_2d, digits):
    x, y = digits
    assert widget.latent_dim == 2 and widget.lim == 2.5 and widget.dims == [0, 1]
    assert widget.n_images == len(x) and widget.digit == -1 and widget.overlay == {}
    np.testing.assert_array_equal(explorer.from_base64(widget.points["labels"]), y.numpy())
    means = model_2d.encode_mean(x).numpy()
    np.testing.assert_allclose(explorer.from_base64(widget.points["z1"]), means[:, 0], rtol=1e-6)
    np.testing.assert_allclose(explorer.from_base64(widget.points["z2"]), means[:, 1], rtol=1e-6)
    synced = set(widget.keys)
    assert {"latent_dim", "lim", "dims", "kl", "decoder", "points", "n_images", "digit", "overlay"} <= synced
    assert "standalone" not in synced  # only the exported page (no kernel) sets it
    assert "export default { render }" in widget._esm
    assert "latent explorer" in widget._repr_mimebundle_()[0]["text/plain"]


def test_sent_weights_reproduce_the_decoder_in_float32(widget, model_2d):
    """The JS forward pass re-done in NumPy float32 from exactly the sent state equals model.decode."""
    spec = widget.decoder
    assert spec["activation"] == "silu" and [l["n_in"] for l in spec["layers"]] == [2, 32, 32]
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) * 2
    ours = explorer.decode_from_weights(spec, z)
    assert ours.dtype == np.float32 and ours.shape == (200, 64)
    assert np.abs(ours - model_2d.decode(z).numpy()).max() < 1e-5
    w0 = explorer.from_base64(spec["layers"][0]["w"]).reshape(32, 2)
    np.testing.assert_array_equal(w0, model_2d.decoder.net[0].weight.detach().numpy())


def test_a_changed_weight_changes_the_decode(widget, model_2d):
    """The comparison above can fail: one weight off by 0.5 moves the output well past 1e-5."""
    spec = {**widget.decoder, "layers": [dict(l) for l in widget.decoder["layers"]]}
    b = explorer.from_base64(spec["layers"][-1]["b"]).copy()
    b[0] += 0.5
    spec["layers"][-1]["b"] = base64.b64encode(b.astype("<f4").tobytes()).decode()
    z = torch.zeros(3, 2)
    assert np.abs(explorer.decode_from_weights(spec, z) - model_2d.decode(z).numpy()).max() > 1e-2


def test_picking_a_digit_sends_the_overlay_latent_grid_computes(widget, model_2d, digits):
    x, _ = digits
    widget.digit = 7
    ov = widget.overlay
    assert ov["digit"] == 7
    mean, log_std = model_2d.encoder.params(x[7:8])
    np.testing.assert_allclose(ov["q_mean"], mean[0].detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(ov["q_std"], log_std[0].exp().detach().numpy(), rtol=1e-4)
    _, fine = latent_grid.zoomed_posterior_grid(model_2d, x[7], covering=[(mean[0].detach(), log_std[0].exp().detach())], n=41)
    log_post = explorer.from_base64(ov["log_post"]).reshape(ov["n"], ov["n"])
    np.testing.assert_allclose(log_post, fine.log_posterior.numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ov["extent"], [float(fine.z1[0]), float(fine.z1[-1]), float(fine.z2[0]), float(fine.z2[-1])])
    mass = np.exp(log_post.astype(np.float64)).sum() * (ov["extent"][1] - ov["extent"][0]) ** 2 / 40 ** 2
    assert abs(mass - 1) < 1e-2  # a log-density on the grid: it integrates to one
    widget.digit = -1
    assert widget.overlay == {}


def test_a_digit_out_of_range_is_refused(widget):
    with pytest.raises(traitlets.TraitError, match="test digit's index"):
        widget.digit = widget.n_images


def test_more_than_two_dims_get_sliders_by_average_kl(model_5d, digits):
    """A slider for every dim with more than 0.1 nats of average KL, most KL first; the KL travels too."""
    x, y = digits
    w = explorer.latent_explorer(model_5d, x, y)
    kl = explorer.average_kl_per_dim(model_5d, x)
    assert w.dims[:2] == [3, 1]
    assert kl[3] > kl[1] > kl[[0, 2, 4]].max()
    assert w.dims == [j for j in kl.argsort(descending=True).tolist() if kl[j] > explorer.KL_THRESHOLD]
    np.testing.assert_allclose(w.kl, kl.numpy(), atol=1e-4)
    mean, log_std = model_5d.encoder.params(x)
    direct = (torch.distributions.kl_divergence(torch.distributions.Normal(mean, log_std.exp()),
                                                torch.distributions.Normal(0.0, 1.0))).mean(0)
    torch.testing.assert_close(kl, direct, rtol=1e-5, atol=1e-6)
    w.digit = 0
    assert len(w.overlay["q_mean"]) == 5 and "log_post" not in w.overlay  # no grid posterior in 5-D


def test_slider_dims_are_every_dim_above_the_threshold_by_kl():
    """The issue's 20-D case: dim 2 at 0.56 nats must get a slider (six sliders had left it out)."""
    kl = torch.tensor([0.02, 0.3, 0.56, 1.4, 0.05, 0.11, 0.9, 0.7, 0.2, 0.01])
    assert explorer.slider_dims(kl) == [3, 6, 7, 2, 1, 8, 5]
    assert explorer.slider_dims(torch.tensor([0.01, 0.05, 0.02])) == [1, 2]  # the map's two dims at least


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x[:, :10], y, 3.0), r"shape \(N, 64\)"),
    (lambda x, y: (torch.where(torch.arange(64) == 0, float("nan"), x), y, 3.0), "NaN"),
    (lambda x, y: (x, y[:-1], 3.0), "one label per image"),
    (lambda x, y: (x, y, -1.0), "positive number"),
])
def test_bad_input_says_what_to_do(model_2d, digits, bad, match):
    args = bad(*digits)
    with pytest.raises(ValueError, match=match):
        explorer.latent_explorer(model_2d, *args[:2], lim=args[2])


def test_a_model_that_is_not_a_vae_is_refused(digits):
    with pytest.raises(ValueError, match="trained VAE"):
        explorer.latent_explorer(torch.nn.Linear(2, 64), *digits)


def test_decode_from_weights_checks_z(widget):
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        explorer.decode_from_weights(widget.decoder, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="finite"):
        explorer.decode_from_weights(widget.decoder, np.array([[np.nan, 0.0]]))


def test_export_html_is_one_self_contained_file(model_2d, digits, tmp_path):
    path = explorer.export_html(model_2d, *digits, tmp_path / "explorer.html", lim=2.5)
    assert list(tmp_path.iterdir()) == [path]
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", page), "the page must not reach the network"
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page and "import " not in page
    assert explorer.decoder_weights(model_2d)["layers"][0]["w"] in page  # the weights are inline
    for hook in ('"data-testid": "vae-explorer"', '"data-testid": "latent-map"', '"data-testid": "digit"',
                 '"data-testid": "strip"', '"data-testid": "readout"', "window.__vaeExplorers"):
        assert hook in page
    assert "export default" not in page and "__widget.render" in page
    state = json.loads(re.search(r'id="vae-explorer-state">(.*?)</script>', page, re.S).group(1))
    assert state["standalone"] is True and state["digit"] == -1 and state["overlay"] == {}  # no kernel: no digit box
    assert '<meta name="viewport"' in page


def test_export_html_keeps_its_signature(model_2d, digits, tmp_path):
    """The course site calls export_html(model, x, y, path, lim=..., title=...)."""
    path = explorer.export_html(model_2d, *digits, path=tmp_path / "e.html", lim=3.0, title="A & B")
    assert path == tmp_path / "e.html" and "<title>A &amp; B</title>" in path.read_text(encoding="utf-8")
