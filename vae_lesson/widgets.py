"""Interactive widgets. Each builder returns a small object holding its controls, its
``Image`` and its ``Label``, so tests can drive it from Python; displaying it shows the box.
Each widget redraws one image in place (no stacking of figures)."""
from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import distributions as D

from . import plots
from .models import LatentGaussianModel
from .validation import check_positive_int


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
        return self.box._repr_mimebundle_(**kwargs)


def latent_samples_explorer(
    model: LatentGaussianModel, data: torch.Tensor, max_k: int = 200,
    xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), seed: int = 0,
) -> WidgetParts:
    """Slider K -> p_K(x) = (1/K) sum_k N(x; mu_theta(z_k), diag sigma_theta(z_k)^2), the finite
    mixture made of K latent values z_1..z_K, drawn next to the data.

    z_k are the first K of a fixed stream of draws from p(z) (or, with "quantiles", K evenly
    spaced quantiles of p(z)). The label compares the average log p_K(x) on the data with the
    exact log p(x) (1-D quadrature). The slider redraws on release (continuous_update=False):
    a redraw renders a figure, which costs more than a frame.
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
                                   value="random", description="z from")
    image = widgets.Image(format="png")
    label = widgets.HTML()
    parts = WidgetParts({"k": slider, "source": source}, image, label,
                        widgets.VBox([widgets.HBox([slider, source]), image, label]))

    def latents(k: int, how: str) -> torch.Tensor:
        if how == "random":
            return z_stream[:k]
        u = (torch.arange(k, dtype=torch.float32) + 0.5) / k
        return D.Normal(0.0, 1.0).icdf(u)[:, None]

    # One figure, drawn once; each update only swaps the image data and the dots, then renders.
    xx, yy, grid = plots.grid_2d(xlim, ylim, n=100)
    fig = plt.Figure(figsize=(5, 4))  # not registered with pyplot: never shown twice, never leaked
    ax = fig.add_subplot()
    shade = ax.imshow(xx * 0, origin="lower", extent=(*xlim, *ylim), cmap="viridis", aspect="auto",
                      interpolation="bilinear")
    ax.scatter(data[:, 0], data[:, 1], s=3, color="w", alpha=0.35, linewidths=0)
    dots = ax.scatter([], [], s=14, color="C3", label=r"$\mu_\theta(z_k)$")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("$p_K(x)$ from K = 200 latent values")  # room for the title in the layout
    fig.tight_layout()

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
        ax.set_title(f"$p_K(x)$ from K = {k} latent value{'s' if k > 1 else ''}")
        image.value = plots.figure_to_png(fig, close=False, tight=False)
        label.value = (
            f"K = {k}: average log p<sub>K</sub>(x) over the data = <b>{avg:.3f}</b> nats; "
            f"exact log p(x) = <b>{exact:.3f}</b> nats (quadrature over z)"
        )
        parts.state.update(k=k, source=how, avg_log_pk=avg, exact_log_px=exact)

    slider.observe(redraw, names="value")
    source.observe(redraw, names="value")
    redraw()
    return parts
