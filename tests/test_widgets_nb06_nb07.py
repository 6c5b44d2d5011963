"""The widgets of notebooks 06 and 07 (latent_explorer, interpolation_explorer, refinement_explorer),
driven from Python: setting a control's ``.value`` runs its callback at once. What they draw is
compared with numbers computed here from the model's own layers (encoder mean = the first half of
``encoder.net(x)``, pixel probabilities = sigmoid(``decoder.net(z)``)), on small untrained VAEs whose
last layers are scaled up so that the encoder means spread over the plane and the decoded digits
change with z."""
import io
import math
import time

import ipywidgets as widgets
import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F

import vae_lesson.vae
from vae_lesson import plots
from vae_lesson.data import load_digits
from vae_lesson.vae import VAE
from vae_lesson.widgets import (WidgetParts, _draw_cross, _latent_background, interpolation_explorer,
                                latent_explorer, refinement_explorer)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RED = np.array([214, 39, 40], dtype=np.uint8)  # the cross, in the RGB PNG
N_DIGITS, LIM, STEP = 12, 3.0, 0.05
N_STEPS = 20


def spread_vae(seed: int = 0, latent_dim: int = 2) -> VAE:
    """A small untrained VAE; its encoder means spread over about [0.9, 2.1] x [-0.2, 1.8] (12 test
    digits) and its decoder's pixel probabilities range over about [0.04, 0.99]."""
    torch.manual_seed(seed)
    model = VAE(latent_dim=latent_dim, hidden=16, layers=1).eval()
    with torch.no_grad():
        model.encoder.net[-1].weight[:latent_dim] *= 8
        model.encoder.net[-1].bias[:latent_dim] = 0
        model.decoder.net[-1].weight *= 4
    return model


def mean_by_hand(model, x):
    """mu_phi(x): the first latent_dim outputs of the encoder network."""
    with torch.no_grad():
        return model.encoder.net(x)[:, :model.latent_dim]


def probs_by_hand(model, z):
    """sigmoid(f_theta(z)): the decoder network's logits through a sigmoid."""
    with torch.no_grad():
        return torch.sigmoid(model.decoder.net(z))


def png_array(data) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(bytes(data))))


