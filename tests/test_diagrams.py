"""vae_lesson.diagrams: the VAE's training step as a computation graph, with the gradient paths of
loss.backward(), and the path that sample() cuts."""
import io

import numpy as np
import PIL.Image
import pytest
from matplotlib.figure import Figure

from vae_lesson import diagrams


def test_rsample_graph_has_every_gradient_path_and_no_cut():
    ax = Figure().subplots()
    out = diagrams.computation_graph(ax, "rsample")
    assert set(out["nodes"]) == set(diagrams.NODES) and out["cut"] is None
    assert ("z", "params") in out["gradient_edges"] and ("params", "encoder") in out["gradient_edges"]
    assert ("kl", "params") in out["gradient_edges"]


def test_sample_graph_cuts_the_reconstructions_path_to_phi_only():
    """With sample() phi still gets the KL's gradient (kl -> params -> encoder), theta the decoder's, but the
    edge from z back to (mu, log sigma) is gone and a cross marks it."""
    ax = Figure().subplots()
    out = diagrams.computation_graph(ax, "sample")
    assert ("z", "params") not in out["gradient_edges"] and out["cut"] is not None and out["cut"].get_text() == "✗"
    assert {("kl", "params"), ("params", "encoder"), ("recon", "decoder")} <= set(out["gradient_edges"])
    assert "KL only" in ax.get_title()
    with pytest.raises(ValueError, match="rsample"):
        diagrams.computation_graph(ax, "mean")


def test_the_two_graphs_render_and_differ():
    fig = diagrams.computation_graphs()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    img = np.asarray(PIL.Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(int)
    top, bottom = img[: img.shape[0] // 2], img[img.shape[0] // 2: 2 * (img.shape[0] // 2)]
    red = lambda a: ((a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum()  # noqa: E731
    assert red(top) > 200 and red(bottom) > 200 and red(top) != red(bottom)
