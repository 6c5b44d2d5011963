"""Interactive widgets. Each builder returns a small object holding its controls, its
``Image`` and its ``Label``, so tests can drive it from Python; displaying it shows the box.
Each widget redraws one image in place (no stacking of figures)."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from torch import distributions as D

from . import plots
from .plots import DIGIT_CMAP
from .models import Latent1DModel, LatentGaussianModel, LinearGaussianModel
from .validation import check_positive_int


def _image(fig, dpi: int = 80) -> widgets.Image:
    """An Image widget shown at the figure's natural pixel size (never stretched to the page)."""
    width = int(fig.get_figwidth() * dpi)
    return widgets.Image(format="png", layout=widgets.Layout(width=f"{width}px", max_width="100%", height="auto"))


@dataclass
class WidgetParts:
    """A built widget: ``controls`` by name, the ``image`` it redraws, the ``label`` with its
    numbers and the ``box`` that holds them all (what the notebook displays)."""

    controls: dict
    image: widgets.Image
    label: widgets.HTML
    box: widgets.Box
    state: dict = field(default_factory=dict)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):  # what a notebook viewer without a live kernel shows instead
            bundle["text/plain"] = "Interactive widget: run the notebook's cells to use it (it needs a live kernel)."
        return bundle


def latent_samples_explorer(
    model: LatentGaussianModel, data: torch.Tensor, max_k: int = 200,
    xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), seed: int = 0,
) -> WidgetParts:
    """Slider K -> p_K(x) = (1/K) sum_k N(x; mu_theta(z_k), diag sigma_theta(z_k)^2), the finite
    mixture made of K latent values z_1..z_K, drawn next to the data.

    z_k are the first K of a fixed stream of draws from p(z) (or, with "quantiles", K evenly
    spaced quantiles of p(z)). The label compares the average log p_K(x) on the data with the
    exact log p(x) (1-D quadrature). Only the density and the dots are redrawn on an update
    (blitting); the slider still redraws on release (continuous_update=False).
    """
    check_positive_int(max_k, "max_k")
    if model.latent_dim != 1:
        raise ValueError(f"the explorer needs a model with a 1-D latent, got latent_dim={model.latent_dim}")
    g = torch.Generator().manual_seed(seed)
    z_stream = torch.randn(max_k, 1, generator=g)
    with torch.no_grad():
        exact = model.log_marginal_quadrature(data).mean().item()

    slider = widgets.IntSlider(value=1, min=1, max=max_k, step=1, description="K latents",
                               continuous_update=False)
    source = widgets.ToggleButtons(options=[("random z ~ p(z)", "random"), ("quantiles of p(z)", "quantiles")],
                                   value="random", description="z from", style={"description_width": "initial"})
    label = widgets.HTML()

    def latents(k: int, how: str) -> torch.Tensor:
        if how == "random":
            return z_stream[:k]
        u = (torch.arange(k, dtype=torch.float32) + 0.5) / k
        return D.Normal(0.0, 1.0).icdf(u)[:, None]

    # One figure, drawn once; each update only swaps the image data and the dots, then renders.
    xx, yy, grid = plots.grid_2d(xlim, ylim, n=64)  # shown with bilinear smoothing; the cost grows with n^2 K
    fig = plt.Figure(figsize=(5, 4))  # not registered with pyplot: never shown twice, never leaked
    image = _image(fig)
    parts = WidgetParts({"k": slider, "source": source}, image, label,
                        widgets.VBox([widgets.HBox([slider, source]), image, label]))
    ax = fig.add_subplot()
    shade = ax.imshow(xx * 0, origin="lower", extent=(*xlim, *ylim), cmap="viridis", aspect="auto",
                      interpolation="bilinear")
    data_dots = ax.scatter(data[:, 0], data[:, 1], s=3, color="w", alpha=0.35, linewidths=0)
    dots = ax.scatter([], [], s=14, color="C3", label=r"$\mu_\theta(z_k)$")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    legend = ax.legend(loc="upper right", fontsize=8, framealpha=1, fancybox=False)
    ax.set_title(r"$p_K(x)$: the average of $K$ Gaussians $p(x \mid z_k)$")
    fig.tight_layout()
    # the rest is drawn once; what lies on top of the density is redrawn after it, in order, and
    # the legend's pixels are pasted over it
    renderer = plots.BlitRenderer(fig, [shade, data_dots, dots], overlays=[legend])

    def redraw(_=None):
        k, how = slider.value, source.value
        z = latents(k, how)
        with torch.no_grad():
            p_k = model.mixture_from_latents(z)
            avg = p_k.log_prob(data).mean().item()
            dens = p_k.log_prob(grid).exp().reshape(xx.shape).numpy()
            centres = model.decoder(z).base_dist.loc.numpy()
        shade.set_data(dens)
        shade.set_clim(0, dens.max())
        dots.set_offsets(centres)
        image.value = renderer.png()
        label.value = (
            f"K = {k}: average log p<sub>K</sub>(x) over the data = <b>{avg:.3f}</b> nats; "
            f"exact log p(x) = <b>{exact:.3f}</b> nats (quadrature over z)"
        )
        parts.state.update(k=k, source=how, avg_log_pk=avg, exact_log_px=exact)

    slider.observe(redraw, names="value")
    source.observe(redraw, names="value")
    redraw()
    return parts


def _scaled(density: np.ndarray) -> np.ndarray:
    return density / density.max() if density.max() > 0 else density