def block_centres(grey: np.ndarray, scale: int) -> np.ndarray:
    """The value at the centre of each scale x scale block of a greyscale image."""
    return grey[scale // 2::scale, scale // 2::scale]


def expected_grey(p) -> np.ndarray:
    """255 (1 - p), as 8-bit grey levels (ink black on white)."""
    return 255 * (1 - np.asarray(p, dtype=float))


@pytest.fixture(scope="module")
def digits():
    d = load_digits(binarized=True)
    return d.x_test[:N_DIGITS], d.y_test[:N_DIGITS]


@pytest.fixture(scope="module")
def model():
    return spread_vae()


# ----------------------------------------------------------------------------------------------
# latent_explorer


@pytest.fixture()
def latent(model, digits):
    return latent_explorer(model, *digits, lim=LIM)


def set_z(parts, z1, z2):
    parts.controls["z1"].value = z1
    parts.controls["z2"].value = z2
    return parts.state


def test_latent_explorer_rejects_a_latent_that_is_not_2d(digits):
    with pytest.raises(ValueError, match=r"2-D latent space, got latent_dim=3"):
        latent_explorer(spread_vae(latent_dim=3), *digits)


def test_latent_explorer_builds_the_parts(latent):
    assert isinstance(latent, WidgetParts)
    assert set(latent.controls) == {"z1", "z2", "go_to"}
    assert isinstance(latent.box, widgets.Box)
    assert bytes(latent.image.value).startswith(PNG_MAGIC)
    assert isinstance(latent.state["latent_image"], widgets.Image)
    assert bytes(latent.state["latent_image"].value).startswith(PNG_MAGIC)
    assert latent.state["z"] == (0.0, 0.0)
    assert latent.controls["go_to"].value == -1


def test_latent_sliders_follow_a_drag(latent):
    """Both sliders redraw while dragged (continuous_update=True), in steps of 0.05 over [-lim, lim]."""
    for name in ("z1", "z2"):
        s = latent.controls[name]
        assert s.continuous_update is True
        assert (s.min, s.max, s.step) == (-LIM, LIM, STEP)


@pytest.mark.parametrize("name, value", [("z1", 1.25), ("z2", -2.0), ("z1", -3.0)])
def test_moving_a_slider_redraws_the_digit_and_the_map(latent, name, value):
    digit, latent_map = bytes(latent.image.value), bytes(latent.state["latent_image"].value)
    label = latent.label.value
    latent.controls[name].value = value
    assert latent.state["z"][0 if name == "z1" else 1] == value
    assert bytes(latent.image.value) != digit
    assert bytes(latent.state["latent_image"].value) != latent_map
    assert latent.label.value != label


@pytest.mark.parametrize("z", [(0.0, 0.0), (1.5, -0.75), (-3.0, 3.0), (2.2, 2.95)])
def test_the_digit_is_the_decoder_at_z(latent, model, z):
    """The PNG's 20x20 blocks are 255 (1 - p_j) with p = sigmoid(f_theta(z)) at the sliders' z,
    and the PNG is byte for byte plots.digit_png of the decoder's output there."""
    state = set_z(latent, *z)
    png = bytes(latent.image.value)
    grey = png_array(png)
    assert grey.shape == (160, 160) and grey.dtype == np.uint8
    p = probs_by_hand(model, torch.tensor([z], dtype=torch.float32))[0].reshape(8, 8).numpy()
    np.testing.assert_allclose(block_centres(grey, 20), expected_grey(p), atol=1.0)
    # each block is uniform: its corners agree with its centre
    assert (grey[::20, ::20] == block_centres(grey, 20)).all()
    torch.testing.assert_close(state["probs"], probs_by_hand(model, torch.tensor([z]))[0], rtol=1e-5, atol=1e-6)
    assert png == plots.digit_png(model.decode(torch.tensor([z], dtype=torch.float32))[0])


def test_the_digit_check_can_fail(latent, model):
    """The pixel comparison above tells another z apart."""
    set_z(latent, 1.5, -0.75)
    grey = png_array(latent.image.value)
    other = probs_by_hand(model, torch.tensor([[-1.5, 0.75]]))[0].reshape(8, 8).numpy()
    assert np.abs(block_centres(grey, 20) - expected_grey(other)).max() > 20


@pytest.mark.parametrize("z", [(0.0, 0.0), (1.25, -2.5), (-0.4, 0.35)])
def test_the_label_shows_z_and_log_prior(latent, model, digits, z):
    state = set_z(latent, *z)
    label = latent.label.value
    assert f"z = ({z[0]:+.2f}, {z[1]:+.2f})" in label
    log_pz = -0.5 * (z[0] ** 2 + z[1] ** 2) - math.log(2 * math.pi)
    assert f"log p(z) = {log_pz:.2f}" in label
    mu = mean_by_hand(model, digits[0])
    dist = ((mu - torch.tensor(z)) ** 2).sum(1).sqrt()
    nearest = int(dist.argmin())
    assert state["nearest"] == nearest and state["nearest_label"] == int(digits[1][nearest])
    assert f"a <b>{int(digits[1][nearest])}</b> (#{nearest}, {float(dist[nearest]):.2f} away)" in label


@pytest.mark.parametrize("i", range(N_DIGITS))
def test_go_to_moves_z_to_the_encoder_mean(latent, model, digits, i):
    """go_to puts the sliders on the slider grid point nearest mu_phi(x_i) (within half a step),
    redraws the digit there and, when no other mean is that close, names digit i as the nearest."""
    mu = mean_by_hand(model, digits[0])
    latent.controls["go_to"].value = i
    z = latent.state["z"]
    assert abs(latent.controls["z1"].value - float(mu[i, 0])) <= STEP / 2 + 1e-9
    assert abs(latent.controls["z2"].value - float(mu[i, 1])) <= STEP / 2 + 1e-9
    assert z == (latent.controls["z1"].value, latent.controls["z2"].value)
    grey = png_array(latent.image.value)
    p = probs_by_hand(model, torch.tensor([z], dtype=torch.float32))[0].reshape(8, 8).numpy()
    np.testing.assert_allclose(block_centres(grey, 20), expected_grey(p), atol=1.0)
    others = torch.cat([mu[:i], mu[i + 1:]])
    if ((others - mu[i]) ** 2).sum(1).sqrt().min() > 2 * STEP:  # rounding to the grid cannot change the answer
        assert latent.state["nearest"] == i
        assert f"(#{i}, " in latent.label.value


def test_go_to_minus_one_leaves_z_alone(latent):
    set_z(latent, 0.5, -0.5)
    latent.controls["go_to"].value = 3
    moved = latent.state["z"]
    assert moved != (0.5, -0.5)
    latent.controls["go_to"].value = -1
    assert latent.state["z"] == moved


def test_go_to_clips_a_mean_outside_the_map(model, digits):
    """With lim = 1, a mean beyond the map puts the slider at its edge."""
    parts = latent_explorer(model, *digits, lim=1.0)
    mu = mean_by_hand(model, digits[0])
    i = int(mu[:, 0].argmax())
    assert mu[i, 0] > 1.5
    parts.controls["go_to"].value = i
    assert parts.controls["z1"].value == pytest.approx(1.0)
    assert abs(parts.controls["z2"].value - float(np.clip(float(mu[i, 1]), -1, 1))) <= STEP / 2 + 1e-9


def test_go_to_the_same_digit_again_after_dragging(latent, model, digits):
    mu = mean_by_hand(model, digits[0])
    latent.controls["go_to"].value = 4
    set_z(latent, -2.0, -2.0)
    latent.controls["go_to"].value = 4  # what a user does to go back to digit 4
    assert abs(latent.controls["z1"].value - float(mu[4, 0])) <= STEP / 2 + 1e-9


def spine_positions(rgba: np.ndarray):
    """Columns and rows of the axes frame: the lines of dark pixels that cross most of the figure."""
    dark = rgba[..., :3].astype(int).sum(-1) < 150
    cols = np.where(dark.sum(0) > 0.4 * rgba.shape[0])[0]
    rows = np.where(dark.sum(1) > 0.4 * rgba.shape[1])[0]
    return cols, rows


def test_map_transform_matches_the_axes_frame(model, digits):
    """to_pixel maps the corners (-lim, -lim) and (lim, lim) onto the axes' frame as rendered
    (found here as the long dark lines of the image), and z2 grows upwards."""
    rgba, to_pixel = _latent_background(model, *digits, LIM)
    assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
    cols, rows = spine_positions(rgba)
    assert len(cols) >= 2 and len(rows) >= 2, (cols, rows)
    left, right, top, bottom = cols.min(), cols.max(), rows.min(), rows.max()
    r0, c0 = to_pixel(-LIM, -LIM)
    r1, c1 = to_pixel(LIM, LIM)
    assert abs(c0 - left) <= 1 and abs(c1 - right) <= 1
    assert abs(r0 - bottom) <= 1 and abs(r1 - top) <= 1
    rc, cc = to_pixel(0.0, 0.0)
    assert abs(rc - (top + bottom) / 2) <= 1 and abs(cc - (left + right) / 2) <= 1
    # aspect="equal": the square [-lim, lim]^2 is square on screen
    assert abs((right - left) - (bottom - top)) <= 2


def test_map_transform_check_can_fail(model, digits):
    """The frame test tells a transform off by a few pixels apart."""
    rgba, to_pixel = _latent_background(model, *digits, LIM)
    cols, _ = spine_positions(rgba)
    assert abs(to_pixel(-LIM + 0.1, 0.0)[1] - cols.min()) > 1


def red_mask(rgba):
    return (rgba[..., :3] == RED).all(-1)


def cross_mask(shape, row, col, size=7):
    """Where a + of arms ``size`` and thickness 3 centred at (row, col) lies, clipped to the image."""
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    vertical = (abs(cc - col) <= 1) & (abs(rr - row) <= size)
    horizontal = (abs(rr - row) <= 1) & (abs(cc - col) <= size)
    return vertical | horizontal


@pytest.mark.parametrize("row, col", [(25, 30), (0, 0), (49, 59), (3, 57), (-2, 10), (52, 20)])
def test_draw_cross_puts_red_at_row_col_and_nothing_else(row, col):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 200, size=(50, 60, 4), dtype=np.uint8)  # never the red of the cross
    before = rgba.copy()
    out = _draw_cross(rgba, row, col)
    assert np.array_equal(rgba, before), "the input is not modified"
    want = cross_mask(rgba.shape, row, col)
    assert np.array_equal(red_mask(out), want)
    assert np.array_equal(out[~want], rgba[~want])




