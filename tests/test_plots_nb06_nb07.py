"""The pictures of notebooks 06 and 07 (plots.digits_to_array, digit_png, training_curves, latent_map and
its label_positions, decoded_plane, gap_histograms): what they draw is read back from the PNG or the Axes
and compared with the data given to them."""
import io

import matplotlib.colors as mcolors
import numpy as np
import PIL.Image
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from vae_lesson import plots
from vae_lesson.vae import VAE, TrainingHistory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def saved_png(fig, tmp_path, name):
    """Smoke check: the figure saves to a non-empty PNG."""
    path = tmp_path / f"{name}.png"
    fig.savefig(path, format="png", dpi=60)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    return path


def numbered_images(n):
    """n images (n, 64) whose pixel j of image i is (i * 64 + j) / (n * 64): every value tells where it came from."""
    return torch.arange(n * 64, dtype=torch.float64).reshape(n, 64) / (n * 64)


# ----------------------------------------------------------------------------------------------
# digits_to_array


@pytest.mark.parametrize("rows, cols, pad", [(2, 3, 1), (1, 5, 1), (3, 1, 2), (2, 2, 0), (1, 1, 1)])
def test_digits_to_array_places_each_tile(rows, cols, pad):
    imgs = numbered_images(rows * cols)
    out = plots.digits_to_array(imgs, rows, cols, pad=pad)
    assert out.shape == (rows * (8 + pad) - pad, cols * (8 + pad) - pad)
    covered = np.zeros(out.shape, dtype=bool)
    for i in range(rows * cols):
        r, c = i // cols, i % cols  # row by row
        top, left = r * (8 + pad), c * (8 + pad)
        np.testing.assert_array_equal(out[top:top + 8, left:left + 8], imgs[i].reshape(8, 8).numpy())
        covered[top:top + 8, left:left + 8] = True
    assert (out[~covered] == 0).all(), "the padding is 0 (white in gray_r)"
    assert (~covered).sum() == out.size - rows * cols * 64


def test_digits_to_array_accepts_8x8_images_and_numpy():
    imgs = numbered_images(4)
    flat = plots.digits_to_array(imgs, 2, 2)
    np.testing.assert_array_equal(plots.digits_to_array(imgs.reshape(4, 8, 8).numpy(), 2, 2), flat)
    np.testing.assert_array_equal(plots.digits_to_array(imgs.requires_grad_(True), 2, 2), flat)


def test_digits_to_array_tiling_is_not_transposed():
    """Image 1 of a 2 x 3 grid is the second tile of the first row, not the first tile of the second row."""
    out = plots.digits_to_array(numbered_images(6), 2, 3)
    assert out[0, 9] == pytest.approx(64 / (6 * 64))
    assert out[9, 0] == pytest.approx(3 * 64 / (6 * 64))


@pytest.mark.parametrize("n, rows, cols", [(5, 2, 3), (7, 2, 3), (1, 1, 2)])
def test_digits_to_array_wrong_count_raises(n, rows, cols):
    with pytest.raises(ValueError, match=rf"need rows \* cols = {rows * cols} images, got {n}"):
        plots.digits_to_array(numbered_images(n), rows, cols)


def test_digits_to_array_rejects_images_that_are_not_64_pixels():
    with pytest.raises(ValueError):
        plots.digits_to_array(torch.rand(3, 128), 2, 3)


# ----------------------------------------------------------------------------------------------
# digit_png


def decode_png(data):
    im = PIL.Image.open(io.BytesIO(data))
    return im, np.asarray(im)


@pytest.mark.parametrize("scale", [1, 3, 20])
def test_digit_png_is_blocks_of_255_times_one_minus_p(scale):
    p = np.linspace(0, 1, 64)
    data = plots.digit_png(torch.as_tensor(p), scale=scale)
    assert data.startswith(PNG_MAGIC)
    im, grey = decode_png(data)
    assert im.mode == "L" and im.size == (8 * scale, 8 * scale)
    want = np.floor(255 * (1 - p)).reshape(8, 8)
    # each pixel is a uniform scale x scale block
    blocks = grey.reshape(8, scale, 8, scale).transpose(0, 2, 1, 3).reshape(8, 8, -1)
    assert (blocks == blocks[..., :1]).all()
    np.testing.assert_allclose(blocks[..., 0], want, atol=1)
    assert grey.min() == 0 and grey.max() == 255  # p = 1 is black ink, p = 0 white paper


