import io

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vae_lesson import plots
from vae_lesson.models import EMStepReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_figures_left():
    yield
    plt.close("all")


def std_normal_2d(pts):
    return -0.5 * (pts ** 2).sum(-1) - np.log(2 * np.pi)


def _assert_png_figure(fig):
    assert isinstance(fig, Figure)
    num = fig.number
    png = plots.figure_to_png(fig)
    assert isinstance(png, bytes)
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000
    assert not plt.fignum_exists(num), "figure_to_png closes the figure by default"


REPORTS = [EMStepReport(-3.0, -3.0, -2.5, -2.4), EMStepReport(-2.4, -2.4, -2.2, -2.15),
           EMStepReport(-2.15, -2.15, -2.1, -2.09)]

HELPERS = {
    "density_image": lambda: plots.density_image(std_normal_2d, n=30, title="N(0, I)"),
    "density_contours": lambda: plots.density_contours(std_normal_2d, n=30, title="N(0, I)"),
    "scatter_plain": lambda: plots.scatter_samples(torch.randn(50, 2), title="points"),
    "scatter_labels": lambda: plots.scatter_samples(torch.randn(50, 2), labels=torch.arange(50) % 3),
    "scatter_colors": lambda: plots.scatter_samples(np.random.randn(50, 2), colors=np.random.rand(50, 3)),
    "digit_grid_flat": lambda: plots.digit_grid(torch.rand(12, 64), ncols=5),
    "digit_grid_square": lambda: plots.digit_grid(np.random.rand(3, 8, 8), titles=["a", "b", "c"]),
    "em_bounds": lambda: plots.em_bounds(REPORTS),
}


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_helper_returns_a_figure_that_renders(name):
    _assert_png_figure(HELPERS[name]())


def test_density_image_shades_the_density():
    fig = plots.density_image(std_normal_2d, xlim=(-3, 3), ylim=(-3, 3), n=31)
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (31, 31)
    # the brightest pixel is the mode at the centre, and the values are densities (not logs)
    assert np.unravel_index(np.argmax(img), img.shape) == (15, 15)
    assert img.max() == pytest.approx(1 / (2 * np.pi), rel=1e-5)


def test_drawing_on_a_given_axis_uses_its_figure():
    fig, axes = plt.subplots(1, 3)
    assert plots.density_image(std_normal_2d, n=20, ax=axes[0]) is fig
    assert plots.scatter_samples(torch.randn(10, 2), ax=axes[1]) is fig
    assert plots.em_bounds(REPORTS, ax=axes[2]) is fig
    _assert_png_figure(fig)


def _assert_em_staircase(ax, reports):
    """log p(x) and the ELBO drawn at x = t (after the E-step) and t + 0.5 (after the M-step)."""
    lines = {line.get_label(): line for line in ax.get_lines()}
    ll = lines["log p(x; theta)"]
    elbo = next(line for label, line in lines.items() if label.startswith("ELBO(theta, q)"))
    n = len(reports)
    want_x = np.arange(2 * n) / 2  # 0, 0.5, 1, 1.5, ...
    np.testing.assert_allclose(ll.get_xdata(), want_x)
    np.testing.assert_allclose(ll.get_ydata(), [v for r in reports for v in (r.log_lik_before, r.log_lik_after)])
    np.testing.assert_allclose(elbo.get_xdata(), want_x)
    np.testing.assert_allclose(elbo.get_ydata(), [v for r in reports for v in (r.elbo_after_e, r.elbo_after_m)])
    # at t + 0.5 the vertical distance between the lines is the KL gap; at t it is closed
    ll_at = dict(zip(ll.get_xdata(), ll.get_ydata()))
    elbo_at = dict(zip(elbo.get_xdata(), elbo.get_ydata()))
    for t, r in enumerate(reports):
        assert ll_at[t + 0.5] - elbo_at[t + 0.5] == pytest.approx(r.log_lik_after - r.elbo_after_m)
        assert ll_at[t] - elbo_at[t] == pytest.approx(r.log_lik_before - r.elbo_after_e)