@pytest.mark.parametrize("row, col", [(80, 30), (25, 100), (-8, 30), (25, -8),
                                      (-9, 30), (25, -9),
                                      (-20, 30), (25, -20)])
def test_draw_cross_off_the_image_draws_nothing(row, col):
    """A cross centred more than its arm's length off the image has no visible part: nothing changes."""
    rgba = np.zeros((50, 60, 4), dtype=np.uint8)
    assert np.array_equal(_draw_cross(rgba, row, col), rgba)


@pytest.mark.parametrize("z", [(0.0, 0.0), (2.5, -1.0), (-3.0, 3.0)])
def test_red_cross_is_drawn_at_z_on_the_map(latent, model, digits, z):
    """The map image is the background with a red + centred at to_pixel(z), and only that changes."""
    set_z(latent, *z)
    shown = png_array(latent.state["latent_image"].value)
    background, to_pixel = _latent_background(model, *digits, LIM)
    assert shown.shape == background[..., :3].shape  # the figure is opaque: its PNG is RGB
    row, col = to_pixel(*z)
    red = red_mask(shown)
    assert red[row, col]
    rows, cols = np.nonzero(red & cross_mask(shown.shape, row, col, size=10))
    assert abs(rows.mean() - row) <= 0.5 and abs(cols.mean() - col) <= 0.5
    want = cross_mask(shown.shape, row, col)
    assert np.array_equal(shown[~want], background[..., :3][~want])
    assert np.array_equal(shown, _draw_cross(background, row, col)[..., :3])