def test_digit_png_clips_probabilities():
    p = np.r_[-0.5, 1.5, np.full(62, 0.5)]
    _, grey = decode_png(plots.digit_png(p, scale=1))
    assert grey[0, 0] == 255 and grey[0, 1] == 0


def test_digit_png_accepts_a_tiled_array():
    tiled = plots.digits_to_array(numbered_images(3), 1, 3)
    im, grey = decode_png(plots.digit_png(tiled, scale=4))
    assert im.size == (tiled.shape[1] * 4, tiled.shape[0] * 4)
    np.testing.assert_allclose(grey[2::4, 2::4], np.floor(255 * (1 - tiled)), atol=1)


def test_digit_png_of_a_grid_and_of_its_image_agree():
    """A (64,) image and the same image as an (8, 8) array give the same PNG."""
    p = torch.rand(64)
    assert plots.digit_png(p) == plots.digit_png(p.reshape(8, 8).numpy())
    assert plots.digit_png(p) != plots.digit_png(p.flip(0))


@pytest.mark.parametrize("bad, match", [(np.zeros(63), "64 pixels"), (np.zeros(65), "64 pixels"),
                                        (np.zeros((2, 8, 8)), "2-D array"), (np.float64(0.5), "2-D array")])
def test_digit_png_rejects_bad_shapes(bad, match):
    with pytest.raises(ValueError, match=match):
        plots.digit_png(bad)


# ----------------------------------------------------------------------------------------------
# training_curves


@pytest.fixture()
def history():
    return TrainingHistory(
        steps=[0, 250, 500, 750, 1000],
        train={"elbo": [-40.0, -30.0, -27.0, -26.0, -25.5], "reconstruction": [-38.0, -25.0, -21.0, -20.0, -19.0],
               "kl": [2.0, 5.0, 6.0, 6.0, 6.5]},
        test={"elbo": [-41.0, -32.0, -29.0, -28.5, -28.0], "reconstruction": [-39.0, -27.0, -23.0, -22.5, -21.5],
              "kl": [2.0, 5.0, 6.0, 6.0, 6.5]},
    )


def test_training_curves_draw_train_and_test(history, tmp_path):
    fig = plots.training_curves(history)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax, key in zip(fig.axes, ("elbo", "reconstruction", "kl")):
        lines = ax.get_lines()
        assert len(lines) == 2
        train, test = lines
        assert train.get_linestyle() == "-" and test.get_linestyle() == "--"
        np.testing.assert_array_equal(train.get_xdata(), history.steps)
        np.testing.assert_array_equal(test.get_xdata(), history.steps)
        np.testing.assert_array_equal(train.get_ydata(), history.train[key])
        np.testing.assert_array_equal(test.get_ydata(), history.test[key])
        assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "nats per image"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["train (5 evaluations)", "test (5 evaluations)"]
    assert "ELBO" in fig.axes[0].get_title() and "KL" in fig.axes[2].get_title()
    lo, hi = fig.axes[0].get_ylim()
    assert lo <= -41.0 and hi >= -25.5, "every ELBO value after the first tenth is in view"
    saved_png(fig, tmp_path, "training_curves")


def test_training_curves_without_a_test_set(history, tmp_path):
    only_train = TrainingHistory(steps=history.steps, train=history.train, test={})
    fig = plots.training_curves(only_train)
    for ax, key in zip(fig.axes, ("elbo", "reconstruction", "kl")):
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_ydata(), history.train[key])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train (5 evaluations)"]
    saved_png(fig, tmp_path, "training_curves_train_only")


