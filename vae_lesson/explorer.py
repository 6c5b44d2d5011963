"""The latent explorer: the decoder runs in the browser.

``latent_explorer`` is an anywidget (one ES module, ``explorer.js``). The decoder's weights are
sent once as widget state (float32, base64); the browser computes the decoder's pixel
probabilities sigmoid(f_theta(z)) itself on every pointer move, so exploring needs no kernel
round trip. The kernel only does what needs Python: when the student picks a test digit (trait
``digit``), it computes q_phi(z | x) and, for a 2-D latent, the true posterior p(z | x) on a grid
(``latent_grid.zoomed_posterior_grid``) and sends them as the trait ``overlay``.

``export_html`` writes the same front end, the weights and the encoded test digits into ONE
self-contained HTML file (no network, no Jupyter): what a course website or a slide embeds. Its
state carries ``standalone: true``, and the page then leaves out the test-digit box (it needs
the kernel) and says so.

A model with more than 2 latent dims gets a slider for every dim with more than ``KL_THRESHOLD``
nats of average KL, most KL first; the map shows the top two. The 2-D model gets no sliders: the
map is its z1 and z2.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import anywidget
import numpy as np
import torch
import traitlets
from torch import nn

from . import latent_grid as lg

_JS = Path(__file__).with_name("explorer.js")
_ACTIVATIONS = {nn.SiLU: "silu", nn.ReLU: "relu", nn.Tanh: "tanh"}
KL_THRESHOLD = 0.1  # nats: a >2-D model gets a slider for every dim with more average KL than this


def _b64(a: torch.Tensor) -> str:
    return base64.b64encode(np.ascontiguousarray(a.detach().cpu().numpy(), dtype="<f4").tobytes()).decode("ascii")


def decoder_weights(model) -> dict:
    """The decoder f_theta as JSON: {"activation": name, "layers": [{"n_in", "n_out", "w", "b"}, ...]},
    w the Linear's weight (n_out, n_in) row-major and b (n_out,), both float32 little-endian in
    base64. The browser computes h = act(W h + b) layer by layer, then sigmoid on the last."""
    _check_model(model)
    net = model.decoder.net
    linears = [m for m in net if isinstance(m, nn.Linear)]
    acts = {_ACTIVATIONS.get(type(m)) for m in net if not isinstance(m, nn.Linear)}
    if None in acts or len(acts) > 1:
        raise ValueError(f"the browser decoder supports Linear layers with one of {sorted(_ACTIVATIONS.values())} "
                         f"between them, got {net}")
    return {"activation": acts.pop() if acts else "silu",
            "layers": [{"n_in": m.in_features, "n_out": m.out_features, "w": _b64(m.weight), "b": _b64(m.bias)}
                       for m in linears]}


def from_base64(text: str) -> np.ndarray:
    """A base64 string of little-endian float32 (what the widget sends) -> a 1-D float32 array."""
    if not isinstance(text, str):
        raise ValueError(f"expected a base64 string of float32 numbers, got {type(text).__name__}")
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)


def decode_from_weights(spec: dict, z) -> np.ndarray:
    """The browser's forward pass re-done in NumPy float32 from ``decoder_weights``' JSON:
    z (N, d) -> pixel probabilities (N, D). What the tests compare with ``model.decode``."""
    h = np.asarray(z, dtype=np.float32)
    if h.ndim != 2 or h.shape[1] != spec["layers"][0]["n_in"] or not np.isfinite(h).all():
        raise ValueError(f"z must be finite with shape (N, {spec['layers'][0]['n_in']}), got shape {h.shape}")
    act = {"silu": lambda v: v / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}[spec["activation"]]
    layers = spec["layers"]
    for k, layer in enumerate(layers):
        w = from_base64(layer["w"]).reshape(layer["n_out"], layer["n_in"])
        b = from_base64(layer["b"]).reshape(layer["n_out"])
        s = h @ w.T + b
        h = (1 / (1 + np.exp(-s))) if k == len(layers) - 1 else act(s)
    return h.astype(np.float32)


def _check_model(model) -> None:
    if not (hasattr(model, "decoder") and hasattr(model, "encoder") and hasattr(model, "latent_dim")):
        raise ValueError(f"model must be a trained VAE (vae.trained_vae(...)), got {type(model).__name__}")


def _check_data(model, images, labels, lim) -> tuple[torch.Tensor, torch.Tensor]:
    _check_model(model)
    images = torch.as_tensor(images, dtype=torch.float32)
    labels = torch.as_tensor(labels)
    if images.ndim != 2 or images.shape[1] != model.data_dim:
        raise ValueError(f"x_test must have shape (N, {model.data_dim}) (one flattened image a row), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("x_test contains NaN or infinite values; pass the binarized test images")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"y_test must hold one label per image, shape ({len(images)},), got {tuple(labels.shape)}")
    if not (isinstance(lim, (int, float)) and np.isfinite(lim) and lim > 0):
        raise ValueError(f"lim must be a positive number (the map shows [-lim, lim]^2), got {lim!r}")
    return images, labels


@torch.no_grad()
def average_kl_per_dim(model, images) -> torch.Tensor:
    """(1/N) sum_i KL(q_phi(z_j | x_i) || N(0, 1)) for each latent dim j: x (N, D) -> (d,).
    Per dim, KL = (mu^2 + sigma^2 - 1) / 2 - log sigma."""
    mean, log_std = model.encoder.params(model.check_x(images))
    return (0.5 * (mean ** 2 + torch.exp(2 * log_std) - 1) - log_std).mean(0)


def slider_dims(kl) -> list[int]:
    """The dims a >2-D model gets sliders for: every dim whose average KL (nats, ``average_kl_per_dim``)
    is above ``KL_THRESHOLD``, most KL first (at least the top two: the map's axes)."""
    kl = torch.as_tensor(kl)
    order = [int(j) for j in kl.argsort(descending=True, stable=True)]
    return order[:max(2, int((kl > KL_THRESHOLD).sum()))]


def _state(model, images, labels, lim) -> dict:
    """Everything the front end needs, as JSON-able widget state. Arrays travel as base64 of
    float32 (points: the test digits' encoder means on the map's two dims, and their labels)."""
    images, labels = _check_data(model, images, labels, lim)
    d = model.latent_dim
    if d < 2:
        raise ValueError(f"the latent explorer needs at least 2 latent dims, got latent_dim={d}")
    kl = average_kl_per_dim(model, images)
    dims = [0, 1] if d == 2 else slider_dims(kl)
    means = model.encode_mean(images)
    return {"latent_dim": d, "lim": float(lim), "dims": dims, "kl": [round(float(v), 4) for v in kl],
            "decoder": decoder_weights(model),
            "n_images": len(images),
            "points": {"z1": _b64(means[:, dims[0]]), "z2": _b64(means[:, dims[1]]), "labels": _b64(labels.float())}}


@torch.no_grad()
def digit_overlay(model, x, n: int = 41) -> dict:
    """For one test image x (D,): q_phi(z | x)'s mean and std (d,) and, for a 2-D latent, the
    true log p(z | x) on an n x n grid (``latent_grid.zoomed_posterior_grid``, fine grid with n
    points a side, covering q out to 6 sds): {"q_mean", "q_std", "extent": [z1 lo, hi, z2 lo, hi],
    "n": n, "log_post": base64 float32 of the (n, n) grid row-major, entry [i, j] at (z1[i], z2[j])}."""
    _check_model(model)
    x = model.check_x(torch.as_tensor(x, dtype=torch.float32).reshape(1, -1))
    mean, log_std = model.encoder.params(x)
    out = {"q_mean": [round(float(v), 5) for v in mean[0]], "q_std": [round(float(v), 5) for v in log_std[0].exp()]}
    if model.latent_dim == 2:
        _, fine = lg.zoomed_posterior_grid(model, x[0], covering=[(mean[0], log_std[0].exp())], n=n)
        out.update(extent=[float(fine.z1[0]), float(fine.z1[-1]), float(fine.z2[0]), float(fine.z2[-1])],
                   n=n, log_post=_b64(fine.log_posterior.float()))
    return out


class LatentExplorer(anywidget.AnyWidget):
    """The widget ``latent_explorer`` returns; its traits are the state the front end reads."""

    _esm = _JS.read_text()
    latent_dim = traitlets.Int(2).tag(sync=True)
    lim = traitlets.Float(3.0).tag(sync=True)
    dims = traitlets.List(traitlets.Int()).tag(sync=True)
    kl = traitlets.List(traitlets.Float()).tag(sync=True)
    decoder = traitlets.Dict().tag(sync=True)
    points = traitlets.Dict().tag(sync=True)
    n_images = traitlets.Int(0).tag(sync=True)
    digit = traitlets.Int(-1).tag(sync=True)
    overlay = traitlets.Dict().tag(sync=True)

    def __init__(self, model, images, labels, lim: float = 3.0, **kwargs):
        images, labels = _check_data(model, images, labels, lim)
        super().__init__(**_state(model, images, labels, lim), **kwargs)
        self._model, self._images = model, images

    @traitlets.validate("digit")
    def _valid_digit(self, proposal):
        i = proposal["value"]
        if not -1 <= i < self.n_images:
            raise traitlets.TraitError(f"digit must be a test digit's index in [0, {self.n_images - 1}] (or -1 for none), got {i}")
        return i

    @traitlets.observe("digit")
    def _on_digit(self, change):
        i = change["new"]
        self.overlay = {} if i < 0 else {"digit": i, **digit_overlay(self._model, self._images[i])}


    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        text = ("Interactive widget: the latent explorer (it needs JupyterLab with anywidget, or "
                "vae_lesson.explorer.export_html for a page that works without Jupyter).")
        if isinstance(bundle, tuple):
            bundle[0]["text/plain"] = text
        elif isinstance(bundle, dict):
            bundle["text/plain"] = text
        return bundle


def latent_explorer(model, x_test, y_test, lim: float = 3.0) -> LatentExplorer:
    """The latent explorer for a trained VAE: for latent_dim == 2 the map of the encoded test
    digits (encoder means mu_phi(x), coloured by label) beside the decoded digit; for a larger
    latent, sliders for the dims with the most average KL (the others held at 0) and the map on
    the top two. x_test (N, D) binarized, y_test (N,) labels; the map shows [-lim, lim]^2."""
    return LatentExplorer(model, x_test, y_test, lim=lim)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body style="font: 14px sans-serif; margin: 16px; overflow-wrap: anywhere">
<h1 style="font-size: 18px">{title}</h1>
<div id="vae-explorer-host"></div>
<script type="application/json" id="vae-explorer-state">{state}</script>
<script>
{js}
(function () {{
  const state = JSON.parse(document.getElementById("vae-explorer-state").textContent);
  const handlers = {{}};
  const model = {{  // a tiny stand-in for anywidget's model: no kernel behind it
    get: (k) => state[k],
    set: (k, v) => {{ state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); }},
    on: (ev, f) => {{ (handlers[ev] = handlers[ev] || []).push(f); }},
    save_changes: () => {{}},
  }};
  __widget.render({{ model, el: document.getElementById("vae-explorer-host") }});
}})();
</script>
</body></html>
"""


def export_html(model, x_test, y_test, path, lim: float = 3.0, title: str = "VAE latent explorer") -> Path:
    """Write the explorer to ONE self-contained HTML file at ``path`` (script, decoder weights and
    encoded test digits inline; no network, no Jupyter). Without a kernel there is no overlay:
    the page leaves the test-digit box out and says that it needs the notebook. Returns the path."""
    state = _state(model, x_test, y_test, lim)
    state.update(digit=-1, overlay={}, standalone=True)
    js = _JS.read_text().replace("export default { render };", "const __widget = { render };")
    if "__widget" not in js:
        raise RuntimeError("explorer.js must end with `export default { render };`")
    page = _PAGE.format(title=html.escape(title), js=js,
                        state=json.dumps(state, separators=(",", ":")).replace("</", "<\\/"))
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