def importance_sampling_explorer(
    model: LinearGaussianModel, x: torch.Tensor, n_repeats: int = 300, seed: int = 0,
) -> WidgetParts:
    """Sliders for a proposal q(z) = N(mean, std^2) over a 1-D latent and the sample count K ->
    the histogram of ``n_repeats`` independent estimates log p_hat(x) (importance sampling with q)
    against the exact log p(x).

    The estimates reuse one fixed table of standard-normal noise (z = mean + std * eps), so moving
    a slider changes the estimator, not the luck. mean 0 and std 1 make q the prior: naive Monte
    Carlo. Bar heights are counts divided by the tallest bar's count (given in the label), so
    the axes never change and only the moving parts are redrawn (blitting). Redraws on release
    (continuous_update=False): with K = 10000 one update evaluates 3 million weights, as
    log w = A + B eps + C eps^2 in float32 (see below), about 20 ms.
    """
    check_positive_int(n_repeats, "n_repeats")
    if model.latent_dim != 1:
        raise ValueError(f"the explorer needs a 1-D latent, got latent_dim={model.latent_dim}")
    x = model._check_x(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must be one data point of shape (1, {model.data_dim}), got {tuple(x.shape)}")
    k_options = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
    eps = torch.randn(n_repeats, k_options[-1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    eps32, eps32_sq = eps.float(), eps.pow(2).float()
    exact = model.log_marginal(x).item()
    post = model.posterior(x)
    pm, ps = post.mean.item(), post.covariance_matrix.sqrt().item()

    wide = widgets.Layout(width="480px")
    mean = widgets.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.01, description="q mean", continuous_update=False,
                               layout=wide)
    std = widgets.FloatLogSlider(value=1.0, base=10, min=-2, max=0.5, step=0.02, description="q std",
                                 continuous_update=False, layout=wide)
    k = widgets.SelectionSlider(options=k_options, value=100, description="K samples", continuous_update=False,
                                layout=wide)
    fig = plt.Figure(figsize=(10, 3.6))
    image, label = _image(fig), widgets.HTML()
    parts = WidgetParts({"mean": mean, "std": std, "k": k}, image, label,
                        widgets.VBox([mean, std, k, image, label]))
    ax_z, ax_h = fig.subplots(1, 2)
    zs = np.linspace(-4, 4, 2000)
    ax_z.plot(zs, _scaled(np.exp(-0.5 * zs**2)), color="0.5", label="prior p(z)")
    post_pdf = np.exp(-0.5 * ((zs - pm) / ps) ** 2)
    ax_z.plot(zs, post_pdf / post_pdf.max(), color="C0", label="posterior p(z|x)")
    (q_line,) = ax_z.plot([], [], color="C3", label="proposal q(z)")
    ax_z.set(xlabel="z", ylabel="density / its maximum", ylim=(0, 1.1), title="where the samples come from")
    ax_z.legend(loc="upper left", fontsize=8)
    edges = np.linspace(-10, 2, 241)
    bars = ax_h.stairs(np.zeros(len(edges) - 1), edges, fill=True, color="C3", alpha=0.7)
    exact_line = ax_h.axvline(0, color="k", ls="--", lw=1, label="exact log p(x)")
    mean_line = ax_h.axvline(0, color="C3", lw=1.5, label="mean of the estimates")
    ax_h.set(xlim=(-10, 2), ylim=(0, 1.08), xlabel="log p_hat(x) - log p(x)   (errors below -10 drawn at -10)",
             ylabel="count / largest count", title=f"{n_repeats} estimates of log p(x), each from K samples")
    legend = ax_h.legend(loc="upper left", fontsize=8, framealpha=1, fancybox=False)
    fig.tight_layout(w_pad=3)
    # the rest is drawn once; the lines go on top of the bars, and the legend's pixels over them
    renderer = plots.BlitRenderer(fig, [q_line, bars, exact_line, mean_line], overlays=[legend])
    # log p(x, z) of a linear-Gaussian model is a quadratic in a 1-D z: its three coefficients, from
    # three exact evaluations, give all R x K values at the cost of a multiply-add each
    at = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    f_minus, f_zero, f_plus = model.joint_log_prob(x, at).tolist()
    c0, c1, c2 = f_zero, (f_plus - f_minus) / 2, (f_plus + f_minus) / 2 - f_zero
    # With z = m + s eps and log q(z) = -eps^2 / 2 - log s - log(2 pi) / 2, the log-weight
    # log p(x, z) - log q(z) is again a quadratic, in eps: A + B eps + C eps^2. The coefficients
    # are computed in float64; the R x K table in float32 (relative error 1e-7, far below what
    # the histogram can show).

    def redraw(_=None):
        m, s, kk = mean.value, std.value, k.value
        a = c0 + m * (c1 + c2 * m) + math.log(s) + 0.5 * math.log(2 * math.pi)
        b, c = s * (c1 + 2 * c2 * m), c2 * s * s + 0.5
        log_w = (eps32_sq[:, :kk] * c).add_(eps32[:, :kk], alpha=b).add_(a)  # (R, K) = A + B eps + C eps^2
        top = log_w.max(1, keepdim=True).values
        w = (log_w - top).exp()  # one pass of exp serves both the estimate and the effective sample size
        s1, s2 = w.sum(1), w.pow(2).sum(1)
        estimates = top[:, 0] + s1.log() - math.log(kk)  # log (1/K) sum_k w_k  (= log_mean_exp(log_w, 1))
        errors = (estimates - exact).numpy()
        ess = (s1.pow(2) / s2 / kk).mean().item()  # (sum w)^2 / sum w^2, as a fraction of K
        q_line.set_data(zs, np.exp(-0.5 * ((zs - m) / s) ** 2))
        counts, _ = np.histogram(np.clip(errors, -10, 2), bins=edges)
        bars.set_data(counts / counts.max())
        mean_line.set_xdata([float(np.clip(errors.mean(), -10, 2))] * 2)
        image.value = renderer.png()
        label.value = (
            f"K = {kk} (the tallest bar: {counts.max()} of {n_repeats} estimates). "
            f"Exact log p(x) = <b>{exact:.3f}</b>; estimates: mean <b>{estimates.mean():.3f}</b> "
            f"(bias {errors.mean():+.3f} ± {errors.std() / math.sqrt(n_repeats):.3f}), spread (std) "
            f"{errors.std():.3f}; effective sample size {ess:.1%} of K. "
            f"Posterior: mean {pm:.3f}, std {ps:.3f}."
        )
        parts.state.update(mean=m, std=s, k=kk, exact=exact, estimates=estimates, ess_fraction=ess)

    for control in (mean, std, k):
        control.observe(redraw, names="value")
    redraw()
    return parts


def elbo_explorer(model: Latent1DModel, x: float, q_mean: float = -4.0, q_std: float = 0.87,
                  bar_floor: float = -20.0) -> WidgetParts:
    """Sliders for q(z) = N(mean, std^2) over a 1-D posterior p(z|x) -> the posterior and q on one
    axis, and beside them log p(x) = ELBO(q) + KL(q || p(z|x)) as a waterfall from the origin 0:
    the ELBO bar runs from 0 to the ELBO, the KL bar from the ELBO on to ELBO + KL, which ends on
    the dashed line at log p(x). Both lengths are in nats on one fixed axis (down to
    ``bar_floor``; a lower ELBO is cut there, and the label says so). All computed on a grid.

    Redraws on release (continuous_update=False); only q and the two bars are drawn again (the
    density axis changes, with a full redraw, only when q's peak passes one of a few heights).
    """
    log_px = model.log_marginal(x)
    if not bar_floor < min(log_px, 0.0):
        raise ValueError(f"bar_floor must lie below log p(x) = {log_px:.3f} and 0, got {bar_floor}")
    mean = widgets.FloatSlider(value=q_mean, min=-6.0, max=8.0, step=0.05, description="q mean",
                               continuous_update=False)
    std = widgets.FloatSlider(value=q_std, min=0.1, max=4.0, step=0.01, description="q std",
                              continuous_update=False)
    fig = plt.Figure(figsize=(10, 3.4))
    image, label = _image(fig), widgets.HTML()
    parts = WidgetParts({"mean": mean, "std": std}, image, label,
                        widgets.VBox([widgets.HBox([mean, std]), image, label]))
    ax_z, ax_b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    zs = torch.linspace(-8, 10, 1500, dtype=torch.float64)
    ax_z.plot(zs.numpy(), model.posterior_log_prob(x, zs).exp().numpy(), color="C0", label="posterior p(z|x)")
    (q_line,) = ax_z.plot([], [], color="C3", label="q(z)")
    ax_z.set(xlabel="z", ylabel="density", title=f"p(z | x = {x:g}) and q")
    ax_z.legend(loc="upper left", fontsize=8)
    elbo_bar = ax_b.barh([1], [0.0], color="C2", height=0.6)[0]
    kl_bar = ax_b.barh([0], [0.0], color="C1", height=0.6)[0]
    ax_b.axvline(0.0, color="0.3", lw=1)
    ax_b.axvline(log_px, color="k", ls="--", lw=1.2)
    ax_b.annotate(f"log p(x) = {log_px:.3f}", (log_px, 1.45), ha="right", fontsize=8)
    ax_b.annotate("0", (0.0, 1.45), ha="center", fontsize=8)
    ax_b.set(xlim=(bar_floor, max(0.0, log_px) + 1.0), ylim=(-0.5, 1.7), yticks=[1, 0],
             yticklabels=["ELBO:\n0 -> ELBO", "+ KL:\nELBO -> log p(x)"], xlabel="nats",
             title="log p(x) = ELBO + KL, lengths from 0")
    fig.tight_layout()
    renderer = plots.BlitRenderer(fig, [q_line, elbo_bar, kl_bar])
    heights = (0.5, 1.0, 2.0, 4.5)  # the density axis' few heights
    view = {}

    def redraw(_=None):
        m, s = mean.value, std.value
        elbo = model.elbo(x, m, s)
        kl = model.kl_to_posterior(x, m, s)
        q_line.set_data(zs.numpy(), torch.distributions.Normal(m, s).log_prob(zs).exp().numpy())  # NumPy: drawn fast
        top = next((h for h in heights if h >= 1.1 / (s * math.sqrt(2 * math.pi))), heights[-1])
        full = top != view.get("top")
        if full:
            view["top"] = top
            ax_z.set_ylim(0, top)
        start = max(elbo, bar_floor)  # cut at the axis' left end
        elbo_bar.set_x(start)
        elbo_bar.set_width(-start)
        kl_bar.set_x(start)
        kl_bar.set_width(elbo + kl - start)
        image.value = renderer.png(full=full)
        cut = f" (the ELBO lies off the axis, at {elbo:.1f}: both bars are cut at {bar_floor:g})" if elbo < bar_floor else ""
        label.value = (
            f"q = N({m:.2f}, {s:.2f}<sup>2</sup>): ELBO <b>{elbo:.4f}</b> + KL <b>{kl:.4f}</b> = "
            f"<b>{elbo + kl:.4f}</b>; log p(x) = <b>{log_px:.4f}</b> nats{cut}"
        )
        parts.state.update(mean=m, std=s, elbo=elbo, kl=kl, log_px=log_px)

    mean.observe(redraw, names="value")
    std.observe(redraw, names="value")
    redraw()
    return parts


PRESETS = ("0.5 everywhere", "1 everywhere", "top of likeliest component", "exact posterior marginals", "painted")


def missing_half_explorer(model, images: torch.Tensor, labels: torch.Tensor, observed: torch.Tensor,
                          n_samples: int = 2000, seed: int = 0) -> WidgetParts:
    """Slide 11 (41:58) as a widget: pick a digit whose top half is hidden, pick a preset for
    phi (or paint the 32 hidden pixels by clicking them: a clicked pixel flips between
    phi = 0.95 and 0.05), and see q's image, the exact posterior marginals, samples from q and
    ELBO, KL(q || p(x_top | x_bottom)) and log p(x_bottom). Every preset is built from x_bottom (and the
    model) alone: "top of likeliest component" is ``missing_half.likeliest_component_top``, the
    prototype of the component most probable given x_bottom, never the true top (that would leak the answer).

    images (n, 64) binary, labels (n,), observed (64,) bool (the bottom half). The ELBO uses one
    fixed table of uniforms, so it changes smoothly with phi.
    """
    from . import missing_half as mh

    check_positive_int(n_samples, "n_samples")
    n_missing = int((~observed).sum())
    uniforms = torch.rand(n_samples, n_missing, generator=torch.Generator().manual_seed(seed))
    digit = widgets.Dropdown(options=[(f"test digit {i} (a {int(labels[i])})", i) for i in range(len(images))],
                             value=0, description="digit")
    preset = widgets.ToggleButtons(options=PRESETS, value=PRESETS[0], description="phi",
                                   tooltips=["phi_j = 0.5 for every hidden pixel", "phi_j = 1 (all ink)",
                                             "the hidden pixels' probabilities in the component most probable given x_bottom",
                                             "the exact p(x_j = 1 | x_bottom)", "what the grid below shows"],
                                   style={"button_width": "215px"})
    pixels = [widgets.ToggleButton(value=False, layout=widgets.Layout(width="28px", height="28px"),
                                   tooltip=f"hidden pixel {j}") for j in range(n_missing)]
    grid = widgets.GridBox(pixels, layout=widgets.Layout(grid_template_columns="repeat(8, 30px)"))
    # Eight 8x8 panels tiled into one image (one matplotlib image to redraw, not eight), with
    # two-line titles above them and the line between the hidden and the seen halves across all.
    fig = plt.Figure(figsize=(10, 1.45))
    ax = fig.add_axes([0.01, 0.02, 0.98, 0.7])
    pad = 3
    tiles = ax.imshow(np.zeros((8, 8 * 8 + 7 * pad)), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    titles = ["q: phi\non top", "exact\np(x_top | x_bottom)"] + [f"sample {i + 1}\nfrom q" for i in range(6)]
    for i, title in enumerate(titles):
        ax.text(i * (8 + pad) + 3.5, -0.9, title, ha="center", va="bottom", fontsize=8)
    ax.axis("off")
    half = ax.axhline(3.5, color="C3", lw=1)  # the line between the hidden and seen halves
    renderer = plots.BlitRenderer(fig, [tiles, half])  # only the tiles change; the line goes on top
    image, label = _image(fig), widgets.HTML()
    parts = WidgetParts({"digit": digit, "preset": preset, "pixels": pixels}, image, label,
                        widgets.VBox([widgets.HBox([digit]), preset,
                                      widgets.HBox([widgets.HTML("paint the hidden pixels:"), grid]), image, label]))
    current = {"phi": torch.full((n_missing,), 0.5), "busy": False}

    def phi_for(name: str, x: torch.Tensor) -> torch.Tensor:
        if name == "0.5 everywhere":
            return torch.full((n_missing,), 0.5)
        if name == "1 everywhere":
            return torch.ones(n_missing)
        if name == "top of likeliest component":  # from x_bottom only, as notebook 04's "top of a 9"
            return mh.likeliest_component_top(model, x, observed).float()
        if name == "exact posterior marginals":
            return model.missing_marginals(x[None], observed)[0][~observed].float()
        return torch.tensor([0.95 if p.value else 0.05 for p in pixels])

    def redraw():
        x = images[digit.value]
        phi = current["phi"]
        with torch.no_grad():
            log_px = model.log_marginal_observed(x[None], observed).item()
            elbo = mh.elbo_missing(model, x, observed, phi, n_samples, uniforms=uniforms)
            exact = model.missing_marginals(x[None], observed)[0]
        q_img = x.clone().float()
        q_img[~observed] = phi
        samples = mh.fill_missing(x, observed, (uniforms[:6] < phi).float())  # (6, 64)
        tiles.set_data(plots.digits_to_array(torch.cat([q_img[None], exact[None].float(), samples]), 1, 8, pad=pad))
        image.value = renderer.png()
        value, se = elbo.value.item(), elbo.std_error.item()
        label.value = (
            f"log p(x_bottom) = <b>{log_px:.3f}</b> nats (exact); ELBO(phi) = <b>{value:.3f}</b> ± {se:.3f}; "
            f"KL(q || p(x_top | x_bottom)) = log p(x_bottom) - ELBO = <b>{log_px - value:.3f}</b> nats"
        )
        parts.state.update(digit=digit.value, preset=preset.value, phi=phi.clone(), elbo=value, elbo_se=se,
                           log_px=log_px, kl=log_px - value)

    def set_grid(phi):
        current["busy"] = True  # the grid mirrors phi; do not treat these changes as painting
        for p, v in zip(pixels, phi):
            p.value = bool(v > 0.5)
        current["busy"] = False

    def on_preset(_=None):
        if current["busy"]:
            return
        current["phi"] = phi_for(preset.value, images[digit.value])  # "painted" reads the grid
        if preset.value != "painted":
            set_grid(current["phi"])
        redraw()

    def on_paint(_=None):
        if current["busy"]:
            return
        current["phi"] = phi_for("painted", images[digit.value])
        if preset.value != "painted":
            current["busy"] = True
            preset.value = "painted"
            current["busy"] = False
        redraw()

    digit.observe(on_preset, names="value")
    preset.observe(on_preset, names="value")
    for p in pixels:
        p.observe(on_paint, names="value")
    on_preset()
    return parts


def gradient_estimator_explorer(n_repeats: int = 400, seed: int = 0) -> WidgetParts:
    """Pick an estimator, the dimension d, sigma and the sample count K -> histogram of
    ``n_repeats`` estimates (each an average of K single-sample estimates) of
    d/dmu_1 E_{N(mu, sigma^2 I_d)}[||z - a||^2] at mu = (1, ..., 1), a = (0.5, ..., 0.5),
    whose true value is 2 (mu_1 - a_1) = 1, marked on the plot.

    The score function with a leave-one-out baseline needs K >= 2 samples per estimate. Bar
    heights are counts divided by the tallest bar's count (in the title), so only the bars, the
    mean line and the title are redrawn (blitting). Redraws on release (continuous_update=False).
    """
    from . import gradients

    check_positive_int(n_repeats, "n_repeats")
    estimator = widgets.ToggleButtons(options=[("score function", "score"), ("score + baseline", "score_baseline"),
                                               ("pathwise", "pathwise")], value="score", description="estimator",
                                      style={"description_width": "initial"})
    dim = widgets.SelectionSlider(options=[1, 3, 10, 30, 100], value=10, description="dimension d",
                                  continuous_update=False, style={"description_width": "initial"})
    sigma = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=0.5, step=0.05, description="sigma",
                                   continuous_update=False)
    k = widgets.SelectionSlider(options=[1, 4, 16, 64], value=4, description="K samples", continuous_update=False)
    fig = plt.Figure(figsize=(7, 3.4))
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.16)
    spread = 10.0  # a fixed range, so estimators can be compared by the width of their histograms
    edges = np.linspace(1 - spread, 1 + spread, 81)
    bars = ax.stairs(np.zeros(80), edges, fill=True, color="C0")
    true_line = ax.axvline(1.0, color="k", ls="--", label="true gradient = 1")
    mean_line = ax.axvline(1.0, color="C3", label="mean of the estimates")
    ax.set(xlim=(1 - spread, 1 + spread), ylim=(0, 1.08), ylabel="count / largest count",
           xlabel="estimate of d/dmu_1 E[||z - a||^2]   (values beyond +-10 of the truth drawn at the edges)",
           title=f"{n_repeats} estimates of the gradient, each from K samples")
    legend = ax.legend(loc="upper right", fontsize=8, framealpha=1, fancybox=False)
    renderer = plots.BlitRenderer(fig, [bars, true_line, mean_line], overlays=[legend])  # lines, then legend, over the bars
    image, label = _image(fig), widgets.HTML()
    parts = WidgetParts({"estimator": estimator, "dim": dim, "sigma": sigma, "k": k}, image, label,
                        widgets.VBox([estimator, widgets.HBox([dim, sigma, k]), image, label]))

    def redraw(_=None):
        d, s, kk, how = dim.value, sigma.value, k.value, estimator.value
        mu = torch.ones(d, dtype=torch.float64)
        a = 0.5 * torch.ones(d, dtype=torch.float64)
        f = lambda z: (z - a).pow(2).sum(-1)  # noqa: E731
        g = torch.Generator().manual_seed(seed)
        n = n_repeats * kk
        std = s * torch.ones(d, dtype=torch.float64)
        note = ""
        if how == "pathwise":
            single = gradients.pathwise_samples(f, mu, std, n, generator=g)[0][:, 0]
        elif how == "score_baseline" and kk >= 2:
            single = gradients.score_function_samples(f, mu, std, n, "leave_one_out", g, group_size=kk)[0][:, 0]
        else:
            if how == "score_baseline":
                note = " (a leave-one-out baseline needs K >= 2: shown without one)"
            single = gradients.score_function_samples(f, mu, std, n, generator=g)[0][:, 0]
        estimates = single.reshape(n_repeats, kk).mean(1)
        counts, _ = np.histogram(estimates.clamp(1 - spread, 1 + spread).numpy(), bins=edges)
        bars.set_data(counts / counts.max())
        mean_line.set_xdata([float(np.clip(estimates.mean().item(), 1 - spread, 1 + spread))] * 2)
        image.value = renderer.png()
        mean, sd = estimates.mean().item(), estimates.std().item()
        label.value = (f"K = {kk} sample{'s' if kk > 1 else ''} per estimate (the tallest bar: {counts.max()} of "
                       f"{n_repeats}): mean {mean:.3f} ± {sd / math.sqrt(n_repeats):.3f} (true 1.000); std of one estimate "
                       f"<b>{sd:.3f}</b>; variance of a single-sample estimate {single.var().item():.3g}{note}")
        parts.state.update(estimator=how, dim=d, sigma=s, k=kk, estimates=estimates, std=sd)

    for control in (estimator, dim, sigma, k):
        control.observe(redraw, names="value")
    redraw()
    return parts


# ----------------------------------------------------------------------------------------------
# Notebooks 06 and 07


def refinement_explorer(model, images: torch.Tensor, labels: torch.Tensor, log_px: torch.Tensor,
                        refined=None, n_steps: int = 200, lr: float = 0.005, record_every: int = 5,
                        gap_range: float = 4.0) -> WidgetParts:
    """Semi-amortized inference on one test digit: pick the digit, slide the number of refinement
    steps, and watch its ELBO climb from the encoder's (step 0, q_phi(z|x)) towards log p(x).

    images (N, 64) binary, labels (N,), log_px (N,) importance-weighted estimates of log p(x).
    ``refined``: the notebook's own ``vae.refine(model, images, record_at=...)`` (a Refinement
    with elbo (len(steps), N)); the widget then shows those records, and the slider moves through
    its recorded steps: no update optimizes anything. Without it, the first visit to a digit runs
    ``vae.refine`` on that digit alone (``n_steps`` steps, seed = the digit's index, the ELBO
    recorded every ``record_every`` steps), about 0.2 s; later visits only redraw.
    The plot shows ELBO - log p(x) = -KL(q || p(z|x)) (0 is log p(x) itself) on a fixed scale
    from -``gap_range`` to 0, so every digit fits the same axes and an update redraws only what
    moved (blitting).
    """
    from .vae import Refinement, refine

    if not (len(images) == len(labels) == len(log_px)):
        raise ValueError(f"images, labels and log_px must have one entry per image, got {len(images)}, "
                         f"{len(labels)} and {len(log_px)}")
    if refined is not None:
        if not isinstance(refined, Refinement):
            raise TypeError(f"refined must be what vae.refine returns (a Refinement), got {type(refined).__name__}")
        if tuple(refined.elbo.shape) != (len(refined.steps), len(images)):
            raise ValueError(f"refined must come from vae.refine on these {len(images)} images: its ELBO records "
                             f"have shape {tuple(refined.elbo.shape)}, expected ({len(refined.steps)}, {len(images)})")
        recorded = list(refined.steps)
    else:
        check_positive_int(n_steps, "n_steps")
        check_positive_int(record_every, "record_every")
        if n_steps % record_every:
            raise ValueError(f"n_steps ({n_steps}) must be a multiple of record_every ({record_every})")
        recorded = list(range(0, n_steps + 1, record_every))
    last = recorded[-1]
    digit = widgets.BoundedIntText(value=0, min=0, max=len(images) - 1, description="test digit #")
    steps = widgets.SelectionSlider(options=recorded, value=0, description="steps", continuous_update=False)
    fig = plt.Figure(figsize=(8, 2.8))
    ax_x, ax_curve = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    shown_x = ax_x.imshow(np.zeros((8, 8)), cmap=DIGIT_CMAP, vmin=0, vmax=1, interpolation="nearest")
    ax_x.axis("off")
    ax_x.set_title("the test digit", fontsize=9)
    curve, = ax_curve.plot([], [], color="C0", lw=1.5, marker=".", ms=4, label="ELBO of the refined q(z; phi_i)")
    marker, = ax_curve.plot([], [], "o", color="C0", ms=7, clip_on=False)
    enc_line = ax_curve.axhline(0, color="C1", ls="--", lw=1.2, label="encoder's ELBO, q_phi(z|x)")
    zero_line = ax_curve.axhline(0, color="k", lw=1.2, label="log p(x) (the importance-weighted estimate passed in)")
    ax_curve.set(xlabel="refinement steps (Adam on this image's ELBO)", ylabel="ELBO - log p(x)  (nats)",
                 xlim=(0, last), ylim=(-gap_range, 0.25))
    ax_curve.grid(alpha=0.3)
    legend = ax_curve.legend(fontsize=7, loc="lower right", framealpha=1, fancybox=False)
    fig.tight_layout()
    # the axes stay put; the legend's pixels go over the curve
    renderer = plots.BlitRenderer(fig, [shown_x, curve, enc_line, zero_line, marker], overlays=[legend])
    image, label = _image(fig), widgets.HTML()
    parts = WidgetParts({"digit": digit, "steps": steps}, image, label,
                        widgets.VBox([widgets.HBox([digit, steps]), image, label]))
    cache: dict[int, torch.Tensor] = {}

    def trajectory(i: int) -> torch.Tensor:
        if refined is not None:
            return refined.elbo[:, i]
        if i not in cache:  # not recorded: refine this digit now, once
            cache[i] = refine(model, images[i:i + 1], n_steps=n_steps, lr=lr, record_at=recorded, seed=i).elbo[:, 0]
        return cache[i]

    def redraw(_=None):
        i, s = digit.value, steps.value
        k = recorded.index(s)
        elbo = trajectory(i)
        lpx = float(log_px[i])
        gap = (elbo - lpx).clamp(min=-gap_range).numpy()  # drawn at the bottom edge when further below
        shown_x.set_data(images[i].reshape(8, 8).numpy())
        curve.set_data(recorded, gap)
        enc_line.set_ydata([gap[0]] * 2)
        marker.set_data([s], [gap[k]])
        image.value = renderer.png()
        now, start = float(elbo[k]), float(elbo[0])
        label.value = (f"test digit #{i} (a {int(labels[i])}), after <b>{s}</b> steps: ELBO = <b>{now:.3f}</b> nats (encoder: {start:.3f}, so "
                       f"refinement gained <b>{now - start:+.3f}</b>); log p(x) ≈ {lpx:.3f}, so the gap left is "
                       f"<b>{lpx - now:.3f}</b> = KL(q || p(z|x)) for this q")
        parts.state.update(digit=i, steps=s, elbo=now, encoder_elbo=start, log_px=lpx)

    digit.observe(redraw, names="value")
    steps.observe(redraw, names="value")
    redraw()
    return parts


def _latent_background(model, images, labels, lim: float, dpi: int = 80):
    """The latent map rendered once as an RGBA array, and a function mapping z (z1, z2) to pixel (row, col)."""
    fig = plt.Figure(figsize=(4.4, 4.2))
    ax = fig.subplots()
    plots.latent_map(model.encode_mean(images), labels, ax=ax, lim=lim, title="drag the sliders: the red + is z")
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba()).copy()
    height = rgba.shape[0]
    transform = ax.transData

    def to_pixel(z1: float, z2: float) -> tuple[int, int]:
        x, y = transform.transform((z1, z2))
        return int(round(height - y)), int(round(x))

    plt.close(fig)
    return rgba, to_pixel