def test_training_curves_on_a_given_figure(history):
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots(1, 3)
    assert plots.training_curves(history, fig=fig) is fig
    np.testing.assert_array_equal(fig.axes[2].get_lines()[1].get_ydata(), history.test["kl"])


# ----------------------------------------------------------------------------------------------
# latent_map


def test_latent_map_one_scatter_per_label(tmp_path):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(30, 2, generator=g)
    labels = torch.tensor([3, 1, 7] * 10)
    fig = plots.latent_map(means, labels, lim=2.5, title="where the digits go")
    ax = fig.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 3
    for sc, k in zip(scatters, (1, 3, 7)):  # in sorted label order
        np.testing.assert_allclose(sc.get_offsets(), means[labels == k].numpy(), rtol=1e-6)
        np.testing.assert_allclose(sc.get_facecolor()[0, :3], mcolors.to_rgb(f"C{k}"))
    drawn = [(int(t.get_text()), t.get_position()) for t in ax.texts]
    wanted = plots.label_positions(means, labels)
    assert [k for k, _ in drawn] == [k for k, _ in wanted] and {k for k, _ in drawn} == {1, 3, 7}
    for (k, pos), (_, want) in zip(drawn, wanted):
        np.testing.assert_allclose(pos, want, rtol=1e-6)
        assert np.isclose(means[labels == k].numpy(), pos, rtol=1e-6).all(1).any()  # on one of its own points
    assert ax.get_xlim() == (-2.5, 2.5) and ax.get_ylim() == (-2.5, 2.5)
    assert ax.get_title() == "where the digits go"
    saved_png(fig, tmp_path, "latent_map")


def blobs(centres, n, sd, seed=0):
    """n points around each centre (x, y), Gaussian with standard deviation sd per axis: (n * len(centres), 2)."""
    g = np.random.default_rng(seed)
    return np.concatenate([np.asarray(c) + sd * g.standard_normal((n, 2)) for c in centres])


def split_class_data():
    """Class 1 in two tight groups far apart, at (-2, 0) and (2, 0); class 8 between them at (0, 0), where
    the 1s' mean (and per-axis median) falls; class 3 apart at (0, 2)."""
    ones = blobs([(-2, 0), (2, 0)], 40, 0.2)
    eights, threes = blobs([(0, 0)], 60, 0.3, seed=1), blobs([(0, 2)], 50, 0.3, seed=2)
    means = np.concatenate([ones, eights, threes])
    labels = np.array([1] * len(ones) + [8] * len(eights) + [3] * len(threes))
    return means, labels


def on_its_own_points(means, labels, k, pos, n_nearest=5):
    """True when the n_nearest points of the map closest to pos are all of class k."""
    nearest = np.argsort(np.linalg.norm(means - np.asarray(pos), axis=1))[:n_nearest]
    return bool((labels[nearest] == k).all())


def test_latent_map_labels_sit_on_their_own_clusters():
    """Every label drawn on the map has only its own class among its 5 nearest points, and the class split in
    two gets a label on each group; labels at the class mean or per-axis median would put the 1 on the 8s."""
    means, labels = split_class_data()
    ax = plots.latent_map(torch.tensor(means), torch.tensor(labels), lim=3.0).axes[0]
    drawn = [(int(t.get_text()), np.asarray(t.get_position())) for t in ax.texts]
    assert sorted(k for k, _ in drawn) == [1, 1, 3, 8]
    for k, pos in drawn:
        assert on_its_own_points(means, labels, k, pos), (k, pos)
    xs = sorted(pos[0] for k, pos in drawn if k == 1)
    assert xs[0] == pytest.approx(-2, abs=0.3) and xs[1] == pytest.approx(2, abs=0.3)
    # the check can fail: the old placements of the 1 land among the 8s
    for old in (means[labels == 1].mean(0), np.median(means[labels == 1], 0)):
        assert np.linalg.norm(old) < 0.3 and not on_its_own_points(means, labels, 1, old)


