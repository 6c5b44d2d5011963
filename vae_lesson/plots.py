"""Pictures: every helper returns a matplotlib Figure (and draws on ``ax`` when one is given)."""
from __future__ import annotations

import io
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


def em_bounds(reports: Sequence[EMStepReport], ax=None) -> Figure:
    """EM's staircase: per iteration, log p(x) (dots) and the ELBO after each E-step (touching
    log p(x): the bound is tight) and after each M-step (below the next log p(x))."""
    fig, ax = _fig_ax(ax, figsize=(6, 3.5))
    t = np.arange(len(reports))
    ll_before = np.array([r.log_lik_before for r in reports])
    ll_after = np.array([r.log_lik_after for r in reports])
    e = np.array([r.elbo_after_e for r in reports])
    m = np.array([r.elbo_after_m for r in reports])
    xs, ys = [], []
    for i in t:
        xs += [i, i + 0.5]
        ys += [e[i], m[i]]
    ax.plot(xs, ys, "-", color="C1", lw=1.2, label="ELBO(theta, q) along EM")
    ax.plot(t + 0.5, m, "v", color="C1", ms=5, label="ELBO after M-step")
    ax.plot(t, e, "^", color="C2", ms=6, label="ELBO after E-step (tight)")
    ax.plot(np.r_[t, t[-1] + 1], np.r_[ll_before, ll_after[-1]], "o", mfc="none", color="C0", ms=9,
            label="log p(x; theta)")
    ax.set(xlabel="EM iteration", ylabel="nats per data point")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
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
        PIL.Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).save(
            buf, format="png", compress_level=1)
    if close:
        plt.close(fig)
    return buf.getvalue()