def test_em_bounds_draws_e_and_m_steps_as_a_staircase():
    fig = plots.em_bounds(REPORTS)
    ax, gap_ax = fig.axes
    _assert_em_staircase(ax, REPORTS)
    kl = [r.log_lik_after - r.elbo_after_m for r in REPORTS]
    assert any(t.get_text().startswith("KL gap") and f"{kl[0]:.3f}" in t.get_text() for t in ax.texts)
    assert {"M", "E"} <= {t.get_text() for t in ax.texts}  # the steps are named
    gap = {line.get_label(): line for line in gap_ax.get_lines()}["KL gap after the M-step"]
    np.testing.assert_allclose(gap.get_xdata(), np.arange(len(REPORTS)) + 0.5)
    np.testing.assert_allclose(gap.get_ydata(), kl)
    assert gap_ax.get_yscale() == "log"
    fig, ax = plt.subplots()
    assert plots.em_bounds(REPORTS, ax=ax) is fig and len(fig.axes) == 1  # no gap panel unless asked


def test_em_staircase_check_rejects_log_p_drawn_at_the_next_integer():
    """The old drawing: log p(x) only at integers (after the M-step at t + 1), so the KL gap at
    t + 0.5 was never a vertical distance. The staircase check must fail on it."""
    fig, ax = plt.subplots()
    t = np.arange(len(REPORTS))
    ax.plot(np.column_stack([t, t + 0.5]).ravel(),
            [v for r in REPORTS for v in (r.elbo_after_e, r.elbo_after_m)], label="ELBO(theta, q)")
    ax.plot(np.r_[t, t[-1] + 1], [r.log_lik_before for r in REPORTS] + [REPORTS[-1].log_lik_after], "o",
            label="log p(x; theta)")
    with pytest.raises(AssertionError):
        _assert_em_staircase(ax, REPORTS)


def test_digit_grid_layout():
    fig = plots.digit_grid(torch.rand(12, 64), ncols=5)
    assert len(fig.axes) == 15  # 3 rows of 5
    assert sum(len(ax.images) for ax in fig.axes) == 12
    fig = plots.digit_grid(torch.rand(2, 64), ncols=10)
    assert len(fig.axes) == 2  # never more columns than images


def test_scatter_labels_make_one_group_per_label():
    fig = plots.scatter_samples(torch.randn(30, 2), labels=torch.tensor([0, 1, 2] * 10))
    assert len(fig.axes[0].collections) == 3


def test_grid_2d():
    xx, yy, pts = plots.grid_2d((-1, 1), (0, 2), n=5)
    assert xx.shape == yy.shape == (5, 5)
    assert pts.shape == (25, 2) and pts.dtype == torch.float32
    assert pts[:, 0].min() == -1 and pts[:, 0].max() == 1
    assert pts[:, 1].min() == 0 and pts[:, 1].max() == 2


def test_figure_to_png_can_keep_the_figure_open():
    fig = plots.scatter_samples(torch.randn(5, 2))
    png = plots.figure_to_png(fig, close=False)
    assert png.startswith(PNG_MAGIC)
    assert plt.fignum_exists(fig.number)


@pytest.mark.parametrize("x", [torch.randn(10, 3), torch.randn(10), torch.randn(2, 5, 2)])
def test_scatter_rejects_bad_shapes(x):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plots.scatter_samples(x)


@pytest.mark.parametrize("images", [torch.rand(4, 10), torch.rand(4, 8, 7), torch.rand(64)])
def test_digit_grid_rejects_bad_shapes(images):
    with pytest.raises(ValueError, match=r"\(N, 64\) or \(N, 8, 8\)"):
        plots.digit_grid(images)


# the default colour cycle, written out (matplotlib's "tab10"), independent of plots.mix_colours
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def _rgb(hex_colour):
    return np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def test_mix_colours_one_hot_gives_the_label_colours():
    probs = torch.eye(4)[[0, 1, 2, 3, 1]]
    got = plots.mix_colours(probs)
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, np.stack([_rgb(TAB10[k]) for k in [0, 1, 2, 3, 1]]), atol=1e-12)


def test_mix_colours_blends_by_probability():
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    expected = probs @ np.stack([_rgb(c) for c in TAB10[:3]])
    np.testing.assert_allclose(plots.mix_colours(probs), expected, atol=1e-12)
    # rows of probabilities give valid RGB, which scatter_samples accepts
    p = torch.softmax(torch.randn(20, 12), -1)  # more components than colours: the cycle repeats
    rgb = plots.mix_colours(p)
    assert rgb.shape == (20, 3) and rgb.min() >= 0 and rgb.max() <= 1
    _assert_png_figure(plots.scatter_samples(torch.randn(20, 2), colors=rgb))


@pytest.mark.parametrize("probs", [np.ones(3), np.ones((2, 3, 1))])
def test_mix_colours_rejects_bad_shapes(probs):
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        plots.mix_colours(probs)