def test_latent_map_labels_on_the_notebook_like_layout():
    """Many classes, one of them split: every label lies among points of its own class."""
    centres = {0: [(0, -1.5)], 1: [(-2.2, 0), (0.6, 1.8)], 2: [(1.8, 0.5)], 7: [(-1.2, 1.3)], 8: [(-0.6, 0.6)]}
    means = np.concatenate([blobs(c, 30, 0.2, seed=k) for k, c in centres.items()])
    labels = np.concatenate([[k] * 30 * len(c) for k, c in centres.items()])
    positions = plots.label_positions(means, labels)
    assert [k for k, _ in positions] == [0, 1, 1, 2, 7, 8]
    assert all(on_its_own_points(means, labels, k, pos) for k, pos in positions)
    assert not on_its_own_points(means, labels, 1, means[labels == 1].mean(0))  # the mean is off the 1s


@pytest.mark.parametrize("sd", [(1.0, 1.0), (1.0, 0.3)])
def test_label_positions_keep_one_blob_whole(sd):
    """A single Gaussian blob, round or elongated, is not split: one label, at one of its points."""
    points = np.random.default_rng(0).standard_normal((300, 2)) * np.array(sd)
    (k, pos), = plots.label_positions(points, np.full(300, 4))
    assert k == 4 and np.isclose(points, pos, rtol=0, atol=1e-12).all(1).any()
    assert np.linalg.norm(pos) < 0.5


def test_label_positions_ignore_a_few_stragglers():
    """A handful of far-away points (fewer than min_share of the class) get no label of their own, and do not
    pull the label off the main group."""
    points = np.concatenate([blobs([(0, 0)], 40, 0.2), [[2.5, 2.5], [2.6, 2.4], [2.4, 2.6]]])
    (_, pos), = plots.label_positions(points, np.zeros(len(points), dtype=int))
    assert np.linalg.norm(pos) < 0.2
    assert len(plots.label_positions(points, np.zeros(len(points), dtype=int), min_share=0.05)) == 2


def test_core_point_resists_scattered_points():
    """The core point stays in the dense group when almost half the points are scattered far off to one side;
    the mean does not."""
    dense = blobs([(0, 0)], 20, 0.1)
    scattered = np.column_stack([np.linspace(3, 6, 15), np.linspace(-1, 1, 15)])
    points = np.concatenate([dense, scattered])
    core = plots.core_point(points)
    assert np.isclose(dense, core, rtol=0, atol=1e-12).all(1).any()
    assert np.linalg.norm(points.mean(0)) > 1.0


def test_two_means_recovers_two_blobs():
    points = blobs([(-3, 0), (3, 1)], 25, 0.5)
    groups = plots.two_means(points)
    truth = np.repeat([0, 1], 25)
    assert (groups == truth).all() or (groups == 1 - truth).all()
    assert (plots.two_means(np.ones((4, 2))) == 0).all()  # coinciding points: one group


@pytest.mark.parametrize("call, match", [
    (lambda: plots.label_positions(np.zeros((5, 2)), np.zeros(4)), r"labels must have shape \(5,\)"),
    (lambda: plots.label_positions(np.zeros((5, 3)), np.zeros(5)), r"means must have shape \(N, 2\)"),
    (lambda: plots.label_positions(np.zeros((5, 2)), np.zeros(5), min_share=0.6), "min_share must be in"),
    (lambda: plots.label_positions(np.zeros((5, 2)), np.zeros(5), gap=0), "gap must be positive"),
    (lambda: plots.core_point(np.zeros((0, 2))), "N >= 1"),
    (lambda: plots.two_means(np.zeros((1, 2))), "N >= 2"),
    (lambda: plots.latent_map(np.zeros((5, 2)), np.zeros(5, dtype=int), lim=0), "lim must be positive"),
    (lambda: plots.decoded_plane(lambda z: torch.zeros(len(z), 64), lim=-1.0, n=3), "lim must be positive"),
])
def test_label_placement_and_ranges_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("shape", [(10, 3), (10,), (10, 1)])
def test_latent_map_rejects_means_that_are_not_2d(shape):
    with pytest.raises(ValueError, match=r"means must have shape \(N, 2\)"):
        plots.latent_map(torch.zeros(shape), torch.zeros(10, dtype=torch.int64))


