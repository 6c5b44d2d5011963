"""missing_half_explorer (notebook 04), driven from Python: presets, painting, the digit choice,
and the numbers in its state, recomputed here from the documented fixed uniforms
torch.rand(n_samples, 32, generator=torch.Generator().manual_seed(seed))."""
import ipywidgets as widgets
import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from vae_lesson import missing_half as mh
from vae_lesson.bernoulli_mixture import fit_bernoulli_mixture, observed_bottom_half
from vae_lesson.data import load_digits
from vae_lesson.widgets import PRESETS, WidgetParts, missing_half_explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_SAMPLES, SEED = 1000, 4
LABELS = (9, 4, 7)


@pytest.fixture(scope="module")
def setup():
    digits = load_digits(binarized=True)
    model, _ = fit_bernoulli_mixture(digits.x_train, n_components=10, n_iter=20, seed=0)
    show = torch.tensor([int((digits.y_test == k).nonzero()[0]) for k in LABELS])
    return model, digits.x_test[show], digits.y_test[show], observed_bottom_half()


@pytest.fixture()
def parts(setup):
    model, images, labels, observed = setup
    return missing_half_explorer(model, images, labels, observed, n_samples=N_SAMPLES, seed=SEED)


def uniforms():
    return torch.rand(N_SAMPLES, 32, generator=torch.Generator().manual_seed(SEED))


def log_p_bottom_by_hand(model, x):
    """log p(x_bottom), numpy float64: the mixture over the 32 observed (bottom) pixels only."""
    w, p = model.weights.double().numpy(), model.probs.double().numpy()[:, 32:]
    xb = x[32:].double().numpy()
    return float(logsumexp(np.log(w) + xb @ np.log(p).T + (1 - xb) @ np.log1p(-p).T))


def expected_phi(name, model, x, observed):
    top = x[~observed]
    return {
        "0.5 everywhere": torch.full((32,), 0.5),
        "1 everywhere": torch.ones(32),
        "top of the true digit": torch.where(top > 0, torch.tensor(0.95), torch.tensor(0.05)),
        "exact posterior marginals": model.missing_marginals(x[None], observed)[0][~observed].float(),
    }[name]


def assert_state_consistent(parts, setup):
    """state elbo == elbo_missing with the same uniforms; kl == log_px - elbo; log_px exact."""
    model, images, _, observed = setup
    state = parts.state
    x = images[state["digit"]]
    est = mh.elbo_missing(model, x, observed, state["phi"], N_SAMPLES, uniforms=uniforms())
    assert state["elbo"] == pytest.approx(est.value.item(), abs=1e-5)
    assert state["elbo_se"] == pytest.approx(est.std_error.item(), abs=1e-5)
    assert state["log_px"] == pytest.approx(model.log_marginal_observed(x[None], observed).item(), abs=1e-6)
    assert state["log_px"] == pytest.approx(log_p_bottom_by_hand(model, x), abs=1e-4)
    assert state["kl"] == pytest.approx(state["log_px"] - state["elbo"], abs=1e-9)
    assert state["kl"] >= -4 * state["elbo_se"] - 1e-5  # ELBO <= log p(x_bottom), up to Monte Carlo error
    assert f"{state['log_px']:.3f}" in parts.label.value and f"{state['elbo']:.3f}" in parts.label.value


def test_builds_the_parts(parts, setup):
    assert isinstance(parts, WidgetParts)
    assert set(parts.controls) == {"digit", "preset", "pixels"}
    assert len(parts.controls["pixels"]) == 32
    assert parts.controls["digit"].value == 0 and parts.controls["preset"].value == "0.5 everywhere"
    assert [v for _, v in parts.controls["digit"].options] == [0, 1, 2]
    assert "a 9" in parts.controls["digit"].options[0][0]
    assert isinstance(parts.box, widgets.Box)
    assert bytes(parts.image.value).startswith(PNG_MAGIC)
    assert set(parts.state) >= {"digit", "preset", "phi", "elbo", "elbo_se", "log_px", "kl"}
    assert torch.equal(parts.state["phi"], torch.full((32,), 0.5))
    assert_state_consistent(parts, setup)