def _draw_cross(rgba: np.ndarray, row: int, col: int, size: int = 7) -> np.ndarray:
    """A copy of the RGBA array with a red + (3 px thick) centred at (row, col)."""
    out = rgba.copy()
    h, w = out.shape[:2]
    red = np.array([214, 39, 40, 255], dtype=np.uint8)
    r0, r1 = min(max(row - size, 0), h), max(min(row + size + 1, h), 0)  # clipped to the image: may be empty
    c0, c1 = min(max(col - size, 0), w), max(min(col + size + 1, w), 0)
    if 0 <= col < w:
        out[r0:r1, max(col - 1, 0):col + 2] = red
    if 0 <= row < h:
        out[max(row - 1, 0):row + 2, c0:c1] = red
    return out


def latent_explorer(model, images: torch.Tensor, labels: torch.Tensor, lim: float = 3.0) -> WidgetParts:
    """The 2-D latent space of a VAE: two sliders pick z = (z1, z2); the decoder turns it into a digit
    immediately (p(x|z)'s pixel probabilities), next to the map of where the encoder puts the test
    digits. "go to test digit #" moves z to that digit's encoder mean mu_phi(x).

    Fast enough to follow a dragged slider (continuous_update=True): the map is rendered once, the
    red + and the digit are drawn with NumPy and PIL, no matplotlib per update.
    """
    if model.latent_dim != 2:
        raise ValueError(f"the latent explorer needs a model with a 2-D latent space, got latent_dim={model.latent_dim}; "
                         "use vae.trained_vae('2d')")
    background, to_pixel = _latent_background(model, images, labels, lim)
    means = model.encode_mean(images)
    z1 = widgets.FloatSlider(value=0.0, min=-lim, max=lim, step=0.05, description="z1", continuous_update=True)
    z2 = widgets.FloatSlider(value=0.0, min=-lim, max=lim, step=0.05, description="z2", continuous_update=True)
    go_to = widgets.BoundedIntText(value=-1, min=-1, max=len(images) - 1, description="test digit #",
                                   tooltip="type a test digit's number to move z to its encoder mean; -1 once z moves away")
    latent_image = widgets.Image(format="png", layout=widgets.Layout(width=f"{background.shape[1]}px", height="auto"))
    image = widgets.Image(format="png", layout=widgets.Layout(width="160px", height="160px"))
    label = widgets.HTML()
    parts = WidgetParts({"z1": z1, "z2": z2, "go_to": go_to}, image, label,
                        widgets.VBox([widgets.HBox([z1, z2, go_to]),
                                      widgets.HBox([latent_image, widgets.VBox([widgets.HTML("<b>decoder p(x|z)</b>"), image])]),
                                      label]),
                        state={"latent_image": latent_image})
    prior = D.Normal(0.0, 1.0)
    busy = {"on": False}

    def on_slider(_=None):
        if busy["on"]:
            return
        if go_to.value != -1:  # z left the digit: typing the same number again goes back to it
            busy["on"] = True
            go_to.value = -1
            busy["on"] = False
        redraw()

    def redraw():
        z = torch.tensor([[z1.value, z2.value]], dtype=torch.float32)
        probs = model.decode(z)[0]
        image.value = plots.digit_png(probs)
        latent_image.value = plots.rgba_png(_draw_cross(background, *to_pixel(z1.value, z2.value)))
        nearest = int(((means - z) ** 2).sum(1).argmin())
        dist = float(((means[nearest] - z[0]) ** 2).sum().sqrt())
        log_pz = float(prior.log_prob(z).sum())
        label.value = (f"z = ({z1.value:+.2f}, {z2.value:+.2f}); log p(z) = {log_pz:.2f}; nearest encoded test digit: "
                       f"a <b>{int(labels[nearest])}</b> (#{nearest}, {dist:.2f} away)")
        parts.state.update(z=(z1.value, z2.value), probs=probs, nearest=nearest, nearest_label=int(labels[nearest]))

    def on_go_to(_=None):
        i = go_to.value
        if i < 0 or busy["on"]:
            return
        busy["on"] = True
        z1.value = float(np.clip(round(float(means[i, 0]) / 0.05) * 0.05, -lim, lim))
        z2.value = float(np.clip(round(float(means[i, 1]) / 0.05) * 0.05, -lim, lim))
        busy["on"] = False
        redraw()

    z1.observe(on_slider, names="value")
    z2.observe(on_slider, names="value")
    go_to.observe(on_go_to, names="value")
    redraw()
    return parts