@pytest.mark.parametrize("tight", [True, False])
def test_figure_to_png_tight_and_fast(tight):
    from PIL import Image
    import io

    fig = plt.figure(figsize=(5, 4))
    fig.add_subplot().plot([0, 1], [0, 1])
    png = plots.figure_to_png(fig, dpi=50, tight=tight)
    assert png.startswith(PNG_MAGIC)
    img = Image.open(io.BytesIO(png))
    img.load()
    if tight:  # cropped to the drawn content
        assert img.size[0] <= 250 and img.size[1] <= 200
    else:  # the whole canvas: figsize x dpi
        assert img.size == (250, 200)
    assert not plt.fignum_exists(fig.number)


def test_figure_to_png_fast_path_on_an_unmanaged_figure():
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    a = plots.figure_to_png(fig, close=False, tight=False)
    fig.axes[0].set_title("changed")
    b = plots.figure_to_png(fig, close=False, tight=False)
    assert a.startswith(PNG_MAGIC) and b.startswith(PNG_MAGIC) and a != b


def test_rgba_png_is_a_lossless_rgb_png():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(13, 21, 4), dtype=np.uint8)
    data = plots.rgba_png(rgba)
    decoded = np.asarray(PIL.Image.open(io.BytesIO(data)))
    assert decoded.shape == (13, 21, 3)
    assert np.array_equal(decoded, rgba[..., :3])
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        plots.rgba_png(rgba.astype(float))


def test_blitting_with_an_overlay_draws_what_a_full_draw_draws():
    """A line that moves under an opaque legend: every blitted frame equals a full draw of the same
    figure (line under legend), but for the faint anti-aliased fringe of the legend's frame (at most
    16 grey levels, in the pixels just outside its edge)."""
    fig = plt.Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.7", label="static")
    (line,) = ax.plot([], [], color="C3", lw=3, label="moving")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    legend = ax.legend(loc="upper left", framealpha=1, fancybox=False)
    renderer = plots.BlitRenderer(fig, [line], overlays=[legend])
    xs = np.linspace(0.1, 0.9, 50)  # off the spines: a dynamic artist is drawn over static ones
    for height in (0.9, 0.5, 0.95):  # through the legend, below it, and through it again
        line.set_data(xs, np.full_like(xs, height))
        blitted = np.asarray(PIL.Image.open(io.BytesIO(renderer.png())))
        reference = plt.Figure(figsize=(4, 3))
        ax2 = reference.add_subplot()
        ax2.plot([0, 1], [0, 1], color="0.7", label="static")
        ax2.plot(xs, np.full_like(xs, height), color="C3", lw=3, label="moving")
        ax2.set(xlim=(0, 1), ylim=(0, 1))
        ax2.legend(loc="upper left", framealpha=1, fancybox=False)
        reference.set_dpi(80)
        canvas = FigureCanvasAgg(reference)
        canvas.draw()
        full = np.asarray(canvas.buffer_rgba())[..., :3]
        assert blitted.shape == full.shape
        diff = np.abs(blitted.astype(int) - full.astype(int)).max(-1)
        assert diff.max() <= 16, f"a pixel differs by {diff.max()} grey levels at height {height}"
        box = reference.axes[0].get_legend().get_window_extent(canvas.get_renderer())
        rows, cols = np.nonzero(diff)
        height_px = full.shape[0]
        inside_edge = (cols >= box.x1 - 1) & (cols <= box.x1 + 3) | (cols <= box.x0 + 1) & (cols >= box.x0 - 3) | \
                      (height_px - rows >= box.y1 - 1) & (height_px - rows <= box.y1 + 3) | \
                      (height_px - rows <= box.y0 + 1) & (height_px - rows >= box.y0 - 3)
        assert inside_edge.all(), "blitting changed pixels away from the legend's edge"


# --- plate_diagram (notebook 04, section 4) --------------------------------------------------------

def _plate_parts():
    from matplotlib.patches import Circle, FancyBboxPatch
    from matplotlib.text import Annotation

    fig, ax = plt.subplots()
    nodes = plots.plate_diagram(ax)
    circles = {name: [p for p in ax.patches if isinstance(p, Circle) and np.allclose(p.center, c)]
               for name, c in nodes.items()}
    plates = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [a for a in ax.texts if isinstance(a, Annotation)]
    return ax, nodes, circles, plates, arrows


