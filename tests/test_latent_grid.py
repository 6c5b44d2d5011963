"""vae_lesson.latent_grid: the true posterior p(z | x) of a 2-D VAE on a grid, its normalizer (a third
estimate of log p(x)) and KL(q || p(z | x)) by quadrature. Checked against closed forms (a decoder
that ignores z has posterior = prior, so log p(x) and the KL are exact), against importance
sampling and Monte Carlo ELBOs on a decoder that does depend on z, and for its input checks.
Tiny models only (hidden 16, one layer)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import distributions as D

from vae_lesson import latent_grid as lg
from vae_lesson.data import load_digits
from vae_lesson.vae import VAE, elbo_draws_of_q


@pytest.fixture(scope="module")
def x_test():
    return load_digits(binarized=True).x_test


def tiny(seed: int = 0, latent_dim: int = 2, decoder_scale: float = 3.0) -> VAE:
    """A small untrained VAE whose decoder's last layer is scaled up, so that p(x | z) changes with z
    and the posterior is neither the prior nor a Gaussian."""
    torch.manual_seed(seed)
    model = VAE(latent_dim=latent_dim, hidden=16, layers=1).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight *= decoder_scale
    return model


def blind(seed: int = 0) -> VAE:
    """A VAE whose decoder ignores z (last layer's weights zero): p(x | z) = p(x), so p(z | x) = p(z)."""
    model = tiny(seed)
    with torch.no_grad():
        model.decoder.net[-1].weight.zero_()
    return model


def bernoulli_log_prob(model: VAE, x: torch.Tensor) -> float:
    """log p(x) of the blind decoder, by hand: sum_j x_j log sigmoid(b_j) + (1 - x_j) log sigmoid(-b_j)."""
    b = model.decoder.net[-1].bias.detach().double()
    return float((x.double() * torch.nn.functional.logsigmoid(b) + (1 - x.double()) * torch.nn.functional.logsigmoid(-b)).sum())


def kl_gauss_to_standard(mean, std) -> float:
    """KL(N(mean, diag std^2) || N(0, I)) in closed form."""
    mean, std = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)
    return float(0.5 * (std ** 2 + mean ** 2 - 1 - 2 * std.log()).sum())


# ----------------------------------------------------------------------------------------------
# Closed forms: a decoder that ignores z


def test_blind_decoder_posterior_is_the_prior(x_test):
    model, x = blind(), x_test[3]
    grid = lg.posterior_grid(model, x, lim=7.0, n=141)
    assert grid.log_px == pytest.approx(bernoulli_log_prob(model, x), abs=1e-5)
    mean, std = grid.mean_and_std()
    assert mean.abs().max() < 1e-6 and torch.allclose(std, torch.ones(2, dtype=torch.float64), atol=1e-4)
    prior = D.Normal(0.0, 1.0).log_prob(grid.z1)[:, None] + D.Normal(0.0, 1.0).log_prob(grid.z2)[None, :]
    assert torch.allclose(grid.log_posterior, prior.double(), atol=1e-5)
    assert grid.cell_mass.sum() == pytest.approx(1.0, abs=1e-12)
    assert grid.border_mass < 1e-9  # beyond 7 standard deviations


@pytest.mark.parametrize("mean, std", [((0.0, 0.0), (1.0, 1.0)), ((0.8, -0.5), (0.3, 0.6)), ((-1.5, 1.0), (1.4, 0.9))])
def test_kl_and_elbo_on_grid_match_closed_forms(x_test, mean, std):
    model, x = blind(), x_test[0]
    grid = lg.posterior_grid(model, x, lim=8.0, n=161)
    # (tolerance: the model's log p(z) is float32, about 1e-6 relative at |z| up to 8)
    assert lg.kl_on_grid(grid, mean, std) == pytest.approx(kl_gauss_to_standard(mean, std), abs=1e-4)
    # ELBO = log p(x) - KL exactly here, and on any grid the two computed values obey the identity
    assert lg.elbo_on_grid(grid, mean, std) == pytest.approx(bernoulli_log_prob(model, x) - kl_gauss_to_standard(mean, std), abs=1e-4)
    assert lg.kl_on_grid(grid, mean, std) == pytest.approx(grid.log_px - lg.elbo_on_grid(grid, mean, std), abs=1e-9)