def test_latent_map_on_a_given_axes():
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    assert plots.latent_map(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), ax=b) is fig
    assert len(b.collections) == 2 and len(a.collections) == 0


# ----------------------------------------------------------------------------------------------
# decoded_plane


def position_code(z, lim):
    """A fake decoder whose tile says where it is: pixel 0 = z1 and pixel 1 = z2, mapped from [-lim, lim] to [0, 1]."""
    out = torch.zeros(*z.shape[:-1], 64)
    out[..., 0] = (z[..., 0] + lim) / (2 * lim)
    out[..., 1] = (z[..., 1] + lim) / (2 * lim)
    return out


@pytest.mark.parametrize("n, lim", [(5, 2.5), (4, 1.0)])
def test_decoded_plane_places_each_z_where_it_is(n, lim):
    """Tile (r, c) of the image decodes z = (zs[c], zs[n-1-r]): top-left is (-lim, +lim), z2 grows upwards."""
    fig = plots.decoded_plane(lambda z: position_code(z, lim), lim=lim, n=n)
    (im,) = fig.axes[0].images
    arr = np.asarray(im.get_array())
    assert arr.shape == (n * 9 - 1, n * 9 - 1)
    zs = plots.plane_centres(lim, n)
    np.testing.assert_allclose(zs, -lim + (np.arange(n) + 0.5) * 2 * lim / n, rtol=1e-12)
    assert tuple(im.get_extent()) == (-lim, lim, -lim, lim)
    for r in range(n):
        for c in range(n):
            tile = arr[r * 9:r * 9 + 8, c * 9:c * 9 + 8].reshape(64)
            assert tile[0] == pytest.approx((zs[c] + lim) / (2 * lim), abs=1e-6)
            assert tile[1] == pytest.approx((zs[n - 1 - r] + lim) / (2 * lim), abs=1e-6)
    # the extent puts each tile's centre near its z (within a tenth of the grid step)
    left, right, bottom, top = im.get_extent()
    step = zs[1] - zs[0]
    width = n * 9 - 1
    for c in range(n):
        centre = left + (c * 9 + 4) / width * (right - left)
        assert abs(centre - zs[c]) < 0.1 * step
    for r in range(n):
        centre = top - (r * 9 + 4) / width * (top - bottom)
        assert abs(centre - zs[n - 1 - r]) < 0.1 * step


def test_decoded_plane_with_a_vae(tmp_path):
    """The corner tiles are the VAE's pixel probabilities sigmoid(f_theta(z)) at the corners of the square."""
    torch.manual_seed(0)
    model = VAE(latent_dim=2, hidden=16, layers=1).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight *= 4
    lim, n = 2.0, 5
    fig = plots.decoded_plane(model.decode, lim=lim, n=n)
    arr = np.asarray(fig.axes[0].images[0].get_array())
    e = lim - lim / n  # the corner cells' centres are at (+-e, +-e)
    corners = {(0, 0): (-e, e), (0, n - 1): (e, e), (n - 1, 0): (-e, -e), (n - 1, n - 1): (e, -e)}
    with torch.no_grad():
        for (r, c), z in corners.items():
            want = torch.sigmoid(model.decoder.net(torch.tensor([z]))).reshape(8, 8).numpy()
            np.testing.assert_allclose(arr[r * 9:r * 9 + 8, c * 9:c * 9 + 8], want, rtol=1e-5, atol=1e-6)
        # the check can fail: the corners differ from one another
        tl = torch.sigmoid(model.decoder.net(torch.tensor([[-e, e]]))).reshape(8, 8).numpy()
    assert np.abs(arr[(n - 1) * 9:(n - 1) * 9 + 8, 0:8] - tl).max() > 0.05
    saved_png(fig, tmp_path, "decoded_plane")


