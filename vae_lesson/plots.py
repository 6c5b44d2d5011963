"""Pictures: every helper returns a matplotlib Figure (and draws on ``ax`` when one is given)."""
from __future__ import annotations

import io
import struct
import zlib
from typing import Callable, Sequence


import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .data import IMAGE_SHAPE
from .models import EMStepReport

DIGIT_CMAP = "gray_r"


def _fig_ax(ax, figsize=(4.5, 4)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    return fig, ax


def grid_2d(xlim=(-3, 3), ylim=(-3, 3), n: int = 120):
    """A regular grid: returns (xx, yy) each (n, n) and the points (n*n, 2) as a float32 tensor."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    xx, yy = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)
    return xx, yy, pts


def density_image(
    log_density: Callable[[torch.Tensor], torch.Tensor],
    xlim=(-3, 3), ylim=(-3, 3), n: int = 120, ax=None, title: str | None = None, cmap="viridis",
) -> Figure:
    """Shade exp(log_density(x)) over a 2-D grid. log_density maps (M, 2) points to (M,) values."""
    fig, ax = _fig_ax(ax)
    xx, yy, pts = grid_2d(xlim, ylim, n)
    with torch.no_grad():
        dens = log_density(pts).exp().reshape(xx.shape).numpy()
    ax.imshow(dens, origin="lower", extent=(*xlim, *ylim), cmap=cmap, aspect="auto", interpolation="bilinear")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    if title:
        ax.set_title(title)
    return fig


def density_contours(
    log_density: Callable[[torch.Tensor], torch.Tensor],
    xlim=(-3, 3), ylim=(-3, 3), n: int = 120, ax=None, levels: int = 8, colors="k", title: str | None = None,
) -> Figure:
    """Contour lines of exp(log_density(x)) over a 2-D grid (log_density: (M, 2) -> (M,))."""
    fig, ax = _fig_ax(ax)
    xx, yy, pts = grid_2d(xlim, ylim, n)
    with torch.no_grad():
        dens = log_density(pts).exp().reshape(xx.shape).numpy()
    ax.contour(xx, yy, dens, levels=levels, colors=colors, linewidths=0.8)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    if title:
        ax.set_title(title)
    return fig


def scatter_samples(
    x, labels=None, ax=None, title: str | None = None, s: float = 8, colors=None, alpha: float = 0.7,
) -> Figure:
    """Scatter 2-D points x (N, 2), coloured by integer ``labels`` (N,) or by RGB ``colors`` (N, 3)."""
    fig, ax = _fig_ax(ax)
    x = np.asarray(torch.as_tensor(x).detach())
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2) to scatter in the plane, got {x.shape}")
    if colors is not None:
        ax.scatter(x[:, 0], x[:, 1], s=s, c=np.clip(np.asarray(colors), 0, 1), alpha=alpha, linewidths=0)
    elif labels is not None:
        labels = np.asarray(torch.as_tensor(labels))
        for k in np.unique(labels):
            m = labels == k
            ax.scatter(x[m, 0], x[m, 1], s=s, alpha=alpha, label=f"z = {k}", color=f"C{k}", linewidths=0)
        ax.legend(loc="best", fontsize=8, markerscale=2)
    else:
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color="k", linewidths=0)
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    if title:
        ax.set_title(title)
    return fig


def mix_colours(probs) -> np.ndarray:
    """(N, K) probabilities -> (N, 3) RGB: the probability-weighted blend of the colours C0..C{K-1}
    that ``scatter_samples`` gives the labels 0..K-1 (so a soft assignment shows as a blend)."""
    probs = np.asarray(torch.as_tensor(probs).detach(), dtype=float)
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, K), got {probs.shape}")
    palette = np.array([matplotlib.colors.to_rgb(f"C{k % 10}") for k in range(probs.shape[1])])
    return probs @ palette


def digit_grid(images, ncols: int = 10, titles: Sequence[str] | None = None, size: float = 0.9) -> Figure:
    """Show images (N, 64) or (N, 8, 8) with values in [0, 1] as a grid of 8x8 digits."""
    imgs = np.asarray(torch.as_tensor(images).detach(), dtype=float)
    if imgs.ndim == 2 and imgs.shape[1] == IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        imgs = imgs.reshape(-1, *IMAGE_SHAPE)
    if imgs.ndim != 3 or imgs.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape (N, 64) or (N, 8, 8), got {np.shape(images)}")
    n = imgs.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.25 * nrows if titles else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout(pad=0.2)
    return fig


def plate_diagram(ax=None) -> dict:
    """The graphical model of variational learning with one phi_i per data point (Lecture 6, 44:40),
    drawn on ``ax``: theta outside the plate (one for all data); z_i (latent, white), x_i (observed,
    shaded) and phi_i inside the plate over i = 1..N. Solid arrows are the model
    p(x_i, z_i; theta) = p(z_i) p(x_i | z_i; theta) (z_i -> x_i, theta -> x_i); the dashed arrow
    phi_i -> z_i is the variational q(z_i; phi_i). Returns {name: (x, y) centre} of the four nodes."""
    fig, ax = _fig_ax(ax, figsize=(3.6, 2.6))
    r = 0.36
    nodes = {"theta": (0.5, 1.1), "phi": (2.2, 2.6), "z": (4.3, 2.6), "x": (4.3, 1.1)}
    labels = {"theta": r"$\theta$", "phi": r"$\phi_i$", "z": r"$z_i$", "x": r"$x_i$"}
    notes = {"theta": "shared by all", "phi": "one per\ndata point", "z": "latent", "x": "observed"}
    ax.add_patch(matplotlib.patches.FancyBboxPatch((1.35, 0.2), 3.8, 3.2, boxstyle="round,pad=0,rounding_size=0.12",
                                                   fill=False, lw=1.3, ec="0.25"))
    ax.text(1.45, 0.28, r"$i = 1, \dots, N$", ha="left", va="bottom", fontsize=9)
    for name, (cx, cy) in nodes.items():
        ax.add_patch(matplotlib.patches.Circle((cx, cy), r, fc="0.78" if name == "x" else "white", ec="black",
                                               lw=1.3, ls="--" if name == "phi" else "-", zorder=2))
        ax.text(cx, cy, labels[name], ha="center", va="center", fontsize=13, zorder=3)
        above = name == "z"
        ax.text(cx, cy + r + 0.08 if above else cy - r - 0.08, notes[name], ha="center",
                va="bottom" if above else "top", fontsize=8, color="0.3", linespacing=1.0)

    def arrow(src, dst, dashed=False):
        (x0, y0), (x1, y1) = nodes[src], nodes[dst]
        d = np.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        ax.annotate("", xy=(x1 - r * ux, y1 - r * uy), xytext=(x0 + r * ux, y0 + r * uy),
                    arrowprops=dict(arrowstyle="-|>", lw=1.3, color="black", ls="--" if dashed else "-",
                                    shrinkA=0, shrinkB=0, mutation_scale=14))

    arrow("z", "x")
    arrow("theta", "x")
    arrow("phi", "z", dashed=True)
    ax.text(3.25, 2.68, r"$q(z_i; \phi_i)$", ha="center", va="bottom", fontsize=9)
    ax.text(4.22, 1.85, r"$p(x_i \mid z_i; \theta)$", ha="right", va="center", fontsize=9)
    ax.set_xlim(-0.15, 5.25)
    ax.set_ylim(0.05, 3.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return nodes


def em_bounds(reports: Sequence[EMStepReport], ax=None, gap_ax=None) -> Figure:
    """EM as the staircase it is, in nats per data point, from the recorded ``reports``.

    Iteration t is drawn from x = t to x = t + 1: x = t is just after its E-step, x = t + 0.5
    just after its M-step. Along the way
      - log p(x; theta) (blue) is at ``log_lik_before`` at t and ``log_lik_after`` at t + 0.5,
        then flat up to t + 1 (the E-step does not change theta);
      - the ELBO (orange) is at ``elbo_after_e`` at t (touching log p(x): tight) and
        ``elbo_after_m`` at t + 0.5 (raised by the M-step, q fixed), then jumps back up to
        log p(x) at t + 1 (the next E-step);
    (the last iteration ends at n - 0.5, after its M-step). So the vertical distance between
    the two lines at t + 0.5 is the KL gap
    KL(q || p(z|x; theta_new)) = log_lik_after - elbo_after_m, annotated where it is visible.
    M-step intervals [t, t + 0.5] are shaded. When ``ax`` is None the figure gets a second
    panel with that gap and the M-step's ELBO gain per iteration on a log scale (they shrink
    fast; values <= 0, float round-off once EM has converged, sit at 1e-12); pass ``gap_ax`` to
    draw it on an axis of your own.
    """
    if ax is None:
        fig, (ax, gap_ax) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    else:
        fig = ax.figure
    n = len(reports)
    t = np.arange(n, dtype=float)
    ll_before = np.array([r.log_lik_before for r in reports])
    ll_after = np.array([r.log_lik_after for r in reports])
    e = np.array([r.elbo_after_e for r in reports])
    m = np.array([r.elbo_after_m for r in reports])
    kl = ll_after - m
    steps_x = np.column_stack([t, t + 0.5]).ravel()  # after each E-step, after each M-step
    ll_y = np.column_stack([ll_before, ll_after]).ravel()  # log p(x): flat across each E-step
    elbo_y = np.column_stack([e, m]).ravel()  # the ELBO: up in the M-step, up to log p(x) in the E-step
    for i in t:
        ax.axvspan(i, i + 0.5, color="0.92", lw=0, zorder=0)
    ax.plot(steps_x, ll_y, "-o", color="C0", lw=1.8, ms=5, label="log p(x; theta)")
    ax.plot(steps_x, elbo_y, "-", color="C1", lw=1.5, label="ELBO(theta, q)")
    ax.plot(t, e, "^", color="C2", ms=7, label="ELBO after E-step (tight)")
    ax.plot(t + 0.5, m, "v", color="C1", ms=7, label="ELBO after M-step")
    lo, hi = min(e.min(), m.min()), ll_after.max()
    span = max(hi - lo, 1e-12)
    ax.set_ylim(lo - 0.08 * span, hi + 0.16 * span)
    shown = 0
    for i in range(n):  # the KL gap as a vertical arrow, where it is big enough to see
        if kl[i] < 0.04 * span or shown == 2:
            continue
        ax.annotate("", xy=(t[i] + 0.5, ll_after[i]), xytext=(t[i] + 0.5, m[i]),
                    arrowprops=dict(arrowstyle="<->", color="C3", lw=1.5, shrinkA=0, shrinkB=0))
        ax.text(t[i] + 0.55, m[i] - 0.03 * span, f"KL gap\n= {kl[i]:.3f}", color="C3", fontsize=8,
                ha="left", va="top")
        shown += 1
    for i in range(n):  # name the steps along the top
        ax.text(i + 0.25, hi + 0.09 * span, "M", ha="center", va="center", fontsize=8, color="0.35")
        if i + 1 < n:
            ax.text(i + 0.75, hi + 0.09 * span, "E", ha="center", va="center", fontsize=8, color="0.35")
    ax.set_xticks(np.arange(n))
    ax.set_xlim(-0.25, n - 0.25)
    ax.set(xlabel="EM iteration t (t: after E-step, t + 0.5: after M-step; shaded: M-steps)",
           ylabel="nats per data point")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    if gap_ax is not None:
        gain = m - e
        gap_ax.semilogy(t, np.maximum(gain, 1e-12), "v-", color="C1", ms=6,
                        label="ELBO gain in the M-step")
        gap_ax.semilogy(t + 0.5, np.maximum(kl, 1e-12), "o-", color="C3", ms=6,
                        label="KL gap after the M-step")
        gap_ax.set(xlabel="EM iteration t", ylabel="nats per data point (log scale)",
                   title="what each step gains")
        gap_ax.set_xticks(np.arange(n))
        gap_ax.legend(fontsize=8, loc="lower left")
        gap_ax.grid(alpha=0.3, which="both")
    return fig


def figure_to_png(fig: Figure, dpi: int = 80, close: bool = True, tight: bool = True) -> bytes:
    """Render a figure to PNG bytes (for an ipywidgets Image), closing it unless told not to.
    ``tight=False`` skips the bounding-box pass (faster, for widgets that redraw often)."""
    buf = io.BytesIO()
    if tight:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    else:  # one draw on an Agg canvas, then a fast PNG encoding
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        canvas.draw()
        buf.write(rgba_png(np.asarray(canvas.buffer_rgba())))
    if close:
        plt.close(fig)
    return buf.getvalue()


def rgba_png(rgba: np.ndarray) -> bytes:
    """An opaque (H, W, 4) uint8 RGBA array (a figure's canvas) as RGB PNG bytes.

    Written directly (PNG signature, IHDR, one zlib-compressed IDAT with filter type 0 on every
    row, IEND): for a widget's 800 x 270 figure about 3 ms against PIL's 9 ms (PIL tries the PNG
    row filters; a plot of flat colours compresses well without them), and a little smaller. The
    alpha channel is dropped: a figure is opaque.
    """
    rgb = np.asarray(rgba)[..., :3]
    if rgb.ndim != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgba must be an (H, W, 4) uint8 array, got {rgb.dtype} of shape {np.shape(rgba)}")
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # a 0 byte (filter: none) before each row
    rows[:, 1:] = rgb.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


class BlitRenderer:
    """Renders a figure again and again when only a few artists change (blitting).

    Everything except the ``dynamic`` artists is drawn once into a background; each frame
    restores that background and draws only the dynamic artists, which costs a few milliseconds
    instead of a full draw (tens of milliseconds, mostly text). After changing anything else
    (axis limits, ticks), ask for a ``full=True`` frame, which redraws the background.
    Dynamic artists are drawn in the order given, on top of everything static: an artist that
    must stay visible above a dynamic one (a data scatter over an image) belongs in the list too,
    after it. ``overlays`` are artists that never change but lie on top of the dynamic ones
    (legends): drawn once, their pixels are pasted back over every frame, which costs nothing,
    where drawing a legend's text again would cost 5-20 ms. An overlay must be opaque and
    rectangular (a legend with ``framealpha=1, fancybox=False``), so its pixels do not depend on
    what lies beneath.
    """

    def __init__(self, fig: Figure, dynamic: Sequence, dpi: int = 80, overlays: Sequence = ()):
        self.fig, self.dynamic, self.overlays = fig, list(dynamic), list(overlays)
        fig.set_dpi(dpi)
        self.canvas = FigureCanvasAgg(fig)
        for artist in self.dynamic + self.overlays:
            artist.set_animated(True)  # left out of full draws: drawn by png() on top of the background
        self.background, self.overlay_pixels = None, []

    def png(self, full: bool = False, paint: Callable[[np.ndarray], None] | None = None) -> bytes:
        """The frame as PNG bytes; ``paint(rgba)``, if given, may write into the frame's pixels (H, W, 4)
        last, before the encoding (``TextStamps`` pastes labels that way)."""
        if full or self.background is None:
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(self.fig.bbox)
            renderer = self.canvas.get_renderer()
            for artist in self.overlays:  # drawn once, then kept as pixels
                self.fig.draw_artist(artist)
            self.overlay_pixels = [self.canvas.copy_from_bbox(a.get_window_extent(renderer).padded(2))  # + its edge
                                   for a in self.overlays]
        self.canvas.restore_region(self.background)
        for artist in self.dynamic:
            self.fig.draw_artist(artist)
        for pixels in self.overlay_pixels:
            self.canvas.restore_region(pixels)
        rgba = np.asarray(self.canvas.buffer_rgba())
        if paint is not None:
            paint(rgba)
        return rgba_png(rgba)


class TextStamps:
    """Short labels (tick values) pasted into a frame's pixels, each string rendered once (with the
    font matplotlib uses) and cached: a pasted label costs microseconds where drawing a Text artist
    costs about half a millisecond, most of a blitted frame's time when it has twenty of them."""

    def __init__(self, fontsize: float, dpi: int):
        import matplotlib.font_manager as fm
        from PIL import ImageFont

        path = fm.findfont(fm.FontProperties(family=matplotlib.rcParams["font.family"]))
        self.font = ImageFont.truetype(path, size=max(1, round(fontsize * dpi / 72)))
        self.cache: dict[str, np.ndarray] = {}

    def alpha(self, text: str) -> np.ndarray:
        """The label's coverage (h, w) in [0, 1]."""
        if text not in self.cache:
            from PIL import Image, ImageDraw

            left, top, right, bottom = self.font.getbbox(text)
            img = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
            ImageDraw.Draw(img).text((-left, -top), text, fill=255, font=self.font)
            self.cache[text] = np.asarray(img, dtype=np.float32) / 255
        return self.cache[text]

    def paste(self, rgba: np.ndarray, text: str, x: float, y: float, ha: str = "center", va: str = "top") -> None:
        """Paint ``text`` in black at display point (x, y) (pixels, y up, as matplotlib's transforms give),
        anchored by its ``ha`` (left, center, right) and ``va`` (top, center, bottom)."""
        a = self.alpha(text)
        h, w = a.shape
        col = int(round(x - {"left": 0, "center": w / 2, "right": w}[ha]))
        row = int(round(rgba.shape[0] - y - {"top": 0, "center": h / 2, "bottom": h}[va]))
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + h, rgba.shape[0]), min(col + w, rgba.shape[1])
        if r0 >= r1 or c0 >= c1:
            return
        cover = a[r0 - row:r1 - row, c0 - col:c1 - col, None]
        block = rgba[r0:r1, c0:c1, :3]
        block[...] = (block * (1 - cover)).astype(np.uint8)  # black ink over what is there