def test_latent_explorer_text_fallback(latent):
    bundle = latent._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "live kernel" in bundle["text/plain"]


def test_time_fifty_slider_updates(latent):
    """Not asserted: prints how long 50 redraws take (each one digit PNG and one map PNG)."""
    values = np.round(np.linspace(-2.5, 2.5, 50), 2)
    start = time.perf_counter()
    for v in values:
        latent.controls["z1"].value = float(v)
    seconds = time.perf_counter() - start
    assert latent.state["z"][0] == pytest.approx(values[-1])
    print(f"\nlatent_explorer: 50 slider updates in {seconds * 1000:.0f} ms ({seconds * 20:.1f} ms each)")


# ----------------------------------------------------------------------------------------------
# interpolation_explorer

N_POINTS = 6


@pytest.fixture()
def interp(model, digits):
    return interpolation_explorer(model, *digits, n_points=N_POINTS, first=4, second=8)


def strip_by_hand(model, images, a, b, n=N_POINTS):
    mu = mean_by_hand(model, images[[a, b]])
    path = torch.stack([(1 - k / (n - 1)) * mu[0] + (k / (n - 1)) * mu[1] for k in range(n)])
    return torch.cat([images[a][None], probs_by_hand(model, path), images[b][None]])


def tiles_from_png(png, n_tiles, scale=8, pad=1):
    """Read the (n_tiles, 64) pixel values back from a one-row strip PNG: 255 (1 - p) -> p."""
    grey = png_array(png).astype(float)
    assert grey.shape == (8 * scale, (n_tiles * (8 + pad) - pad) * scale)
    centres = block_centres(grey, scale)  # (8, n_tiles * 9 - 1)
    tiles = np.stack([centres[:, k * (8 + pad): k * (8 + pad) + 8] for k in range(n_tiles)])
    gaps = np.stack([centres[:, k * (8 + pad) + 8] for k in range(n_tiles - 1)])
    return 1 - tiles.reshape(n_tiles, 64) / 255, gaps


def test_interpolation_ends_are_the_two_originals(interp, digits):
    images = digits[0]
    strip = interp.state["strip"]
    assert strip.shape == (N_POINTS + 2, 64)
    assert torch.equal(strip[0], images[4]) and torch.equal(strip[-1], images[8])
    tiles, gaps = tiles_from_png(interp.image.value, N_POINTS + 2)
    np.testing.assert_array_equal(tiles[0], images[4].numpy())
    np.testing.assert_array_equal(tiles[-1], images[8].numpy())
    assert (gaps == 255).all(), "white padding between tiles"