@pytest.mark.parametrize("lim", [3.0, 1.5])
def test_latent_map_and_decoded_plane_share_one_frame(lim):
    """With the same lim, the map and the decoder's plane show the same square [-lim, lim]^2, side by side."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    plots.latent_map(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), ax=a, lim=lim)
    plots.decoded_plane(lambda z: torch.zeros(len(z), 64), lim=lim, n=4, ax=b)
    assert a.get_xlim() == b.get_xlim() == (-lim, lim) and a.get_ylim() == b.get_ylim() == (-lim, lim)
    plots.decoded_plane(lambda z: torch.zeros(len(z), 64), lim=lim + 0.5, n=4, ax=b)  # the check can fail
    assert b.get_xlim() != a.get_xlim()
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# gap_histograms


def test_gap_histograms_legend_shows_the_means(tmp_path):
    g = torch.Generator().manual_seed(0)
    gaps = {"approximation": 1.0 + 0.3 * torch.rand(50, generator=g),
            "amortization": 3.0 + torch.rand(50, generator=g, dtype=torch.float64)}
    fig = plots.gap_histograms(gaps, bins=12)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    want = [f"{name} (mean {values.mean().item():.2f})" for name, values in gaps.items()]
    assert labels == want
    vlines = [line.get_xdata()[0] for line in ax.get_lines()]
    np.testing.assert_allclose(vlines, [v.mean().item() for v in gaps.values()], rtol=1e-6)
    assert len(ax.patches) == 2 * 12
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights[:12]) == 50 and sum(heights[12:]) == 50
    assert ax.get_xlabel() == "nats per image"
    saved_png(fig, tmp_path, "gap_histograms")


# ----------------------------------------------------------------------------------------------
# amortization_regression (notebook 06, section 5)


def test_amortization_regression_one_panel_per_coordinate(tmp_path):
    """One panel per listed coordinate, each with the identity line and one scatter per encoder whose
    points are (optimum[:, j], predicted[:, j]); spare grid cells are switched off; same axes everywhere."""
    gen = torch.Generator().manual_seed(0)
    optimum = torch.randn(30, 5, generator=gen)
    a, b = optimum + 0.1 * torch.randn(30, 5, generator=gen), optimum * 0.5
    fig = plots.amortization_regression(optimum, {"a": a, "b": b}, [3, 0, 4], titles=["x", "y", "z"], ncols=2)
    saved_png(fig, tmp_path, "regression")
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 4 and len(shown) == 3
    for ax, j, title in zip(shown, [3, 0, 4], ["x", "y", "z"]):
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(scatters) == 2
        np.testing.assert_allclose(scatters[0].get_offsets(), np.stack([optimum[:, j], a[:, j]], 1), rtol=1e-6)
        np.testing.assert_allclose(scatters[1].get_offsets(), np.stack([optimum[:, j], b[:, j]], 1), rtol=1e-6)
        (line,) = ax.get_lines()
        np.testing.assert_allclose(line.get_xdata(), line.get_ydata())  # the identity
        assert ax.get_xlim() == ax.get_ylim() == (-3.5, 3.5)
        assert ax.get_title() == title
    assert [t.get_text() for t in shown[0].get_legend().get_texts()] == ["a", "b"]


@pytest.mark.parametrize("optimum, predicted, dims, titles, match", [
    (torch.zeros(5, 3), {"a": torch.zeros(5, 2)}, [0], None, "one shape"),
    (torch.zeros(5), {"a": torch.zeros(5)}, [0], None, r"\(N, d\)"),
    (torch.zeros(5, 3), {}, [0], None, "one shape"),
    (torch.zeros(5, 3), {"a": torch.zeros(5, 3)}, [3], None, r"dims must be latent coordinates in \[0, 3\)"),
    (torch.zeros(5, 3), {"a": torch.zeros(5, 3)}, [], None, "dims must"),
    (torch.zeros(5, 3), {"a": torch.zeros(5, 3)}, [0, 1], ["one"], "titles needs one entry per panel"),
])
def test_amortization_regression_rejects_bad_input(optimum, predicted, dims, titles, match):
    with pytest.raises(ValueError, match=match):
        plots.amortization_regression(optimum, predicted, dims, titles=titles)