@pytest.mark.parametrize("name", ["1 everywhere", "top of the true digit", "exact posterior marginals"])
def test_each_preset_sets_phi_and_redraws(parts, setup, name):
    model, images, _, observed = setup
    before_image, before_elbo = bytes(parts.image.value), parts.state["elbo"]
    parts.controls["preset"].value = name
    assert parts.state["preset"] == name
    torch.testing.assert_close(parts.state["phi"], expected_phi(name, model, images[0], observed), rtol=0, atol=1e-6)
    assert parts.state["elbo"] != before_elbo
    assert bytes(parts.image.value) != before_image
    assert_state_consistent(parts, setup)
    # the paint grid mirrors phi (on where phi > 0.5)
    assert [p.value for p in parts.controls["pixels"]] == (parts.state["phi"] > 0.5).tolist()


def test_back_to_half_everywhere(parts, setup):
    parts.controls["preset"].value = "1 everywhere"
    parts.controls["preset"].value = "0.5 everywhere"
    assert torch.equal(parts.state["phi"], torch.full((32,), 0.5))
    assert not any(p.value for p in parts.controls["pixels"])
    assert_state_consistent(parts, setup)


def test_clicking_a_pixel_paints(parts, setup):
    parts.controls["preset"].value = "top of the true digit"
    phi_before = parts.state["phi"].clone()
    before_image = bytes(parts.image.value)
    j = int(torch.nonzero(phi_before < 0.5)[0])  # a hidden pixel that is off in the true top
    parts.controls["pixels"][j].value = True
    assert parts.controls["preset"].value == "painted" and parts.state["preset"] == "painted"
    assert parts.state["phi"][j].item() == pytest.approx(0.95)
    others = torch.arange(32) != j
    torch.testing.assert_close(parts.state["phi"][others], phi_before[others])  # the rest as it was
    assert bytes(parts.image.value) != before_image
    assert_state_consistent(parts, setup)
    parts.controls["pixels"][j].value = False  # and back
    assert parts.state["phi"][j].item() == pytest.approx(0.05)
    torch.testing.assert_close(parts.state["phi"], phi_before)
    assert parts.state["preset"] == "painted"
    assert_state_consistent(parts, setup)


def test_changing_the_digit_recomputes(parts, setup):
    model, images, _, observed = setup
    parts.controls["preset"].value = "top of the true digit"
    log_px_0, image_0 = parts.state["log_px"], bytes(parts.image.value)
    for i in (1, 2):
        parts.controls["digit"].value = i
        assert parts.state["digit"] == i
        want = model.log_marginal_observed(images[i][None], observed).item()
        assert parts.state["log_px"] == pytest.approx(want, abs=1e-6)
        want_phi = expected_phi("top of the true digit", model, images[i], observed)
        torch.testing.assert_close(parts.state["phi"], want_phi)
        assert_state_consistent(parts, setup)
    assert parts.state["log_px"] != log_px_0
    assert bytes(parts.image.value) != image_0


def test_preset_ranking_for_a_nine(parts, setup):
    """The presets on the first test 9 of a 10-component model: the true top (an oracle that reads the
    hidden pixels, labelled as such) beats 'no idea', which beats 'all ink', and the exact marginals
    beat them all (each gap many standard errors). This orders the presets; the lecture ranks nothing."""
    assert int(setup[2][0]) == 9
    elbo, se = {}, {}
    for name in ("top of the true digit", "0.5 everywhere", "1 everywhere", "exact posterior marginals"):
        parts.controls["preset"].value = name
        elbo[name], se[name] = parts.state["elbo"], parts.state["elbo_se"]
    # phi = 1: every sample is the all-ink top, so the standard error is zero up to the float32
    # round-off of averaging identical values (not exactly 0 on every CPU)
    assert se["1 everywhere"] <= abs(elbo["1 everywhere"]) * torch.finfo(torch.float32).eps
    margin = 4 * max(se.values())
    assert elbo["top of the true digit"] > elbo["0.5 everywhere"] + margin
    assert elbo["0.5 everywhere"] > elbo["1 everywhere"] + margin
    assert elbo["exact posterior marginals"] > elbo["top of the true digit"] + margin


def test_presets_list():
    assert PRESETS[:4] == ("0.5 everywhere", "1 everywhere", "top of the true digit", "exact posterior marginals")
    assert "painted" in PRESETS


def test_choosing_painted_directly_uses_what_the_grid_shows(parts, setup):
    """After "0.5 everywhere" the grid shows every pixel off; picking "painted" must then mean
    phi = 0.05 everywhere (what the grid shows), not keep the hidden 0.5."""
    parts.controls["preset"].value = "0.5 everywhere"
    parts.controls["preset"].value = "painted"
    shown = torch.tensor([0.95 if p.value else 0.05 for p in parts.controls["pixels"]])
    assert torch.equal(parts.state["phi"], shown)
    assert_state_consistent(parts, setup)