def test_plate_diagram_draws_theta_outside_and_phi_z_x_inside_the_plate():
    ax, nodes, circles, plates, _ = _plate_parts()
    assert set(nodes) == {"theta", "phi", "z", "x"}
    assert all(len(c) == 1 for c in circles.values()), "one circle per node, centred on it"
    texts = {t.get_text() for t in ax.texts}
    assert {r"$\theta$", r"$\phi_i$", r"$z_i$", r"$x_i$", r"$i = 1, \dots, N$"} <= texts
    (plate,) = plates
    x0, y0, w, h = plate.get_x(), plate.get_y(), plate.get_width(), plate.get_height()

    def inside(name):
        (c,) = circles[name]
        cx, cy = c.center
        return x0 < cx - c.radius and cx + c.radius < x0 + w and y0 < cy - c.radius and cy + c.radius < y0 + h

    assert not inside("theta") and inside("phi") and inside("z") and inside("x")
    (x_node,), (z_node,) = circles["x"], circles["z"]
    assert max(x_node.get_facecolor()[:3]) < 0.9, "x_i is observed: shaded"
    assert min(z_node.get_facecolor()[:3]) == pytest.approx(1.0), "z_i is latent: white"
    assert circles["phi"][0].get_linestyle() == "--" and z_node.get_linestyle() == "-"


def test_plate_diagram_arrows_point_from_cause_to_effect():
    """Each arrow starts on its source's circle and ends (head) on its target's: z_i -> x_i and
    theta -> x_i solid (the model), phi_i -> z_i dashed (q)."""
    _, nodes, circles, _, arrows = _plate_parts()

    def node_on_boundary(point):
        hits = [name for name, (c,) in circles.items()
                if abs(np.hypot(*(np.asarray(point) - np.asarray(c.center))) - c.radius) < 1e-9]
        assert len(hits) == 1, (point, hits)
        return hits[0]

    found = {(node_on_boundary(a.xyann), node_on_boundary(a.xy)): a.arrow_patch.get_linestyle() for a in arrows}
    assert set(found) == {("z", "x"), ("theta", "x"), ("phi", "z")}
    assert found[("phi", "z")] == "--" and found[("z", "x")] == "-" and found[("theta", "x")] == "-"


def test_plate_diagram_makes_its_own_axis_when_given_none():
    nodes = plots.plate_diagram()
    fig = plt.gcf()
    assert len(fig.axes) == 1 and not fig.axes[0].axison
    assert nodes["theta"][0] < nodes["phi"][0] < nodes["z"][0]


def test_text_stamps_paste_dark_ink_at_the_anchor_and_only_there():
    stamps = plots.TextStamps(7, dpi=80)
    rgba = np.full((60, 100, 4), 255, dtype=np.uint8)
    stamps.paste(rgba, "-1.6", x=50, y=40, ha="center", va="top")  # display y is up: row 60 - 40 = 20
    ink = np.argwhere(rgba[..., 0] < 128)
    assert len(ink) > 10
    rows, cols = ink[:, 0], ink[:, 1]
    width = stamps.alpha("-1.6").shape[1]
    assert rows.min() >= 20 and rows.max() < 20 + stamps.alpha("-1.6").shape[0]
    assert abs((cols.min() + cols.max()) / 2 - 50) <= 2 and cols.max() - cols.min() <= width
    assert (rgba[..., 3] == 255).all()  # alpha untouched
    stamps.paste(rgba, "8", x=-50, y=500)  # off the frame: nothing, no error
    assert stamps.alpha("8") is stamps.alpha("8")  # rendered once


def test_posterior_figure_redraws_the_window_and_its_ticks():
    """Two frames of plots.PosteriorFigure: the density, contours and q's move with the window, the pasted
    tick labels change with it, and the frame has the full draw's size."""
    fig = plots.PosteriorFigure(["q one", "q two"])
    z = torch.linspace(-1, 1, 41, dtype=torch.float64)
    dens = torch.exp(-0.5 * (z[:, None] ** 2 + z[None, :] ** 2) / 0.1)
    qs = [(torch.tensor([0.1, 0.0]), torch.tensor([0.2, 0.3])), (torch.tensor([0.0, 0.0]), torch.tensor([0.3, 0.3]))]
    x = torch.zeros(64)
    a = fig.png(x, z, z, dens, [0.5, 1.0, 2.0], qs, (torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])))
    b = fig.png(x, z + 3, z - 2, dens, [0.5, 1.0, 2.0], qs, (torch.tensor([2.0, -3.0]), torch.tensor([4.0, -1.0])))
    ia, ib = (np.asarray(PIL.Image.open(io.BytesIO(p))) for p in (a, b))
    assert ia.shape == ib.shape and ia.shape[:2] == (240, 880)
    assert (ia != ib).any()
    assert (ia[..., :3] < 100).sum() > 500  # ink: contours, ellipses, ticks
