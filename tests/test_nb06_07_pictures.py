"""What notebooks 06 and 07 (issue 25) rely on, checked here instead of in the lesson:

- ``latent_grid.DecodedGrid``'s batched ``log_px``, ``border_mass`` and ``modes`` (notebook 07's section 7
  table and section 10's map) equal the per-image grids;
- ``latent_grid.regions_of_mass`` (notebook 07, section 10) finds the separate regions of a posterior, with
  their masses, means and standard deviations, on grids whose answer is known;
- the latent explorer's weights, run through the browser's forward pass written out in NumPy, give
  ``explorer.decode_from_weights`` bit for bit and ``model.decode`` to float32 round-off, and a picked
  digit's overlay carries the encoder's q (the checks notebook 07 used to make in its explorer cell);
- notebook 07's KL loop (section 9) is ``latent_grid.kl_on_grid``;
- the autoencoder of notebook 07 is the 2-D recipe with the KL switched off and nothing else changed
  (same steps: the comparison is at equal training).
Tiny models only."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from vae_lesson import explorer, latent_grid as lg, vae
from vae_lesson.data import load_digits
from vae_lesson.vae import VAE, _seeded


@pytest.fixture(scope="module")
def x_test():
    return load_digits(binarized=True).x_test


def tiny(seed: int = 0, scale: float = 3.0) -> VAE:
    """A small untrained 2-D VAE whose decoder depends strongly on z (last layer scaled up)."""
    with _seeded(seed):
        model = VAE(latent_dim=2, hidden=16, layers=1).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight *= scale
    return model


def test_decoded_grid_log_px_border_mass_and_modes_match_the_per_image_grids(x_test):
    model, x = tiny(), x_test[:40]
    decoded = lg.DecodedGrid(model, lim=5.0, n=41)
    log_px, border, modes = decoded.log_px(x), decoded.border_mass(x), decoded.modes(x)
    assert log_px.shape == border.shape == (40,) and modes.shape == (40, 2) and log_px.dtype == torch.float64
    for i in range(0, 40, 7):
        grid = decoded.grid_for(x[i])
        assert math.isclose(float(log_px[i]), grid.log_px, rel_tol=1e-6)  # float32 sums in another order
        assert math.isclose(float(border[i]), grid.border_mass, rel_tol=1e-4, abs_tol=1e-12)
        a, b = divmod(int(grid.log_joint.argmax()), decoded.n)
        assert torch.equal(modes[i], torch.stack([grid.z1[a], grid.z2[b]]))
    # chunks of images give the same numbers as one image at a time
    assert torch.allclose(decoded._each_image(x, lambda lj: torch.logsumexp(lj, 0), chunk_size=3),
                          decoded._each_image(x, lambda lj: torch.logsumexp(lj, 0)), rtol=1e-6, atol=0)


def test_decoded_grid_log_px_is_the_blind_decoders_exact_log_px(x_test):
    """A decoder that ignores z: p(z | x) = p(z), so log p(x) is the Bernoulli log-probability with the
    bias as logits, up to the prior mass the square leaves out."""
    model = tiny()
    with torch.no_grad():
        model.decoder.net[-1].weight.zero_()
    b = model.decoder.net[-1].bias.detach().double()
    x = x_test[:5].double()
    exact = x @ torch.nn.functional.logsigmoid(b) + (1 - x) @ torch.nn.functional.logsigmoid(-b)
    got = lg.DecodedGrid(model, lim=7.0, n=141).log_px(x_test[:5])
    assert torch.allclose(got, exact, atol=1e-4)


def _grid_from(log_density, lim=4.0, n=161) -> lg.PosteriorGrid:
    z1 = z2 = torch.linspace(-lim, lim, n, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(z1, z2, indexing="ij"), -1)
    h = 2 * lim / (n - 1)
    return lg.PosteriorGrid(z1, z2, log_density(z), h * h)


def _gauss(z, mean, std):
    return Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)).log_prob(z).sum(-1)


def test_regions_of_mass_of_one_gaussian_is_one_region():
    grid = _grid_from(lambda z: _gauss(z, [0.5, -0.3], [0.4, 0.2]))
    (mass, mean, std), = lg.regions_of_mass(grid, 0.99)
    assert 0.99 <= mass < 0.995
    assert torch.allclose(mean, torch.tensor([0.5, -0.3], dtype=torch.float64), atol=1e-3)
    assert torch.all(std < torch.tensor([0.4, 0.2], dtype=torch.float64))  # the 99% region cuts the tails


def test_regions_of_mass_of_a_two_gaussian_mixture():
    """70% at (-2, 0), 30% at (2, 1): two regions, heaviest first, each with its component's share, mean
    and (nearly) its std."""
    def log_density(z):
        return torch.logsumexp(torch.stack([math.log(0.7) + _gauss(z, [-2.0, 0.0], [0.3, 0.3]),
                                            math.log(0.3) + _gauss(z, [2.0, 1.0], [0.2, 0.4])]), 0)
    regions = lg.regions_of_mass(_grid_from(log_density), 0.99)
    assert len(regions) == 2
    (m1, c1, s1), (m2, c2, s2) = regions
    assert abs(m1 - 0.7 * 0.99) < 0.01 and abs(m2 - 0.3 * 0.99) < 0.01
    assert torch.allclose(c1, torch.tensor([-2.0, 0.0], dtype=torch.float64), atol=1e-3)
    assert torch.allclose(c2, torch.tensor([2.0, 1.0], dtype=torch.float64), atol=1e-3)
    assert torch.allclose(s1, torch.tensor([0.3, 0.3], dtype=torch.float64), rtol=0.15)
    assert torch.allclose(s2, torch.tensor([0.2, 0.4], dtype=torch.float64), rtol=0.15)
    # a small share: the 90% region drops the light component's tails, not the component
    assert len(lg.regions_of_mass(_grid_from(log_density), 0.9)) == 2


def test_regions_of_mass_on_a_model_adds_up(x_test):
    grid = lg.posterior_grid(tiny(1), x_test[3], lim=5.0, n=81)
    regions = lg.regions_of_mass(grid, 0.95)
    assert regions == sorted(regions, key=lambda r: -r[0])
    assert 0.95 <= sum(r[0] for r in regions) < 0.95 + float(grid.cell_mass.max()) + 1e-9


@pytest.mark.parametrize("mass", [0.0, 1.0, -0.5, 1.5])
def test_regions_of_mass_refuses_a_mass_outside_0_1(mass):
    with pytest.raises(ValueError, match="mass must lie in"):
        lg.regions_of_mass(_grid_from(lambda z: _gauss(z, [0.0, 0.0], [1.0, 1.0]), n=11), mass)


def test_the_browsers_forward_pass_in_numpy_is_decode_from_weights(x_test):
    """Notebook 07 used to run this loop in its explorer cell: the weights the widget sends (base64 float32),
    decoded and run layer by layer as explorer.js does (SiLU, then a sigmoid on the last layer)."""
    model = tiny(2)
    widget = explorer.latent_explorer(model, x_test[:30], torch.zeros(30, dtype=torch.long), lim=3.0)
    z = 3.0 * (2 * torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) - 1)
    h = z.numpy()
    layers = widget.decoder["layers"]
    for k, layer in enumerate(layers):
        w = explorer.from_base64(layer["w"]).reshape(layer["n_out"], layer["n_in"])
        b = explorer.from_base64(layer["b"]).reshape(layer["n_out"])
        s = h @ w.T + b
        h = 1 / (1 + np.exp(-s)) if k == len(layers) - 1 else s / (1 + np.exp(-s))
    assert np.array_equal(h, explorer.decode_from_weights(widget.decoder, z))
    assert np.abs(h - model.decode(z).numpy()).max() < 1e-5
    widget.digit = 0  # what typing 0 in the box does
    assert np.allclose(widget.overlay["q_mean"], model.encode_mean(x_test[:1])[0].numpy(), atol=1e-4)


def test_notebook_07s_kl_loop_is_kl_on_grid(x_test):
    model, x = tiny(3), x_test[5]
    with torch.no_grad():
        mean, log_std = model.encoder.params(x[None])
    q = (mean[0], log_std[0].exp())
    _, grid = lg.zoomed_posterior_grid(model, x, covering=[q], lim=5.0, n=81)
    log_post = grid.log_joint - grid.log_px
    m, s = q
    log_q = (Normal(m[0].double(), s[0].double()).log_prob(grid.z1)[:, None]
             + Normal(m[1].double(), s[1].double()).log_prob(grid.z2)[None, :])
    w = torch.softmax(log_q.flatten(), 0).reshape(log_q.shape)
    assert math.isclose(float((w * (log_q - log_post)).sum()), lg.kl_on_grid(grid, *q), rel_tol=1e-5, abs_tol=1e-6)


def test_the_autoencoder_is_the_2d_recipe_without_the_kl_trained_as_long():
    assert vae.RECIPES["2d-ae"] == dataclasses.replace(vae.RECIPES["2d"], kl_weight=0.0)
    assert vae.RECIPES["2d-ae"].n_steps == vae.RECIPES["2d"].n_steps == 5000
