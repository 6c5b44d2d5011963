"""gradient_estimator_explorer (notebook 05), driven from Python: every control redraws, the estimates
in its state are unbiased for the true gradient 1, the score function is far noisier than the pathwise
estimator in high dimension, and the estimates are recomputed here from the documented fixed draws
eps = torch.randn(n_repeats * K, d, generator=torch.Generator().manual_seed(seed), dtype=float64)
(mu = 1, a = 0.5, z = mu + sigma * eps, f(z) = ||z - a||^2, d/dmu_1)."""
import math

import ipywidgets as widgets
import pytest
import torch

from vae_lesson.widgets import WidgetParts, gradient_estimator_explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_REPEATS, SEED = 100, 0
N_SE = 4.0
ESTIMATORS = ("score", "score_baseline", "pathwise")


@pytest.fixture()
def parts():
    return gradient_estimator_explorer(n_repeats=N_REPEATS, seed=SEED)


def set_controls(parts, **values):
    for name, value in values.items():
        parts.controls[name].value = value
    return parts.state


def by_hand(how, d, sigma, k, n_repeats=N_REPEATS, seed=SEED):
    """The (n_repeats,) estimates of d/dmu_1 E||z - a||^2, each the mean of K single-sample estimates,
    from the same eps, with the formulas written out:
    pathwise 2 (z_1 - a_1); score f(z) (z_1 - mu_1) / sigma^2; with the baseline, f minus the mean of f
    over the other samples of the same group of K."""
    eps = torch.randn(n_repeats * k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = 1.0 + sigma * eps
    if how == "pathwise":
        single = 2 * (z[:, 0] - 0.5)
    else:
        f = ((z - 0.5) ** 2).sum(-1)
        if how == "score_baseline" and k >= 2:
            groups = f.reshape(n_repeats, k)
            f = (groups - (groups.sum(1, keepdim=True) - groups) / (k - 1)).reshape(-1)
        single = f * (z[:, 0] - 1.0) / sigma**2
    return single.reshape(n_repeats, k).mean(1)


def test_builds_the_parts(parts):
    assert isinstance(parts, WidgetParts)
    assert set(parts.controls) == {"estimator", "dim", "sigma", "k"}
    assert [v for _, v in parts.controls["estimator"].options] == list(ESTIMATORS)
    assert isinstance(parts.box, widgets.Box)
    assert bytes(parts.image.value).startswith(PNG_MAGIC)
    state = parts.state
    assert (state["estimator"], state["dim"], state["sigma"], state["k"]) == ("score", 10, 1.0, 4)
    assert state["estimates"].shape == (N_REPEATS,) and state["estimates"].dtype == torch.float64
    assert state["std"] == pytest.approx(state["estimates"].std().item(), rel=1e-12)
    assert "true 1.000" in parts.label.value
    assert f"{state['estimates'].mean().item():.3f}" in parts.label.value
    assert f"<b>{state['std']:.3f}</b>" in parts.label.value
    assert "K >= 2" not in parts.label.value


@pytest.mark.parametrize("control, value", [
    ("estimator", "pathwise"), ("estimator", "score_baseline"), ("dim", 30), ("dim", 1),
    ("sigma", 0.3), ("k", 16), ("k", 1),
])
def test_each_control_redraws(parts, control, value):
    before_image, before_estimates = bytes(parts.image.value), parts.state["estimates"].clone()
    before_label = parts.label.value
    parts.controls[control].value = value
    assert parts.state[control] == value
    assert bytes(parts.image.value) != before_image
    assert bytes(parts.image.value).startswith(PNG_MAGIC)
    assert parts.label.value != before_label
    assert not torch.equal(parts.state["estimates"], before_estimates)


@pytest.fixture(scope="module")
def shared():
    """One widget for the tests that set every control they rely on (each redraw renders a figure)."""
    return gradient_estimator_explorer(n_repeats=N_REPEATS, seed=SEED)


SETTINGS = [dict(dim=10, sigma=1.0, k=4), dict(dim=30, sigma=1.0, k=16), dict(dim=1, sigma=0.1, k=1),
            dict(dim=3, sigma=3.0, k=4), dict(dim=100, sigma=0.3, k=64)]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "d{dim}-sigma{sigma}-k{k}".format(**s))
def test_estimates_are_unbiased_and_reproduce_by_hand(shared, settings):
    for how in ESTIMATORS:
        state = set_controls(shared, estimator=how, **settings)
        est = state["estimates"]
        assert (state["estimator"], state["dim"], state["k"]) == (how, settings["dim"], settings["k"])
        se = est.std().item() / math.sqrt(N_REPEATS)
        assert abs(est.mean().item() - 1.0) <= N_SE * se + 1e-12, (how, settings, est.mean().item(), se)
        want = by_hand(how, state["dim"], state["sigma"], state["k"])
        torch.testing.assert_close(est, want, rtol=1e-10, atol=1e-10)


def test_reproduction_can_fail(shared):
    """The by-hand estimates depend on the settings: another sigma gives other numbers."""
    state = set_controls(shared, estimator="pathwise", dim=3, sigma=1.0, k=4)
    assert not torch.allclose(state["estimates"], by_hand("pathwise", 3, 0.5, 4), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(state["estimates"], by_hand("pathwise", 3, 1.0, 4, seed=SEED + 1))


def test_pathwise_is_much_less_noisy_in_high_dimension(shared):
    std = {}
    for how in ESTIMATORS:
        std[how] = set_controls(shared, estimator=how, dim=30, sigma=1.0, k=4)["std"]
    # pathwise: 2 sigma / sqrt(K) = 1; score: about sqrt(E[f^2] E[eps^2]) / sqrt(K), f ~ 37.5, so ~ 19
    assert std["pathwise"] == pytest.approx(1.0, rel=0.25)  # 100 repeats: relative SE of a std ~ 7%
    assert std["score"] > 10 * std["pathwise"]
    assert std["score"] > 1.5 * std["score_baseline"] > 1.5 * std["pathwise"]


def test_score_baseline_needs_two_samples(parts):
    state = set_controls(parts, estimator="score_baseline", k=1)
    assert "K >= 2" in parts.label.value
    plain = set_controls(parts, estimator="score")["estimates"]
    assert "K >= 2" not in parts.label.value
    torch.testing.assert_close(state["estimates"], plain, rtol=0, atol=0)  # shown without a baseline
    set_controls(parts, estimator="score_baseline", k=4)
    assert "K >= 2" not in parts.label.value


def test_same_settings_same_picture(parts):
    """Redraws are deterministic: going away and back gives the same estimates and image."""
    image, estimates = bytes(parts.image.value), parts.state["estimates"].clone()
    set_controls(parts, estimator="pathwise")
    set_controls(parts, estimator="score")
    assert torch.equal(parts.state["estimates"], estimates)
    assert bytes(parts.image.value) == image


def test_bad_n_repeats():
    with pytest.raises(ValueError, match="n_repeats"):
        gradient_estimator_explorer(n_repeats=0)
