"""Pictures the lecture draws on the board: the VAE as a computation graph (notebooks 05 and 07).

The graph of one training step, left to right (black arrows, the forward pass):

    x -> encoder (phi) -> mu, log sigma --+--> z = mu + sigma * eps -> decoder (theta) -> log p(x | z) --+--> loss
                                          |    eps ~ N(0, I) --^                                         |
                                          +--> KL(q_phi(z | x) || p(z)) -----------------------------------+

and the gradient paths of ``loss.backward()`` (red, dashed): to theta through the decoder; to phi
through z (the reconstruction's gradient) and through the KL. With ``z = q.sample()`` the edge from
(mu, sigma) to z carries no gradient: the reconstruction's path to phi is cut (a red cross), and phi
learns only from the KL. That is what ``rsample()`` (z = mu + sigma * eps) restores.
"""
from __future__ import annotations

from matplotlib.patches import FancyBboxPatch

# node -> (centre x, centre y, width, height, text); the board is 14 x 4.4 units
NODES = {
    "x": (0.5, 3.0, 0.8, 0.6, "$x$"),
    "encoder": (2.3, 3.0, 1.9, 1.0, "encoder $\\phi$\n$q_\\phi(z \\mid x)$"),
    "params": (4.5, 3.0, 1.5, 0.6, "$\\mu,\\ \\log\\sigma$"),
    "z": (6.8, 3.0, 1.9, 0.6, "$z = \\mu + \\sigma\\,\\varepsilon$"),
    "eps": (6.8, 1.2, 1.9, 0.6, "$\\varepsilon \\sim \\mathcal{N}(0, I)$"),
    "decoder": (9.1, 3.0, 1.9, 1.0, "decoder $\\theta$\n$p_\\theta(x \\mid z)$"),
    "recon": (11.4, 3.0, 1.8, 0.6, "$\\log p_\\theta(x \\mid z)$"),
    "kl": (9.1, 0.35, 3.0, 0.6, "$\\mathrm{KL}(q_\\phi(z \\mid x) \\,\\|\\, p(z))$"),
    "loss": (13.1, 1.7, 1.5, 0.6, "loss $= -$ELBO"),
}
FORWARD = [("x", "encoder"), ("encoder", "params"), ("params", "z"), ("eps", "z"), ("z", "decoder"),
           ("decoder", "recon"), ("recon", "loss"), ("params", "kl"), ("kl", "loss")]
# the gradient paths of loss.backward(): each edge of the forward pass that leads back to a parameter
BACKWARD = [("loss", "recon"), ("recon", "decoder"), ("decoder", "z"), ("z", "params"), ("params", "encoder"),
            ("loss", "kl"), ("kl", "params")]


def _box(ax, key, highlight=None):
    cx, cy, width, height, text = NODES[key]
    patch = FancyBboxPatch((cx - width / 2, cy - height / 2), width, height, boxstyle="round,pad=0.05",
                           facecolor=highlight or "white", edgecolor="black", linewidth=1.0, zorder=2)
    ax.add_patch(patch)
    ax.text(cx, cy, text, ha="center", va="center", fontsize=9, zorder=3)
    return patch


def _side(key, towards) -> tuple[float, float]:
    """The middle of the box's side that faces the point ``towards``."""
    cx, cy, w, h, _ = NODES[key]
    dx, dy = towards[0] - cx, towards[1] - cy
    if abs(dx) / w >= abs(dy) / h:
        return (cx + (w / 2 + 0.08) * (1 if dx > 0 else -1), cy)
    return (cx, cy + (h / 2 + 0.08) * (1 if dy > 0 else -1))


def _bottom(key, share: float = 0.0) -> tuple[float, float]:
    cx, cy, w, h, _ = NODES[key]
    return (cx + share * w / 2, cy - h / 2 - 0.08)