def test_interpolation_middle_is_the_decoded_straight_line(interp, model, digits):
    """Tiles 1..n are sigmoid(f_theta(z_t)), z_t = (1 - t) mu_a + t mu_b, t = 0, 1/(n-1), ..., 1."""
    want = strip_by_hand(model, digits[0], 4, 8)
    torch.testing.assert_close(interp.state["strip"], want, rtol=1e-5, atol=1e-6)
    tiles, _ = tiles_from_png(interp.image.value, N_POINTS + 2)
    np.testing.assert_allclose(tiles, want.numpy(), atol=1.0 / 255 + 1e-6)
    # the path really moves: its two ends decode to different images
    assert (want[1] - want[N_POINTS]).abs().max() > 0.1


def test_interpolation_check_can_fail(interp, model, digits):
    """A path between other digits, or in the other direction, gives another strip."""
    assert not torch.allclose(interp.state["strip"], strip_by_hand(model, digits[0], 8, 4), atol=1e-3)
    assert not torch.allclose(interp.state["strip"], strip_by_hand(model, digits[0], 4, 9), atol=1e-3)


@pytest.mark.parametrize("control, value, a, b", [("first", 5, 5, 8), ("second", 0, 4, 0), ("first", 8, 8, 8)])
def test_interpolation_redraws_on_a_new_digit(interp, model, digits, control, value, a, b):
    before_image, before_label = bytes(interp.image.value), interp.label.value
    interp.controls[control].value = value
    assert (interp.state["first"], interp.state["second"]) == (a, b)
    assert bytes(interp.image.value) != before_image
    assert interp.label.value != before_label
    assert f"test digit #{a} (a {int(digits[1][a])})" in interp.label.value
    assert f"#{b} (a {int(digits[1][b])})" in interp.label.value
    want = strip_by_hand(model, digits[0], a, b)
    torch.testing.assert_close(interp.state["strip"], want, rtol=1e-5, atol=1e-6)
    tiles, _ = tiles_from_png(interp.image.value, N_POINTS + 2)
    np.testing.assert_allclose(tiles, want.numpy(), atol=1.0 / 255 + 1e-6)


def test_interpolation_bounds_and_bad_n_points(model, digits):
    parts = interpolation_explorer(model, *digits, n_points=3)
    assert parts.controls["first"].max == N_DIGITS - 1 and parts.controls["second"].min == 0
    assert parts.state["strip"].shape == (5, 64)
    with pytest.raises(ValueError, match="n_points"):
        interpolation_explorer(model, *digits, n_points=0)


def test_interpolation_text_fallback(interp):
    assert "live kernel" in interp._repr_mimebundle_()["text/plain"]


# ----------------------------------------------------------------------------------------------
# refinement_explorer


@pytest.fixture(scope="module")
def log_px(model, digits):
    return model.log_marginal(digits[0][:6], n_samples=300, seed=0)


@pytest.fixture(scope="module")
def refinement(model, digits, log_px):
    return refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, n_steps=N_STEPS, record_every=1)