def test_mass_outside_and_border_mass_of_a_standard_normal(x_test):
    grid = lg.posterior_grid(blind(), x_test[0], lim=6.0, n=121)
    # the cells whose centres lie in [-1, 1]^2 (spacing 0.1) cover [-1.05, 1.05]^2, whose mass under
    # N(0, I) is (Phi(1.05) - Phi(-1.05))^2 = erf(1.05 / sqrt 2)^2
    inside = math.erf(1.05 / math.sqrt(2)) ** 2
    assert grid.mass_outside((0.0, 0.0), 1.0) == pytest.approx(1 - inside, abs=1e-3)
    assert grid.mass_outside((0.0, 0.0), 5.9) < 1e-6


def test_mass_levels_of_a_gaussian_are_its_ellipses(x_test):
    """For N(0, I) the region of mass m is the disc of radius r = sqrt(-2 ln(1 - m)), whose edge has
    density exp(-r^2 / 2) / (2 pi) = (1 - m) / (2 pi)."""
    grid = lg.posterior_grid(blind(), x_test[0], lim=6.0, n=241)
    levels = lg.mass_levels(grid.log_posterior, (0.5, 0.9, 0.99))
    expected = sorted((1 - m) / (2 * math.pi) for m in (0.5, 0.9, 0.99))
    assert levels == pytest.approx(expected, rel=0.03)
    density = grid.log_posterior.exp()
    for level, m in zip(levels, (0.99, 0.9, 0.5)):  # increasing levels: masses 0.99, 0.9, 0.5
        assert float(grid.cell_mass[density >= level].sum()) == pytest.approx(m, abs=0.01)


# ----------------------------------------------------------------------------------------------
# A decoder that depends on z: independent estimators


def test_grid_log_px_converges_and_matches_importance_sampling(x_test):
    model, x = tiny(), x_test[5]
    coarse, fine = lg.posterior_grid(model, x, lim=6.0, n=61), lg.posterior_grid(model, x, lim=6.0, n=181)
    assert coarse.log_px == pytest.approx(fine.log_px, abs=1e-3)
    assert fine.border_mass < 1e-6
    # importance sampling from a wide Gaussian proposal, many draws: an independent estimate
    q = D.Independent(D.Normal(torch.zeros(1, 2), 1.5 * torch.ones(1, 2)), 1)
    with torch.no_grad():
        z = q.sample((200_000,))
        log_w = (model.joint_log_prob(x[None], z) - q.log_prob(z))[:, 0]
    iw = lg.log_mean_exp_with_se(log_w)
    assert abs(fine.log_px - float(iw.value)) < 4 * float(iw.std_error) + 1e-3
    assert float(iw.std_error) < 0.01  # the check above is not vacuous


def test_kl_on_grid_equals_log_px_minus_monte_carlo_elbo(x_test):
    model, x = tiny(seed=1), x_test[7]
    with torch.no_grad():
        mean, log_std = model.encoder.params(x[None])
    qs = [(mean[0], log_std[0].exp()), (mean[0] + 0.4, 0.5 * log_std[0].exp())]
    coarse, grid = lg.zoomed_posterior_grid(model, x, covering=qs, n=121)
    eps = torch.randn(40_000, 1, 2, generator=torch.Generator().manual_seed(3))
    for m, s in qs:
        with torch.no_grad():
            draws = elbo_draws_of_q(model, x[None], m[None], s.log()[None], eps, chunk_size=10_000)[:, 0].double()
        elbo, se = float(draws.mean()), float(draws.std()) / math.sqrt(len(draws))
        kl = lg.kl_on_grid(grid, m, s)
        assert abs((grid.log_px - elbo) - kl) < 4 * se + 1e-4
        assert kl > 0
        assert lg.elbo_on_grid(grid, m, s) == pytest.approx(elbo, abs=4 * se + 1e-4)