def computation_graph(ax, sample: str = "rsample", title: str | None = None) -> dict:
    """Draw the VAE's training step as a computation graph into ``ax``: the forward pass in black and the
    gradient paths of ``loss.backward()`` in red (dashed arcs), to theta (decoder) and to phi (encoder)
    through the reconstruction and through the KL. ``sample="sample"`` draws z = q.sample(): the edge
    from (mu, log sigma) to z is cut (a red cross) and the reconstruction's gradient stops at z.
    Returns {"nodes": {name: patch}, "gradient_edges": [(from, to)], "cut": the cross's artist or None}."""
    if sample not in ("rsample", "sample"):
        raise ValueError(f"sample must be 'rsample' or 'sample', got {sample!r}")
    ax.set(xlim=(-0.1, 14.0), ylim=(-0.15, 4.3))
    ax.axis("off")
    highlight = {"encoder": "#e8f0fb", "decoder": "#fbeee6"}
    nodes = {key: _box(ax, key, highlight.get(key)) for key in NODES}
    for a, b in FORWARD:
        if (a, b) == ("params", "kl"):  # down from (mu, log sigma), then right, below eps: it does not feed the KL
            start, end, style = _bottom("params", -0.3), _side("kl", (0, NODES["kl"][1])), "angle,angleA=-90,angleB=180,rad=0"
        else:
            start, end, style = _side(a, NODES[b][:2]), _side(b, NODES[a][:2]), "arc3,rad=0"
        ax.annotate("", xy=end, xytext=start, zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.2, "connectionstyle": style})
    drawn, cut = [], None
    for a, b in BACKWARD:
        top_row = NODES[a][1] == NODES[b][1] == 3.0
        if top_row:  # an arc under the two boxes, from the later one back to the earlier one
            start, end, conn = _bottom(a, -0.5), _bottom(b, 0.5), "arc3,rad=-0.55"
        elif (a, b) == ("kl", "params"):  # back along the forward path, just inside it
            kl_left = _side("kl", (0, NODES["kl"][1]))
            start, end, conn = (kl_left[0], kl_left[1] + 0.15), _bottom("params", 0.1), "angle,angleA=180,angleB=-90,rad=0"
        else:
            start, end, conn = _side(a, NODES[b][:2]), _side(b, NODES[a][:2]), "arc3,rad=0.25"
        style = {"arrowstyle": "-|>", "color": "C3", "lw": 1.3, "ls": "--", "connectionstyle": conn}
        if sample == "sample" and (a, b) == ("z", "params"):
            style.update(color="0.7")  # drawn faint: sample() returns numbers with no graph behind them
            mid = ((start[0] + end[0]) / 2, start[1] - 0.35)
            cut = ax.text(*mid, "✗", color="C3", fontsize=22, ha="center", va="center", fontweight="bold", zorder=4)
            ax.text(mid[0] - 0.7, mid[1] - 0.3, "sample(): the reconstruction's\ngradient stops at $z$",
                    color="C3", fontsize=8, ha="left", va="top")
        else:
            drawn.append((a, b))
        ax.annotate("", xy=end, xytext=start, arrowprops=style, zorder=1)
    ax.text(13.1, 3.55, "red: loss.backward()", color="C3", fontsize=8, ha="center")
    default = ("z = q.rsample(): gradients reach $\\theta$ and $\\phi$ through the reconstruction and the KL"
               if sample == "rsample" else "z = q.sample(): $\\phi$ gets gradients from the KL only")
    ax.set_title(title or default, fontsize=10)
    return {"nodes": nodes, "gradient_edges": drawn, "cut": cut}


def computation_graphs(figsize=(13, 8.0)):
    """The two graphs one above the other: ``rsample()`` (every gradient path) and ``sample()`` (the cut
    path). Returns the figure (not registered with pyplot; show it with ``display(fig)``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    top, bottom = fig.subplots(2, 1)
    computation_graph(top, "rsample")
    computation_graph(bottom, "sample")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, hspace=0.15)
    return fig
