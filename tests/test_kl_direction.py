"""vae_lesson.kl_direction (notebook 04, mode-seeking): the Gaussian that minimizes KL(q || p) sits on one
mode of a two-mode target, the one that minimizes KL(p || q) matches p's moments, and each is the better
fit by its own divergence. Every integral is a quadrature on a fine grid, checked here against closed forms."""
import math

import matplotlib
import pytest
import torch

from vae_lesson import kl_direction as kd

matplotlib.use("Agg")

TWO_MODES = kd.Mixture1D(weights=(0.6, 0.4), means=(-2.0, 2.0), stds=(0.5, 0.7))  # notebook 04's target


@pytest.fixture(scope="module")
def fits():
    return kd.fit_both(TWO_MODES)


def test_the_quadrature_integrates_the_target_and_its_moments():
    z = kd.grid()
    assert torch.trapezoid(TWO_MODES.log_prob(z).exp(), z).item() == pytest.approx(1.0, abs=1e-12)
    mean, var = TWO_MODES.moments()
    assert mean == pytest.approx(0.6 * -2 + 0.4 * 2) and var == pytest.approx(0.6 * 4.25 + 0.4 * 4.49 - mean**2)


def test_kl_between_gaussians_matches_the_closed_form():
    """KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2, on the grid."""
    single = kd.Mixture1D((1.0,), (0.3,), (1.4,))
    m, s = -0.5, 0.8
    exact = math.log(1.4 / s) + (s**2 + (m - 0.3) ** 2) / (2 * 1.4**2) - 0.5
    assert kd.reverse_kl(single, m, s).item() == pytest.approx(exact, abs=1e-9)
    exact_fwd = math.log(s / 1.4) + (1.4**2 + (m - 0.3) ** 2) / (2 * s**2) - 0.5
    assert kd.forward_kl(single, m, s).item() == pytest.approx(exact_fwd, abs=1e-9)


def test_the_reverse_fit_of_a_single_gaussian_recovers_it():
    single = kd.Mixture1D((1.0,), (1.3,), (0.7,))
    mean, std = kd.fit_reverse(single)
    assert mean == pytest.approx(1.3, abs=1e-6) and std == pytest.approx(0.7, abs=1e-6)
    assert kd.reverse_kl(single, mean, std).item() == pytest.approx(0.0, abs=1e-10)


def test_the_forward_fit_is_the_targets_moments(fits):
    mean, var = TWO_MODES.moments()
    assert fits.forward[0] == pytest.approx(mean, abs=1e-6)
    assert fits.forward[1] == pytest.approx(math.sqrt(var), abs=1e-6)


def test_the_forward_fit_minimizes_the_forward_kl(fits):
    """Moment matching is the minimum of KL(p || q): any nearby (mean, std) has a larger forward KL."""
    base = fits.kl["forward"][1]
    m, s = fits.forward
    for dm, ds in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)):
        assert kd.forward_kl(TWO_MODES, m + dm, s + ds).item() > base


def test_each_fit_is_the_better_one_by_its_own_divergence(fits):
    reverse_of = {name: v[0] for name, v in fits.kl.items()}
    forward_of = {name: v[1] for name, v in fits.kl.items()}
    assert reverse_of["reverse"] < reverse_of["forward"]
    assert forward_of["forward"] < forward_of["reverse"]


def test_the_reverse_fit_sits_on_a_mode_and_the_forward_fit_between(fits):
    modes = TWO_MODES.modes()
    assert len(modes) == 2
    mean, std = fits.reverse
    assert min(abs(mean - m) for m in modes) < 0.05, (mean, modes)  # on the heavier mode, -2
    assert mean == pytest.approx(-2.0, abs=0.05) and std == pytest.approx(0.5, abs=0.05)
    # on one mode, KL(q || p) is about -log of that mode's weight
    assert fits.kl["reverse"][0] == pytest.approx(-math.log(0.6), abs=0.01)
    # the forward fit's peak lies between the modes, where p has little density
    peak = TWO_MODES.log_prob(torch.tensor([-2.0])).exp().item()
    assert TWO_MODES.log_prob(torch.tensor([fits.forward[0]])).exp().item() < 0.01 * peak


def test_the_other_mode_is_a_local_optimum_of_the_reverse_kl():
    optima = kd.reverse_local_optima(TWO_MODES)
    by_start = dict(zip(["left", "right", "moments"], optima))
    assert by_start["right"][0] == pytest.approx(2.0, abs=0.05)
    assert by_start["right"][2] == pytest.approx(-math.log(0.4), abs=0.01)
    assert min(t[2] for t in optima) == pytest.approx(by_start["left"][2])


def test_draw_labels_both_fits(fits):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    kd.draw(ax, fits)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 3 and "KL(q || p)" in labels[1] and "KL(p || q)" in labels[2]
    assert f"{fits.kl['reverse'][0]:.2f}" in labels[1]


def test_bad_targets_are_refused():
    with pytest.raises(ValueError):
        kd.Mixture1D((0.5, 0.4), (0.0, 1.0), (1.0, 1.0))
    with pytest.raises(ValueError):
        kd.Mixture1D((0.5, 0.5), (0.0, 1.0), (1.0, -1.0))