def test_zoomed_grid_covers_posterior_and_qs(x_test):
    model, x = tiny(seed=2), x_test[11]
    far = (torch.tensor([3.0, -3.0]), torch.tensor([0.2, 0.2]))
    coarse, fine = lg.zoomed_posterior_grid(model, x, covering=[far], lim=5.0, n=101)
    assert fine.border_mass < 1e-6 and coarse.border_mass < 1e-6
    assert fine.log_px == pytest.approx(coarse.log_px, abs=2e-3)
    # the fine grid reaches 6 std beyond the far q on every side
    assert fine.z1[-1] >= 3.0 + 6 * 0.2 - 1e-6 and fine.z2[0] <= -3.0 - 6 * 0.2 + 1e-6
    assert lg.kl_on_grid(fine, *far) > 0  # computable: q lies on the grid


def test_importance_log_px_is_log_marginal_with_its_error(x_test):
    model, x = tiny(), x_test[2]
    est = lg.importance_log_px(model, x, n_samples=3000, seed=4)
    assert float(est.value) == pytest.approx(float(model.log_marginal(x, 3000, chunk_size=3000, seed=4)), abs=1e-4)
    # the standard error shrinks like 1 / sqrt(K)
    big = lg.importance_log_px(model, x, n_samples=48_000, seed=5)
    assert float(big.std_error) == pytest.approx(float(est.std_error) / 4, rel=0.35)


def test_log_mean_exp_with_se_by_hand():
    rng = np.random.default_rng(0)
    log_w = rng.normal(size=500) - 40.0  # tiny weights: a naive exp would lose them
    est = lg.log_mean_exp_with_se(torch.tensor(log_w))
    w = np.exp(log_w + 40.0)
    assert float(est.value) == pytest.approx(math.log(w.mean()) - 40.0, abs=1e-10)
    assert float(est.std_error) == pytest.approx(w.std(ddof=1) / math.sqrt(500) / w.mean(), rel=1e-9)
    equal = lg.log_mean_exp_with_se(torch.full((10,), -3.0))
    assert float(equal.value) == pytest.approx(-3.0) and float(equal.std_error) < 1e-12


def test_draw_posterior_panels_titles_carry_the_kls(x_test):
    model, x = tiny(), x_test[0]
    with torch.no_grad():
        mean, log_std = model.encoder.params(x[None])
    qs = {"encoder": (mean[0], log_std[0].exp()), "other": (mean[0] + 0.3, log_std[0].exp())}
    _, grid = lg.zoomed_posterior_grid(model, x, covering=list(qs.values()))
    fig, axes = plt.subplots(1, 4)
    lg.draw_posterior_panels(axes, grid, x, qs)
    assert f"{grid.log_px:.2f}" in axes[1].get_title()
    for ax, q in zip(axes[2:], qs.values()):
        assert f"= {lg.kl_on_grid(grid, *q):.2f} nats" in ax.get_title()
        assert len(ax.patches) == 3  # the 50%, 90%, 99% ellipses of q
    lo, hi = axes[1].get_xlim()
    assert hi - lo < float(grid.z1[-1] - grid.z1[0]) + 1e-9  # zoomed in, not wider than the grid


# ----------------------------------------------------------------------------------------------
# Input checks


def test_rejects_models_without_a_2d_latent(x_test):
    with pytest.raises(ValueError, match="2-D latent"):
        lg.posterior_grid(tiny(latent_dim=3), x_test[0])


@pytest.mark.parametrize("bad, match", [
    (lambda x: x[:2], "ONE image"),
    (lambda x: x[0, :60], "64 pixels"),
    (lambda x: x[0] * 0.5, "binary"),
    (lambda x: torch.full((64,), float("nan")), "NaN"),
])
def test_rejects_bad_images(x_test, bad, match):
    with pytest.raises(ValueError, match=match):
        lg.posterior_grid(tiny(), bad(x_test))


def test_accepts_a_1_by_64_image(x_test):
    model = tiny()
    assert lg.posterior_grid(model, x_test[:1], n=21).log_px == pytest.approx(lg.posterior_grid(model, x_test[0], n=21).log_px)