def elbo_by_hand(model, x, eps):
    """(1/S) sum_s [log N(z_s; 0, I) + log p(x | z_s) - log q(z_s)], q = N(mu, sigma^2) from the encoder,
    z_s = mu + sigma eps_s, each term written out (x (1, 64), eps (S, 1, d))."""
    with torch.no_grad():
        out = model.encoder.net(x)
        mu, log_sigma = out[:, :model.latent_dim], out[:, model.latent_dim:]
        z = mu + log_sigma.exp() * eps
        log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_lik = -F.binary_cross_entropy_with_logits(model.decoder.net(z), x.expand(z.shape[0], -1, -1),
                                                      reduction="none").sum(-1)
        log_q = (-0.5 * eps**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
        return (log_prior + log_lik - log_q).mean(0)


def set_refinement(parts, digit=None, steps=None):
    if digit is not None:
        parts.controls["digit"].value = digit
    if steps is not None:
        parts.controls["steps"].value = steps
    return parts.state


@pytest.mark.parametrize("i", [0, 3])
def test_step_zero_is_the_encoders_elbo_with_the_fixed_noise(refinement, model, digits, i):
    """Step 0 is the encoder's q_phi(z|x) with the eval noise refine draws first from a generator
    seeded with the image's index: 200 standard normals of shape (200, 1, d)."""
    state = set_refinement(refinement, digit=i, steps=0)
    x = digits[0][i:i + 1]
    eps = torch.randn((200, 1, 2), generator=torch.Generator().manual_seed(i))
    want = float(elbo_by_hand(model, x, eps))
    assert state["encoder_elbo"] == pytest.approx(want, abs=1e-4)
    assert state["elbo"] == state["encoder_elbo"]
    with torch.no_grad():
        mean, log_std = model.encoder.params(x)
        assert state["encoder_elbo"] == pytest.approx(float(vae_lesson.vae.elbo_of_q(model, x, mean, log_std, eps)),
                                                      abs=1e-4)
    # with other noise the number differs: the comparison can fail
    other = torch.randn((200, 1, 2), generator=torch.Generator().manual_seed(i + 100))
    assert abs(float(elbo_by_hand(model, x, other)) - state["encoder_elbo"]) > 1e-3


@pytest.mark.parametrize("i", [0, 3])
def test_encoder_elbo_estimates_the_elbo(refinement, model, digits, i):
    """The 200-sample step-0 ELBO agrees with a 4000-sample estimate within 5 standard errors."""
    state = set_refinement(refinement, digit=i, steps=0)
    x = digits[0][i:i + 1]
    eps = torch.randn((4000, 1, 2), generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        big = float(model.elbo(x, n_samples=4000, seed=5).elbo)
        singles = torch.stack([elbo_by_hand(model, x, eps[s:s + 1]) for s in range(0, 4000, 10)])
    se = float(singles.std()) * math.sqrt(1 / 200 + 1 / 4000)
    assert abs(state["encoder_elbo"] - big) <= 5 * se + 1e-6, (state["encoder_elbo"], big, se)


@pytest.mark.parametrize("i", [1, 4])
def test_trajectory_is_vae_refine_of_that_image(refinement, model, digits, i):
    """Every step's ELBO is vae.refine(model, x[i:i+1], seed=i) recorded at that step."""
    ref = vae_lesson.vae.refine(model, digits[0][i:i + 1], n_steps=N_STEPS, lr=0.005,
                                record_at=list(range(N_STEPS + 1)), seed=i)
    for s in (0, 1, 7, N_STEPS):
        state = set_refinement(refinement, digit=i, steps=s)
        assert (state["digit"], state["steps"]) == (i, s)
        assert state["elbo"] == pytest.approx(float(ref.elbo[s, 0]), abs=1e-5)
        assert state["encoder_elbo"] == pytest.approx(float(ref.elbo[0, 0]), abs=1e-5)
    # the refinement moved the ELBO (it can be told apart from step 0)
    assert abs(float(ref.elbo[-1, 0] - ref.elbo[0, 0])) > 1e-4


def test_label_shows_the_numbers_in_state(refinement, digits, log_px):
    state = set_refinement(refinement, digit=2, steps=13)
    label = refinement.label.value
    now, start, lpx = state["elbo"], state["encoder_elbo"], state["log_px"]
    assert lpx == pytest.approx(float(log_px[2]))
    assert "after <b>13</b> steps" in label
    assert f"ELBO = <b>{now:.3f}</b>" in label
    assert f"encoder: {start:.3f}" in label
    assert f"gained <b>{now - start:+.3f}</b>" in label
    assert f"log p(x) ≈ {lpx:.3f}" in label
    assert f"gap left is <b>{lpx - now:.3f}</b>" in label


def test_moving_steps_redraws(refinement):
    set_refinement(refinement, digit=0, steps=0)
    image, label, elbo = bytes(refinement.image.value), refinement.label.value, refinement.state["elbo"]
    set_refinement(refinement, steps=N_STEPS)
    assert refinement.state["steps"] == N_STEPS
    assert bytes(refinement.image.value) != image
    assert bytes(refinement.image.value).startswith(PNG_MAGIC)
    assert refinement.label.value != label
    assert refinement.state["elbo"] != elbo


def test_refinement_controls(refinement):
    steps = refinement.controls["steps"]
    assert tuple(steps.options) == tuple(range(N_STEPS + 1))
    assert steps.continuous_update is False
    assert (refinement.controls["digit"].min, refinement.controls["digit"].max) == (0, 5)


@pytest.mark.parametrize("lengths", [(6, 5, 6), (6, 6, 4), (5, 6, 6)])
def test_mismatched_lengths_raise(model, digits, log_px, lengths):
    n_img, n_lab, n_lpx = lengths
    with pytest.raises(ValueError, match="one entry per image"):
        refinement_explorer(model, digits[0][:n_img], digits[1][:n_lab], log_px[:n_lpx], n_steps=N_STEPS)


def test_bad_n_steps(model, digits, log_px):
    with pytest.raises(ValueError, match="n_steps"):
        refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, n_steps=0)


def test_each_digit_is_refined_once(model, digits, log_px, monkeypatch):
    """Picking a digit runs vae.refine on it; coming back to it, or moving the steps, does not."""
    calls = []
    real = vae_lesson.vae.refine

    def counting(model_, x, **kwargs):
        calls.append((x.clone(), kwargs["seed"]))
        return real(model_, x, **kwargs)

    monkeypatch.setattr(vae_lesson.vae, "refine", counting)
    parts = refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, n_steps=N_STEPS, record_every=1)
    assert len(calls) == 1 and calls[0][1] == 0 and torch.equal(calls[0][0], digits[0][0:1])
    parts.controls["steps"].value = 5
    assert len(calls) == 1
    image = bytes(parts.image.value)
    parts.controls["digit"].value = 3
    assert len(calls) == 2 and calls[1][1] == 3 and torch.equal(calls[1][0], digits[0][3:4])
    assert bytes(parts.image.value) != image
    parts.controls["digit"].value = 0
    parts.controls["steps"].value = 9
    parts.controls["digit"].value = 3
    assert len(calls) == 2
    assert parts.state["digit"] == 3 and parts.state["steps"] == 9


