"""EM's bound as a curve over theta: the picture of Lecture 6 (39:00) and Bishop's PRML, figure 9.14.

The model has ONE free parameter, so log p(x; theta) and the ELBO are curves over theta, computed
exactly (no sampling, no grid over z). A two-component Gaussian mixture in one dimension,
shifted symmetrically by theta:

    p(z = c) = 1/2,    x | z = c ~ N(s_c theta, 1),    s = (-1, +1),    c in {0, 1} (C = 2),

on a handful of points x_1 .. x_N (``DATA``). Everything is averaged over the points (nats per
point), as notebook 01 reports EM:

    log p(x; theta)    = (1/N) sum_n log sum_c p(x_n, z = c; theta)
    ELBO(theta, q)     = (1/N) sum_n sum_c q_nc [log p(x_n, z = c; theta) - log q_nc]
                       = log p(x; theta) - (1/N) sum_n KL(q_n || p(z | x_n; theta)).

For every q the ELBO is at most log p(x; theta), for every theta. As a function of theta it is
a downward parabola: log p(x_n, z = c; theta) = log 1/2 - (x_n - s_c theta)^2 / 2 - log sqrt(2 pi),
so ELBO(theta, q) = -theta^2 / 2 + theta (1/N) sum_n (q_n1 - q_n0) x_n + (terms free of theta).

EM from theta_t:
- E-step: q_t = p(z | x; theta_t), the exact posterior. The KL is zero at theta_t, so the
  parabola ELBO(theta, q_t) TOUCHES log p(x; theta) at theta = theta_t (and stays below elsewhere).
- M-step: theta_{t+1} = argmax_theta ELBO(theta, q_t) = (1/N) sum_n (q_n1 - q_n0) x_n, the top
  of the parabola. Then log p(x; theta_{t+1}) >= ELBO(theta_{t+1}, q_t) >= ELBO(theta_t, q_t)
  = log p(x; theta_t): the likelihood cannot go down.

A restricted q cannot touch. ``hard_assignments`` puts all of q_n on the most probable
component (one component per point, as hard EM and k-means do). The posterior is never one-hot
(both Gaussians are positive everywhere), so the gap, (1/N) sum_n -log p(z = c_n | x_n; theta),
is strictly positive for every theta: that bound lies strictly below log p(x; theta) everywhere,
and its top (the mean of s_{c_n} x_n) is not the likelihood's.

Core module: computes only; ``draw_em_step`` and ``draw_restricted`` draw on an ``ax`` and import
matplotlib inside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .validation import as_tensor

DATA = (-2.4, -1.9, -1.1, 0.3, 1.0, 1.7, 2.2)  # N = 7 points
SIGNS = (-1.0, 1.0)  # component c has mean SIGNS[c] * theta
THETA_T = 0.4  # where the picture's EM step starts


def data() -> torch.Tensor:
    """The N = 7 points x_n (float64, shape (N,))."""
    return torch.tensor(DATA, dtype=torch.float64)


def _x(x) -> torch.Tensor:
    x = data() if x is None else as_tensor(x, "x", exact=torch.float64).to(torch.float64)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"x must be a 1-D tensor of points (N,), got shape {tuple(x.shape)}")
    return x


def _theta(theta) -> torch.Tensor:
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if not torch.isfinite(theta).all():
        raise ValueError("theta must be finite")
    return theta


def log_joint(theta, x=None) -> torch.Tensor:
    """log p(x_n, z = c; theta) = log 1/2 + log N(x_n; s_c theta, 1), shape theta.shape + (N, C = 2)."""
    theta, x = _theta(theta), _x(x)
    means = theta[..., None, None] * torch.tensor(SIGNS, dtype=torch.float64)  # (..., 1, 2)
    return math.log(0.5) - 0.5 * (x[:, None] - means) ** 2 - 0.5 * math.log(2 * math.pi)


def log_marginal(theta, x=None) -> torch.Tensor:
    """log p(x; theta) = (1/N) sum_n log sum_c p(x_n, z = c; theta), nats per point, shape theta.shape."""
    return torch.logsumexp(log_joint(theta, x), dim=-1).mean(-1)


def posterior(theta, x=None) -> torch.Tensor:
    """The E-step: q_nc = p(z = c | x_n; theta) for one theta, shape (N, 2), rows summing to 1."""
    theta = _theta(theta)
    if theta.ndim != 0:
        raise ValueError(f"posterior takes one theta (a number), got shape {tuple(theta.shape)}")
    return torch.softmax(log_joint(theta, x), dim=-1)


def _q(q, x) -> torch.Tensor:
    q = as_tensor(q, "q", exact=torch.float64).to(torch.float64)
    if q.shape != (x.numel(), 2):
        raise ValueError(f"q must have shape ({x.numel()}, 2) (points, components), got {tuple(q.shape)}")
    if (q < 0).any() or not torch.allclose(q.sum(-1), torch.ones((), dtype=q.dtype), atol=1e-9):
        raise ValueError("q must hold probabilities: non-negative rows that sum to 1")
    return q


def elbo(theta, q, x=None) -> torch.Tensor:
    """ELBO(theta, q) = (1/N) sum_n sum_c q_nc [log p(x_n, z = c; theta) - log q_nc], shape theta.shape.

    Exact (a sum over c). A q_nc of 0 contributes 0 (0 log 0 = 0), so hard assignments are allowed.
    """
    x = _x(x)
    q = _q(q, x)
    joint = log_joint(theta, x)
    expected = torch.where(q > 0, q * joint, torch.zeros((), dtype=joint.dtype)).sum(-1)
    return (expected - torch.special.xlogy(q, q).sum(-1)).mean(-1)


def m_step(q, x=None) -> float:
    """argmax_theta ELBO(theta, q) = (1/N) sum_n (q_n1 - q_n0) x_n (the top of the parabola)."""
    x = _x(x)
    q = _q(q, x)
    return ((q[:, 1] - q[:, 0]) * x).mean().item()


def hard_assignments(theta, x=None) -> torch.Tensor:
    """A restricted q: all of q_n on the most probable component under theta (one-hot rows, (N, 2))."""
    resp = posterior(theta, x)
    return torch.nn.functional.one_hot(resp.argmax(-1), 2).to(torch.float64)


@dataclass(frozen=True)
class EMPicture:
    """One EM step drawn as curves over ``thetas`` (each curve has the shape of ``thetas``).

    log_p: log p(x; theta). bound_t: ELBO(theta, q_t) with q_t = p(z | x; theta_t), touching at
    theta_t. bound_next: ELBO(theta, q_{t+1}) after the next E-step, touching at theta_next.
    hard_bound: ELBO(theta, hard q) with q one-hot on the most probable component under theta_t.
    theta_next: the M-step, argmax of bound_t. theta_hard: argmax of hard_bound.
    """

    thetas: torch.Tensor
    log_p: torch.Tensor
    theta_t: float
    theta_next: float
    bound_t: torch.Tensor
    bound_next: torch.Tensor
    hard_bound: torch.Tensor
    theta_hard: float


def em_picture(theta_t: float = THETA_T, x=None, thetas=None) -> EMPicture:
    """The curves of one EM step from theta_t and of the hard-assignment bound (see the module)."""
    x = _x(x)
    thetas = torch.linspace(-1.0, 3.0, 801, dtype=torch.float64) if thetas is None else _theta(thetas)
    q_t = posterior(theta_t, x)
    theta_next = m_step(q_t, x)
    hard = hard_assignments(theta_t, x)
    return EMPicture(thetas, log_marginal(thetas, x), float(theta_t), theta_next, elbo(thetas, q_t, x),
                     elbo(thetas, posterior(theta_next, x), x), elbo(thetas, hard, x), m_step(hard, x))


def _at(pic: EMPicture, curve: torch.Tensor, theta: float) -> float:
    """A curve's value at theta (linear interpolation on the picture's grid)."""
    return float(np.interp(theta, pic.thetas.numpy(), curve.numpy()))


def _ax_and_picture(ax, pic):
    import matplotlib.pyplot as plt  # only the drawing needs matplotlib; the core never imports it

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.2))
    return ax, em_picture() if pic is None else pic


def draw_em_step(ax=None, pic: EMPicture | None = None):
    """One EM step on ``ax`` (a new figure when None): log p(x; theta), the bound touching it at
    theta_t, the M-step to theta_{t+1} (the top of that bound) and the next E-step's bound touching
    at theta_{t+1}. ``pic`` defaults to ``em_picture()``. Returns the axes."""
    ax, pic = _ax_and_picture(ax, pic)
    th = pic.thetas.numpy()
    ax.plot(th, pic.log_p.numpy(), color="k", lw=2.2, label=r"$\log p(x;\theta)$")
    ax.plot(th, pic.bound_t.numpy(), color="C1", lw=1.8, label=r"ELBO$(\theta, q_t)$, $q_t = p(z \mid x;\theta_t)$")
    ax.plot(th, pic.bound_next.numpy(), color="C1", lw=1.2, ls=":", label=r"ELBO$(\theta, q_{t+1})$, the next E-step")
    lp_t, lp_next = _at(pic, pic.log_p, pic.theta_t), _at(pic, pic.log_p, pic.theta_next)
    b_next = _at(pic, pic.bound_t, pic.theta_next)
    ax.plot([pic.theta_t, pic.theta_next], [lp_t, lp_next], "o", color="C2", ms=7, zorder=5)
    ax.plot([pic.theta_next], [b_next], "v", color="C1", ms=8, zorder=5)
    arrow = dict(arrowstyle="->", color="C3", lw=1.5, shrinkA=2, shrinkB=2)
    ax.annotate("", xy=(pic.theta_next, b_next), xytext=(pic.theta_t, lp_t), arrowprops=arrow)
    ax.annotate("", xy=(pic.theta_next, lp_next), xytext=(pic.theta_next, b_next), arrowprops=arrow)
    ax.text((pic.theta_t + pic.theta_next) / 2 + 0.02, (lp_t + b_next) / 2 - 0.03, "M-step", color="C3",
            ha="left", va="top")
    ax.text(pic.theta_next + 0.04, (lp_next + b_next) / 2, "gap\n= KL", color="C3", ha="left", va="center", fontsize=8)
    for value, name in ((pic.theta_t, r"$\theta_t$"), (pic.theta_next, r"$\theta_{t+1}$")):
        ax.axvline(value, color="0.6", lw=0.8, ls="--", zorder=0)
        ax.text(value, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    _finish(ax, pic, "EM: the bound touches at $\\theta_t$, the M-step climbs it")
    return ax


def draw_restricted(ax=None, pic: EMPicture | None = None):
    """The hard-assignment bound on ``ax`` (a new figure when None): strictly below log p(x; theta)
    for every theta, with the exact E-step's bound (touching at theta_t) for comparison and the
    hard bound's top marked. ``pic`` defaults to ``em_picture()``. Returns the axes."""
    ax, pic = _ax_and_picture(ax, pic)
    th = pic.thetas.numpy()
    ax.plot(th, pic.log_p.numpy(), color="k", lw=2.2, label=r"$\log p(x;\theta)$")
    ax.plot(th, pic.bound_t.numpy(), color="C1", lw=1.2, alpha=0.6, label=r"ELBO$(\theta, q_t)$, the exact E-step")
    ax.plot(th, pic.hard_bound.numpy(), color="C0", lw=1.8, ls="--",
            label=r"ELBO$(\theta, q_{\mathrm{hard}})$, one component per point")
    lp_t, hard_t = _at(pic, pic.log_p, pic.theta_t), _at(pic, pic.hard_bound, pic.theta_t)
    ax.annotate("", xy=(pic.theta_t, lp_t), xytext=(pic.theta_t, hard_t),
                arrowprops=dict(arrowstyle="<->", color="C3", lw=1.3, shrinkA=0, shrinkB=0))
    ax.text(pic.theta_t + 0.05, (lp_t + hard_t) / 2, "gap > 0", color="C3", va="center", fontsize=9)
    ax.plot([pic.theta_hard], [_at(pic, pic.hard_bound, pic.theta_hard)], "v", color="C0", ms=8, zorder=5)
    ax.axvline(pic.theta_t, color="0.6", lw=0.8, ls="--", zorder=0)
    ax.text(pic.theta_t, 1.01, r"$\theta_t$", transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    _finish(ax, pic, "a restricted q: its bound never touches")
    return ax


def _finish(ax, pic: EMPicture, title: str):
    top = pic.log_p.max().item()
    ax.set_ylim(top - 1.3, top + 0.2)
    ax.set_xlim(pic.thetas[0].item(), pic.thetas[-1].item())
    ax.set(xlabel=r"$\theta$ (the shift: component means $-\theta$ and $+\theta$)", ylabel="nats per point")
    ax.set_title(title, pad=18)
    ax.legend(fontsize=8, loc="lower center")
    ax.grid(alpha=0.3)