@pytest.mark.parametrize("kwargs, match", [({"n": 2}, "at least 3"), ({"n": 0}, "positive integer"),
                                           ({"lim": 0.0}, "positive number"), ({"lim": float("inf")}, "positive number"),
                                           ({"center": (0.0, 0.0, 0.0)}, "2 numbers")])
def test_rejects_bad_grids(x_test, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lg.posterior_grid(tiny(), x_test[0], **kwargs)


@pytest.mark.parametrize("mean, std, match", [
    ((0.0, 0.0), (-1.0, 1.0), "strictly positive"),
    ((0.0, 0.0, 0.0), (1.0, 1.0), "2 numbers"),
    ((float("nan"), 0.0), (1.0, 1.0), "NaN"),
    ((9.0, 0.0), (0.5, 0.5), "does not cover q"),  # q lies off the grid
    ((0.0, 0.0), (0.01, 0.01), "too coarse"),  # q narrower than a cell
])
def test_rejects_bad_qs(x_test, mean, std, match):
    grid = lg.posterior_grid(tiny(), x_test[0], lim=5.0, n=51)
    with pytest.raises(ValueError, match=match):
        lg.kl_on_grid(grid, mean, std)
    with pytest.raises(ValueError, match=match):
        lg.elbo_on_grid(grid, mean, std)


def test_rejects_bad_log_weights():
    with pytest.raises(ValueError, match="vector of at least 2"):
        lg.log_mean_exp_with_se(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        lg.log_mean_exp_with_se(torch.tensor([0.0, float("nan")]))


# ----------------------------------------------------------------------------------------------
# The decoder's work on a fixed grid, done once for many images (the posterior explorer)

def test_decoded_grid_is_the_posterior_grid(x_test):
    """DecodedGrid(model).grid_for(x) = posterior_grid(model, x) on the same grid (a matrix-vector
    product instead of n^2 decoder passes), up to float32 round-off, for several digits."""
    model = tiny(3)
    decoded = lg.DecodedGrid(model, lim=4.0, n=31)
    for i in (0, 7, 19):
        a, b = decoded.grid_for(x_test[i]), lg.posterior_grid(model, x_test[i], lim=4.0, n=31)
        assert torch.equal(a.z1, b.z1) and a.cell_area == pytest.approx(b.cell_area)
        torch.testing.assert_close(a.log_joint, b.log_joint, rtol=0, atol=1e-4)
        assert a.log_px == pytest.approx(b.log_px, abs=1e-5)


def test_zoomed_grid_with_a_decoded_coarse_grid_is_the_same(x_test):
    model, x = tiny(4), x_test[11]
    q = (torch.tensor([0.3, -0.2]), torch.tensor([0.4, 0.5]))
    c1, f1 = lg.zoomed_posterior_grid(model, x, covering=[q], n=41)
    c2, f2 = lg.zoomed_posterior_grid(model, x, covering=[q], n=41, decoded=lg.DecodedGrid(model))
    assert torch.allclose(f1.z1, f2.z1) and torch.allclose(f1.z2, f2.z2)
    assert f1.log_px == pytest.approx(f2.log_px, abs=1e-6) and c1.log_px == pytest.approx(c2.log_px, abs=1e-5)


def test_shown_window_holds_the_posterior_and_the_qs(x_test):
    model, x = tiny(5), x_test[2]
    q = (torch.tensor([2.5, -2.0]), torch.tensor([0.1, 0.2]))
    _, grid = lg.zoomed_posterior_grid(model, x, covering=[q], n=41)
    lo, hi = lg.shown_window(grid, [q])
    assert float((hi - lo)[0]) == pytest.approx(float((hi - lo)[1]))  # a square
    assert bool((lo <= q[0] - 3.5 * q[1]).all() and (hi >= q[0] + 3.5 * q[1]).all())
    centre, half = (lo + hi) / 2, float(hi[0] - lo[0]) / 2
    assert grid.mass_outside(centre, half) < 1e-3