def test_refinement_leaves_frozen_parameters_frozen(digits):
    model = spread_vae(seed=3).requires_grad_(False)
    refinement_explorer(model, digits[0][:2], digits[1][:2], torch.tensor([-40.0, -40.0]), n_steps=2, record_every=1)
    assert not any(p.requires_grad for p in model.parameters())


def test_refinement_text_fallback(refinement):
    assert "live kernel" in refinement._repr_mimebundle_()["text/plain"]



def test_refinement_records_every_few_steps_and_the_slider_follows(model, digits, log_px):
    """With record_every=5 the slider moves in steps of 5 and each position shows vae.refine's ELBO
    recorded at that step; n_steps must be a multiple of it."""
    parts = refinement_explorer(model, digits[0][:3], digits[1][:3], log_px[:3], n_steps=20, record_every=5)
    assert tuple(parts.controls["steps"].options) == (0, 5, 10, 15, 20)
    ref = vae_lesson.vae.refine(model, digits[0][2:3], n_steps=20, lr=0.005, record_at=[0, 5, 10, 15, 20], seed=2)
    for s in (5, 20):
        state = set_refinement(parts, digit=2, steps=s)
        assert state["elbo"] == pytest.approx(float(ref.elbo[s // 5, 0]), abs=1e-5)
    with pytest.raises(ValueError, match="multiple of record_every"):
        refinement_explorer(model, digits[0][:3], digits[1][:3], log_px[:3], n_steps=21, record_every=5)


def test_refinement_shows_the_notebooks_records_without_optimizing(model, digits, log_px, monkeypatch):
    """Given the notebook's own vae.refine of all images, every update (a new digit, another step)
    shows those records and runs no optimization; the slider moves through the recorded steps."""
    record = [0, 2, 5, 10, N_STEPS]
    refined = vae_lesson.vae.refine(model, digits[0][:6], n_steps=N_STEPS, record_at=record, seed=7)

    def no_refine(*args, **kwargs):
        raise AssertionError("the widget optimized although the records were given")

    monkeypatch.setattr(vae_lesson.vae, "refine", no_refine)
    parts = refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, refined=refined)
    assert tuple(parts.controls["steps"].options) == tuple(record)
    for i in (0, 4, 2):
        for k, s in enumerate(record):
            state = set_refinement(parts, digit=i, steps=s)
            assert state["elbo"] == pytest.approx(float(refined.elbo[k, i]), abs=1e-6)
            assert state["encoder_elbo"] == pytest.approx(float(refined.elbo[0, i]), abs=1e-6)
            assert f"after <b>{s}</b> steps" in parts.label.value


def test_refinement_records_must_match_the_images(model, digits, log_px):
    refined = vae_lesson.vae.refine(model, digits[0][:4], n_steps=2)
    with pytest.raises(ValueError, match="on these 6 images"):
        refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, refined=refined)
    with pytest.raises(TypeError, match="what vae.refine returns"):
        refinement_explorer(model, digits[0][:6], digits[1][:6], log_px, refined=refined.elbo)