def interpolation_explorer(model, images: torch.Tensor, labels: torch.Tensor, n_points: int = 10,
                           first: int = 0, second: int = 1) -> WidgetParts:
    """Walk in latent space between two test digits: z_t = (1 - t) mu_phi(x_a) + t mu_phi(x_b) for t
    from 0 to 1, each decoded (pixel probabilities), between the two originals. Both indices can
    be typed; the strip redraws at once (NumPy and PIL)."""
    check_positive_int(n_points, "n_points")
    a = widgets.BoundedIntText(value=first, min=0, max=len(images) - 1, description="from digit #")
    b = widgets.BoundedIntText(value=second, min=0, max=len(images) - 1, description="to digit #")
    image = widgets.Image(format="png", layout=widgets.Layout(width=f"{(n_points + 2) * 9 * 8}px", height="auto"))
    label = widgets.HTML()
    parts = WidgetParts({"first": a, "second": b}, image, label, widgets.VBox([widgets.HBox([a, b]), image, label]))
    t = torch.linspace(0, 1, n_points)[:, None]

    def redraw(_=None):
        mu = model.encode_mean(images[[a.value, b.value]])
        path = (1 - t) * mu[0] + t * mu[1]
        strip = torch.cat([images[a.value][None], model.decode(path), images[b.value][None]])
        image.value = plots.digit_png(plots.digits_to_array(strip, 1, n_points + 2), scale=8)
        label.value = (f"left: test digit #{a.value} (a {int(labels[a.value])}); right: #{b.value} "
                       f"(a {int(labels[b.value])}); between them, the decoder at {n_points} evenly spaced points "
                       "on the straight line between their encoder means")
        parts.state.update(first=a.value, second=b.value, strip=strip)

    a.observe(redraw, names="value")
    b.observe(redraw, names="value")
    redraw()
    return parts