# ----------------------------------------------------------------------------------------------
# Notebooks 06 and 07: the VAE on the digits


def digits_to_array(images, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile images (rows * cols, 64) with values in [0, 1] into one (rows*(8+pad)-pad, cols*(8+pad)-pad)
    array, row by row; the padding is white (0) so the tiles stay apart."""
    imgs = np.asarray(torch.as_tensor(images).detach(), dtype=float)
    if imgs.ndim < 2 or imgs[0].size != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        raise ValueError(f"images must have shape (N, 64) or (N, 8, 8), got {imgs.shape}")
    imgs = imgs.reshape(-1, *IMAGE_SHAPE)
    if imgs.shape[0] != rows * cols:
        raise ValueError(f"need rows * cols = {rows * cols} images, got {imgs.shape[0]}")
    h, w = IMAGE_SHAPE
    out = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad))
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return out


def digit_png(image, scale: int = 20) -> bytes:
    """One 8x8 image (64,) or several tiled (2-D array) with values in [0, 1] as PNG bytes, each pixel
    a ``scale`` x ``scale`` block, ink black on white (the ``gray_r`` colour map). No matplotlib:
    about a millisecond, for widgets that redraw while a slider moves."""
    a = np.asarray(torch.as_tensor(image).detach(), dtype=float)
    if a.ndim == 1:
        if a.size != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
            raise ValueError(f"a single image must have 64 pixels, got {a.size}")
        a = a.reshape(IMAGE_SHAPE)
    if a.ndim != 2:
        raise ValueError(f"image must be (64,) or a 2-D array, got shape {a.shape}")
    grey = (255 * (1 - np.clip(a, 0, 1))).astype(np.uint8)
    grey = np.repeat(np.repeat(grey, scale, 0), scale, 1)
    buf = io.BytesIO()
    PIL.Image.fromarray(grey, mode="L").save(buf, format="png", compress_level=1)
    return buf.getvalue()


def training_curves(history, fig=None) -> Figure:
    """ELBO, reconstruction E_q[log p(x|z)] and KL(q_phi(z|x) || p(z)) on the training and the test set
    against the training step (nats per image), from a ``vae.TrainingHistory``."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2)) if fig is None else (fig, fig.axes)
    titles = {"elbo": "ELBO (higher is better)", "reconstruction": "reconstruction  E_q[log p(x|z)]",
              "kl": "KL(q_phi(z|x) || p(z))"}
    for ax, (key, title) in zip(axes, titles.items()):
        for name, style in (("train", "-"), ("test", "--")):
            values = getattr(history, name).get(key)
            if values:
                ax.plot(history.steps, values, style, label=f"{name} ({len(history.steps)} evaluations)"
                        if key == "elbo" else name)
        ax.set(title=title, xlabel="training step", ylabel="nats per image")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    lo = min(min(getattr(history, n).get("elbo", [0])[len(history.steps) // 10:] or [0]) for n in ("train", "test"))
    hi = max(max(getattr(history, n).get("elbo", [-1e9]) or [-1e9]) for n in ("train", "test"))
    if hi > lo:
        axes[0].set_ylim(lo - 0.5, hi + 0.5)
    fig.tight_layout()
    return fig


def core_point(points) -> np.ndarray:
    """The centre of a group of points (N, d): the point p_i whose ball holding half the group is smallest,
    i.e. minimising r_i = the distance from p_i to its ceil(N/2)-th nearest point (p_i itself counted).
    Unlike the mean, the per-axis median or the medoid (argmin_i sum_j ||p_i - p_j||) it is not pulled
    towards a few scattered points: it is one of the points, in the densest half of the group."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must have shape (N, d) with N >= 1, got {points.shape}")
    half = (len(points) + 1) // 2  # ceil(N / 2)
    radii = np.concatenate([  # in chunks: 512 x N distances at a time
        np.sort(np.linalg.norm(points[i:i + 512, None] - points[None], axis=-1), axis=1)[:, half - 1]
        for i in range(0, len(points), 512)])
    return points[int(radii.argmin())]


def two_means(points, n_iter: int = 100) -> np.ndarray:
    """Split points (N, d), N >= 2, into two groups by 2-means (Lloyd's algorithm): assign each point to
    the nearer of two centres c_0, c_1, move each centre to its group's mean, repeat; each step lowers
    sum_i min_j ||p_i - c_j||^2. Deterministic start: c_0 = the point farthest from the mean, c_1 = the
    point farthest from c_0. Returns the group (0 or 1) of each point, (N,); when the points all coincide,
    all are group 0."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) < 2:
        raise ValueError(f"points must have shape (N, d) with N >= 2, got {points.shape}")
    first = points[np.linalg.norm(points - points.mean(0), axis=1).argmax()]
    centres = np.stack([first, points[np.linalg.norm(points - first, axis=1).argmax()]])
    groups = np.zeros(len(points), dtype=np.int64)
    for _ in range(n_iter):
        groups = np.linalg.norm(points[:, None] - centres[None], axis=-1).argmin(1)  # ties go to group 0
        if groups.min() == groups.max():  # all in one group (coinciding points): nothing to split
            break
        moved = np.stack([points[groups == j].mean(0) for j in (0, 1)])
        if np.allclose(moved, centres, rtol=0, atol=1e-12):
            break
        centres = moved
    return groups


def label_positions(means, labels, min_share: float = 0.25, gap: float = 1.5) -> list[tuple[int, np.ndarray]]:
    """Where to write each class's label on a 2-D latent map: one label per cluster of the class, at the
    cluster's core_point (the centre of its densest half), so that every label sits on its own points
    (a class mean can fall between the class's clusters, on another class).

    A class's points P are split in two, A and B, by 2-means; the split is kept when both parts are
    substantial, min(|A|, |B|) >= min_share |P|, and far apart compared with their sizes,
    ||m_A - m_B|| >= gap (r_A + r_B), with m the mean of a part and r = sqrt(mean ||p - m||^2) its rms
    radius. (One round Gaussian blob split this way gives ||m_A - m_B|| / (r_A + r_B) of about 0.7.)
    Returns [(label, position (2,)), ...], in increasing label order, one or two entries per class."""
    means, labels = np.asarray(torch.as_tensor(means).detach(), dtype=np.float64), np.asarray(torch.as_tensor(labels))
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must have shape (N, 2), got {means.shape}")
    if labels.shape != (len(means),):
        raise ValueError(f"labels must have shape ({len(means)},), one per row of means, got {labels.shape}")
    if not 0 < min_share <= 0.5:
        raise ValueError(f"min_share must be in (0, 0.5], got {min_share}")
    if not gap > 0:
        raise ValueError(f"gap must be positive, got {gap}")
    out = []
    for k in np.unique(labels):
        points = means[labels == k]
        parts = [points]
        if len(points) >= 2:
            groups = two_means(points)
            a, b = points[groups == 0], points[groups == 1]
            if min(len(a), len(b)) >= min_share * len(points):
                rms = [np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean()) for p in (a, b)]
                if np.linalg.norm(a.mean(0) - b.mean(0)) >= gap * (rms[0] + rms[1]):
                    parts = [a, b]
        out.extend((int(k), core_point(p)) for p in parts)
    return out


def latent_map(means, labels, ax=None, title: str | None = None, lim: float = 3.0) -> Figure:
    """Where the encoder puts each image: the 2-D means mu_phi(x) (N, 2), coloured by digit label (N,),
    shown on the square [-lim, lim]^2. Each label is written at the core point of each cluster of its class
    (label_positions): a class split in two far-apart groups gets a label on each."""
    fig, ax = _fig_ax(ax, figsize=(4.8, 4.5))
    means = np.asarray(torch.as_tensor(means).detach())
    labels = np.asarray(torch.as_tensor(labels))
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must have shape (N, 2), got {means.shape}")
    if not lim > 0:
        raise ValueError(f"lim must be positive (the map shows [-lim, lim]^2), got {lim}")
    for k in np.unique(labels):
        m = labels == k
        ax.scatter(means[m, 0], means[m, 1], s=9, color=f"C{k}", alpha=0.8, linewidths=0)
    for k, (cx, cy) in label_positions(means, labels):
        ax.text(cx, cy, str(k), fontsize=13, weight="bold", ha="center", va="center", color=f"C{k}",
                bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec=f"C{k}", alpha=0.85))
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
    ax.set_title(title or "encoder means $\\mu_\\phi(x)$, coloured by digit")
    ax.grid(alpha=0.3)
    return fig


def plane_centres(lim: float, n: int) -> np.ndarray:
    """The n tile centres along each axis of decoded_plane: [-lim, lim] cut into n equal cells of width
    2 lim / n, centre i at -lim + (i + 1/2) 2 lim / n, (n,)."""
    return -lim + (np.arange(n) + 0.5) * (2 * lim / n)


def decoded_plane(decode: Callable[[torch.Tensor], torch.Tensor], lim: float = 3.0, n: int = 15, ax=None) -> Figure:
    """The decoder over the square [-lim, lim]^2, the frame of latent_map(lim=lim): the square is cut into
    n x n equal cells and each tile is sigmoid(f_theta(z)), the decoder's pixel probabilities at the cell's
    centre z (plane_centres), drawn over its cell (z_2 grows upwards)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (points per axis), got {n!r}")
    if not lim > 0:
        raise ValueError(f"lim must be positive (the plane shown is [-lim, lim]^2), got {lim}")
    fig, ax = _fig_ax(ax, figsize=(6, 6))
    zs = plane_centres(lim, n)
    z = torch.tensor([[z1, z2] for z2 in zs[::-1] for z1 in zs], dtype=torch.float32)
    with torch.no_grad():
        tiles = digits_to_array(decode(z), n, n, pad=1)
    ax.imshow(tiles, cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="nearest", extent=(-lim, lim, -lim, lim))
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title="the decoder over the latent plane")
    return fig


def gap_histograms(gaps: dict, ax=None, bins: int = 30) -> Figure:
    """Histograms of per-image gaps (name -> tensor (N,), nats), each with its mean marked."""
    fig, ax = _fig_ax(ax, figsize=(6.5, 3.5))
    for i, (name, values) in enumerate(gaps.items()):
        v = np.asarray(torch.as_tensor(values).detach())
        ax.hist(v, bins=bins, alpha=0.55, color=f"C{i}", label=f"{name} (mean {v.mean():.2f})")
        ax.axvline(v.mean(), color=f"C{i}", lw=2)
    ax.set(xlabel="nats per image", ylabel="test images")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def amortization_regression(optimum, predicted: dict, dims: Sequence[int], titles: Sequence[str] | None = None,
                            lim: float = 3.5, ncols: int = 4) -> Figure:
    """Amortization as a regression (1:10:00): one small panel per latent coordinate j in ``dims``,
    each image a point (phi_i*[j], f(x_i)[j]): its per-image optimum (``optimum``, (N, d), e.g. the
    refined means) across, what each encoder in ``predicted`` (name -> (N, d)) outputs up. A perfect
    regression puts every point on the dashed identity line. Same axes (-lim, lim) in every panel;
    ``titles``: one per panel (e.g. its KL and R^2)."""
    target = np.asarray(torch.as_tensor(optimum).detach(), dtype=float)
    preds = {k: np.asarray(torch.as_tensor(v).detach(), dtype=float) for k, v in predicted.items()}
    if target.ndim != 2 or any(p.shape != target.shape for p in preds.values()) or not preds:
        raise ValueError(f"optimum and every predicted entry must be (N, d) arrays of one shape, got "
                         f"{target.shape} and {[p.shape for p in preds.values()]}")
    dims = [int(j) for j in dims]
    if not dims or any(not 0 <= j < target.shape[1] for j in dims):
        raise ValueError(f"dims must be latent coordinates in [0, {target.shape[1]}), got {dims}")
    if titles is not None and len(titles) != len(dims):
        raise ValueError(f"titles needs one entry per panel ({len(dims)}), got {len(titles)}")
    nrows = -(-len(dims) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.4 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(dims):
            ax.axis("off")
            continue
        j = dims[k]
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        for i, (name, p) in enumerate(preds.items()):
            ax.scatter(target[:, j], p[:, j], s=4, alpha=0.5, color=f"C{i}", label=name, linewidths=0)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        ax.set_title(titles[k] if titles is not None else f"$z_{{{j}}}$", fontsize=8)
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel("encoder's $\\mu_\\phi(x_i)$", fontsize=8)
        if k // ncols == nrows - 1:
            ax.set_xlabel("refined $\\mu_i^\\star$", fontsize=8)
    axes.flat[0].legend(fontsize=7, loc="upper left", markerscale=3, handletextpad=0.2)
    fig.tight_layout(pad=0.4, h_pad=1.2)
    return fig


def digit_rows(rows: dict, size: float = 0.75) -> Figure:
    """One labelled row of 8x8 digits per entry of ``rows`` (name -> images (n, 64) in [0, 1]), for
    side-by-side comparisons (originals, reconstructions, samples). Every row has the same length."""
    arrays = [np.asarray(torch.as_tensor(v).detach(), dtype=float).reshape(-1, 64) for v in rows.values()]
    n = arrays[0].shape[0] if arrays else 0
    if not arrays or any(a.shape[0] != n for a in arrays):
        raise ValueError(f"every row needs the same number of images, got {[a.shape[0] for a in arrays]}")
    fig, axes = plt.subplots(len(arrays), 1, figsize=(size * n, (size + 0.3) * len(arrays)), squeeze=False)
    for ax, name, a in zip(axes[:, 0], rows, arrays):
        ax.imshow(digits_to_array(a, 1, n, pad=1), cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    return fig


class PosteriorFigure:
    """The posterior explorer's picture (notebook 07), redrawn by blitting: the digit x, then p(z | x)
    on a grid (a grey density with the contours of its regions of given masses), then for each q its
    regions of the same masses (ellipses: q is Gaussian) over a faint p(z | x).

    The three z panels share one square window, which moves with the digit; the axes themselves stay
    fixed at [0, 1] x [0, 1] and everything in z coordinates (images, contours, ellipses, the tick
    marks and their labels) is a dynamic artist placed in window coordinates u = (z - lo) / (hi - lo),
    so a new digit costs a blit (about 10 ms) instead of a full draw (about 180 ms, mostly ticks and
    text). The numbers that change (log p(x), the KLs) belong in the widget's label, not in titles.
    """

    def __init__(self, q_titles: Sequence[str], masses=(0.5, 0.9, 0.99), colours=("C1", "C2", "C3", "C4"), dpi=80):
        from matplotlib.collections import LineCollection
        from matplotlib.patches import Ellipse

        self.masses = tuple(masses)
        fig = Figure(figsize=(11, 3.0))
        axes = fig.subplots(1, 2 + len(q_titles), gridspec_kw={"width_ratios": [0.6] + [1] * (1 + len(q_titles))})
        fig.subplots_adjust(left=0.03, right=0.99, bottom=0.2, top=0.84, wspace=0.3)
        self.ax_x, *self.z_axes = axes
        self.ax_x.set_title("the test digit x", fontsize=9)
        self.ax_x.axis("off")
        self.digit = self.ax_x.imshow(np.zeros(IMAGE_SHAPE), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        titles = ["true posterior p(z|x) on the grid"] + [f"{t} (colour)\nover p(z|x) (grey)" for t in q_titles]
        dynamic = [self.digit]
        self.densities, self.contours, self.ellipses, self.ticks = [], [], [], []
        for k, (ax, title) in enumerate(zip(self.z_axes, titles)):
            ax.set(xlim=(0, 1), ylim=(0, 1), xticks=[], yticks=[], aspect="equal", xlabel="$z_1$")
            ax.set_title(title, fontsize=9)
            density = ax.imshow(np.zeros((2, 2)), origin="lower", extent=(0, 1, 0, 1), cmap="Greys",
                                alpha=1.0 if k == 0 else 0.55, interpolation="bilinear")
            contour = LineCollection([], colors="k", linewidths=0.8)
            ax.add_collection(contour)
            ellipses = [ax.add_patch(Ellipse((0, 0), 0, 0, fill=False, edgecolor=colours[k - 1], linewidth=1.5))
                        for _ in self.masses] if k else []
            ticks = LineCollection([], colors="k", linewidths=0.8, clip_on=False)
            ax.add_collection(ticks)
            ax.xaxis.labelpad = 11  # below the tick labels, which are pasted (TextStamps), not drawn
            self.densities.append(density), self.contours.append(contour), self.ellipses.append(ellipses)
            self.ticks.append(ticks)
            dynamic += [density, contour, *ellipses, ticks]
        self.z_axes[0].set_ylabel("$z_2$", labelpad=16)
        self.renderer = BlitRenderer(fig, dynamic, dpi=dpi)
        self.stamps = TextStamps(7, dpi)

    def png(self, x, z1, z2, density, levels, qs, window) -> bytes:
        """One frame: x (64,) the digit; z1 (n,), z2 (m,) the grid's axes; density (n, m) p(z | x) on it,
        indexed [i, j] for (z1[i], z2[j]); levels: contour heights (increasing); qs: [(mean (2,), std (2,))]
        one per q panel; window: (lo (2,), hi (2,)) the square shown, in z."""
        import contourpy
        from matplotlib.ticker import MaxNLocator

        (lo1, lo2), (hi1, hi2) = [np.asarray(w, dtype=float) for w in window]
        span = max(hi1 - lo1, hi2 - lo2)
        u = lambda v, lo: (np.asarray(v, dtype=float) - lo) / span  # noqa: E731  z -> window coordinates
        z1, z2 = np.asarray(z1, dtype=float), np.asarray(z2, dtype=float)
        dens = np.asarray(density, dtype=float).T  # rows = z2, columns = z1, as imshow and contourpy want
        self.digit.set_data(np.asarray(x, dtype=float).reshape(IMAGE_SHAPE))
        extent = (u(z1[0], lo1), u(z1[-1], lo1), u(z2[0], lo2), u(z2[-1], lo2))
        lines = contourpy.contour_generator(u(z1, lo1), u(z2, lo2), dens)
        segments = [seg for level in levels for seg in lines.lines(level)]
        values = [MaxNLocator(5).tick_values(lo1, lo1 + span), MaxNLocator(5).tick_values(lo2, lo2 + span)]
        values = [[v for v in vs if lo - 1e-9 <= v <= lo + span + 1e-9] for vs, lo in zip(values, (lo1, lo2))]
        for k, ax in enumerate(self.z_axes):
            self.densities[k].set_data(dens)
            self.densities[k].set_extent(extent)
            self.densities[k].set_clim(0, float(dens.max()))
            self.contours[k].set_segments(segments)
            if k:
                mean, std = (np.asarray(v, dtype=float).reshape(2) for v in qs[k - 1])
                for mass, ellipse in zip(self.masses, self.ellipses[k]):
                    r = np.sqrt(-2 * np.log(1 - mass))  # a Gaussian's region of mass m: radius sqrt(-2 ln(1 - m)) sds
                    ellipse.set_center((u(mean[0], lo1), u(mean[1], lo2)))
                    ellipse.width, ellipse.height = 2 * r * std[0] / span, 2 * r * std[1] / span
            marks = [[(u(v, lo1), 0), (u(v, lo1), -0.015)] for v in values[0]]
            if k == 0:  # z2's ticks on the first panel only: the three panels share the window
                marks += [[(0, u(v, lo2)), (-0.015, u(v, lo2))] for v in values[1]]
            self.ticks[k].set_segments(marks)
        labels = [(ax.transAxes.transform((u(v, lo1), -0.03)), f"{v:g}", "center", "top")
                  for ax in self.z_axes for v in values[0]]
        labels += [(self.z_axes[0].transAxes.transform((-0.03, u(v, lo2))), f"{v:g}", "right", "center")
                   for v in values[1]]

        def paint(rgba):
            for (px, py), text, ha, va in labels:
                self.stamps.paste(rgba, text, px, py, ha, va)

        return self.renderer.png(paint=paint)