def posterior_explorer(model, images: torch.Tensor, labels: torch.Tensor, first: int = 0,
                       refine_steps: int = 100, lr: float = 0.01, n: int = 41, n_samples: int = 5000) -> WidgetParts:
    """The true posterior p(z | x) of a 2-D VAE for a chosen test digit, computed on a grid
    (``latent_grid.zoomed_posterior_grid``, an n x n grid where p(z | x) and the q's live), beside the
    encoder's q_phi(z | x) and a refined q (``vae.refine``, ``refine_steps`` Adam steps, seed = the
    digit's index), each with KL(q || p(z | x)) on the grid; the label gives log p(x) three ways (grid,
    importance-weighted with K = ``n_samples`` draws from q_phi(z | x), and the ELBO bounds).

    images (N, 64) binary, labels (N,). What can be done once is done when the widget is built: the
    refinement of every digit (one batched ``vae.refine``, each digit with the noise its own call
    would draw) and the decoder on the coarse grid that finds where p(z | x) lives
    (``latent_grid.DecodedGrid``). A new digit then costs its fine grid (n^2 decoder passes), its
    K-sample estimate and a blitted picture (``plots.PosteriorFigure``): tens of milliseconds. A digit
    seen before is redrawn from its cached picture. Where the importance-weighted estimate falls more
    than 3 standard errors below the grid's, the label says so: q_phi(z | x), its proposal, misses
    part of p(z | x) (a digit whose posterior has two regions of mass, for instance).
    """
    from . import latent_grid as lg
    from .vae import refine

    if model.latent_dim != 2:
        raise ValueError(f"the posterior explorer needs a model with a 2-D latent space, got latent_dim="
                         f"{model.latent_dim}; use vae.trained_vae('2d')")
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have one entry per image, got {len(images)} and {len(labels)}")
    if not (isinstance(first, int) and 0 <= first < len(images)):
        raise ValueError(f"first must be a test digit's index in [0, {len(images) - 1}], got {first!r}")
    check_positive_int(refine_steps, "refine_steps")
    images = model.check_x(images)
    with torch.no_grad():
        enc_mean, enc_log_std = model.encoder.params(images)
    refined = refine(model, images, n_steps=refine_steps, lr=lr, eval_samples=50, seed=list(range(len(images))))
    decoded = lg.DecodedGrid(model)  # the coarse grid's decoder passes, shared by every digit
    names = ("encoder q_phi(z|x)", "refined q")
    picture = plots.PosteriorFigure(names)
    digit = widgets.BoundedIntText(value=first, min=0, max=len(images) - 1, description="test digit #")
    image = widgets.Image(format="png", layout=widgets.Layout(width="880px", max_width="100%", height="auto"))
    label = widgets.HTML()
    parts = WidgetParts({"digit": digit}, image, label, widgets.VBox([digit, image, label]))
    cache: dict[int, dict] = {}

    def compute(i: int) -> dict:
        x = images[i]
        qs = {names[0]: (enc_mean[i], enc_log_std[i].exp()), names[1]: (refined.mean[i], refined.log_std[i].exp())}
        coarse, grid = lg.zoomed_posterior_grid(model, x, covering=list(qs.values()), n=n, decoded=decoded)
        iw = lg.importance_log_px(model, x, n_samples=n_samples, seed=0)
        post = grid.log_posterior
        png = picture.png(x, grid.z1, grid.z2, post.exp(), lg.mass_levels(post), list(qs.values()),
                          lg.shown_window(grid, list(qs.values())))
        return {"png": png, "log_px_grid": grid.log_px, "log_px_iw": float(iw.value), "iw_se": float(iw.std_error),
                "elbo": {k: lg.elbo_on_grid(grid, *q) for k, q in qs.items()},
                "kl": {k: lg.kl_on_grid(grid, *q) for k, q in qs.items()},
                "border_mass": max(coarse.border_mass, grid.border_mass), "qs": qs}

    def redraw(_=None):
        i = digit.value
        if i not in cache:
            cache[i] = compute(i)
        r = cache[i]
        image.value = r["png"]
        (enc, ref), lpx = r["elbo"].keys(), r["log_px_grid"]
        label.value = (
            f"test digit #{i} (a {int(labels[i])}). log p(x), three ways: on the grid <b>{lpx:.3f}</b>; "
            f"importance-weighted (K = {n_samples}) {r['log_px_iw']:.3f} ± {r['iw_se']:.3f}; "
            f"ELBO bounds (on the grid): encoder {r['elbo'][enc]:.3f}, refined {r['elbo'][ref]:.3f} nats.<br>"
            f"KL(q || p(z|x)) = log p(x) - ELBO(q): encoder <b>{r['kl'][enc]:.3f}</b>, refined "
            f"<b>{r['kl'][ref]:.3f}</b> nats. (Posterior mass in the grids' border cells: "
            f"{r['border_mass']:.0e}.)")
        if lpx - r["log_px_iw"] > 3 * r["iw_se"]:
            label.value += (f"<br>The importance-weighted estimate is {lpx - r['log_px_iw']:.2f} nats below the grid's, "
                            "more than 3 of its standard errors: its proposal q_phi(z|x) misses part of p(z|x), "
                            "so K = " f"{n_samples} draws from it rarely land where p(x, z) is large.")
        parts.state.update(digit=i, log_px_grid=lpx, log_px_iw=r["log_px_iw"], iw_se=r["iw_se"],
                           kl_encoder=r["kl"][enc], kl_refined=r["kl"][ref], elbo_encoder=r["elbo"][enc],
                           elbo_refined=r["elbo"][ref], border_mass=r["border_mass"], qs=r["qs"])

    digit.observe(redraw, names="value")
    redraw()
    return parts
