"""Which way the KL points: one Gaussian q fitted to a two-mode posterior p, both ways (notebook 04).

The target is a 1-D mixture, a stand-in for a posterior p(z | x) with two modes,

    p(z) = sum_c w_c N(z; m_c, s_c^2),

and the family is one Gaussian q(z) = N(z; mu, sigma^2). There are two ways to ask for "the q closest to p":

* **reverse KL**, KL(q || p) = E_q[log q(z) - log p(z)]. This is the direction of the ELBO:
  log p(x) = ELBO(q) + KL(q || p(z | x)), so maximizing the ELBO over q minimizes KL(q || p(z | x)).
  Where q > 0 and p is close to 0, log q - log p is huge, so q keeps out of the region between the
  modes ("zero-forcing"): it sits on one mode and is **mode-seeking**. With well-separated modes, q on
  mode c costs about -log w_c, so the best fit sits on the heaviest mode; the other mode is a local optimum.
  There is no closed form: ``fit_reverse`` minimizes it over (mu, log sigma) with L-BFGS, from several starts.
* **forward KL**, KL(p || q) = E_p[log p(z)] - E_p[log q(z)]. Only the second term depends on q, and for a
  Gaussian q, -E_p[log q] = log sigma + (Var_p[z] + (E_p[z] - mu)^2) / (2 sigma^2) + const, minimized at
  mu = E_p[z] and sigma^2 = Var_p[z]: **moment matching**, in closed form. Where p > 0 and q is close to 0,
  -log q is huge, so q spreads over both modes ("zero-avoiding", **mass-covering**), and its peak can sit
  between the modes, where p has almost no mass. (Bishop 2006, section 10.1.2 and figure 10.3; Minka 2005.)

Every integral is a quadrature on a fine uniform grid (the trapezoid rule, float64): with z from -12 to 12
in steps of 0.001 the error of a moment or a KL is far below 1e-9 for the targets used here. The grid's
moments are the forward fit; the mixture's exact moments, sum_c w_c m_c and sum_c w_c (s_c^2 + m_c^2) - mean^2,
check them (``Mixture1D.moments``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .validation import check_positive_int

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class Mixture1D:
    """p(z) = sum_c weights[c] N(z; means[c], stds[c]^2): the target (a two-mode posterior when C = 2)."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self):
        if not (len(self.weights) == len(self.means) == len(self.stds) >= 1):
            raise ValueError("weights, means and stds must have one entry per component")
        if abs(sum(self.weights) - 1) > 1e-9 or min(self.weights) <= 0 or min(self.stds) <= 0:
            raise ValueError(f"weights must be positive and sum to 1, stds positive; got {self.weights}, {self.stds}")

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_c [log w_c + log N(z; m_c, s_c^2)], elementwise."""
        z = torch.as_tensor(z, dtype=torch.float64)[..., None]
        w, m, s = (torch.tensor(v, dtype=torch.float64) for v in (self.weights, self.means, self.stds))
        return torch.logsumexp(w.log() - s.log() - LOG_SQRT_2PI - 0.5 * ((z - m) / s) ** 2, dim=-1)

    def moments(self) -> tuple[float, float]:
        """(mean, variance) of p in closed form: sum_c w_c m_c and sum_c w_c (s_c^2 + m_c^2) - mean^2."""
        mean = sum(w * m for w, m in zip(self.weights, self.means))
        second = sum(w * (s * s + m * m) for w, m, s in zip(self.weights, self.means, self.stds))
        return mean, second - mean * mean

    def modes(self, z: torch.Tensor | None = None) -> list[float]:
        """The local maxima of p on the grid ``z`` (the default grid): where the posterior has its modes."""
        z = grid() if z is None else z
        lp = self.log_prob(z)
        inner = (lp[1:-1] > lp[:-2]) & (lp[1:-1] >= lp[2:])
        return z[1:-1][inner].tolist()


def grid(lo: float = -12.0, hi: float = 12.0, n: int = 24_001) -> torch.Tensor:
    """The quadrature grid: ``n`` equally spaced points from ``lo`` to ``hi`` (float64)."""
    check_positive_int(n, "n")
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def gaussian_log_prob(z: torch.Tensor, mean, std) -> torch.Tensor:
    """log N(z; mean, std^2), elementwise (mean and std may be tensors that carry gradients)."""
    return -torch.log(torch.as_tensor(std, dtype=torch.float64)) - LOG_SQRT_2PI - 0.5 * ((z - mean) / std) ** 2


def kl_on_grid(log_a: torch.Tensor, log_b: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """KL(a || b) = integral of a(z) (log a(z) - log b(z)) dz, by the trapezoid rule on the grid ``z``,
    from the two log densities on the grid. Points where a(z) underflows to 0 contribute 0 (a log a -> 0)."""
    a = log_a.exp()
    integrand = torch.where(a > 0, a * (log_a - log_b), torch.zeros_like(a))
    return torch.trapezoid(integrand, z)


def reverse_kl(p: Mixture1D, mean, std, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q || p) with q = N(mean, std^2): the ELBO's direction (mode-seeking)."""
    z = grid() if z is None else z
    return kl_on_grid(gaussian_log_prob(z, mean, std), p.log_prob(z), z)


def forward_kl(p: Mixture1D, mean, std, z: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p || q) with q = N(mean, std^2): the mass-covering direction (minimized by moment matching)."""
    z = grid() if z is None else z
    return kl_on_grid(p.log_prob(z), gaussian_log_prob(z, mean, std), z)


def fit_forward(p: Mixture1D, z: torch.Tensor | None = None) -> tuple[float, float]:
    """argmin over Gaussians q of KL(p || q), in closed form: (mean, std) = p's mean and standard deviation,
    the moments computed by quadrature on the grid (mean = int z p dz, var = int (z - mean)^2 p dz)."""
    z = grid() if z is None else z
    density = p.log_prob(z).exp()
    mass = torch.trapezoid(density, z)
    mean = torch.trapezoid(z * density, z) / mass
    var = torch.trapezoid((z - mean) ** 2 * density, z) / mass
    return mean.item(), var.sqrt().item()


def _minimize_reverse(p: Mixture1D, z: torch.Tensor, mean0: float, std0: float) -> tuple[float, float, float]:
    mean = torch.tensor(float(mean0), dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor(math.log(std0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([mean, log_std], lr=1.0, max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = reverse_kl(p, mean, log_std.exp(), z)
        loss.backward()
        return loss

    for _ in range(2):  # a second round restarts L-BFGS's memory where the first one stopped
        opt.step(closure)
    with torch.no_grad():
        return mean.item(), log_std.exp().item(), reverse_kl(p, mean, log_std.exp(), z).item()


def fit_reverse(p: Mixture1D, z: torch.Tensor | None = None, starts=None) -> tuple[float, float]:
    """argmin over Gaussians q of KL(q || p): no closed form, so L-BFGS over (mean, log std) on the
    quadrature grid, from each start (default: every component's (mean, std), and p's moments), keeping
    the best. With separated modes each component's start ends on its own local optimum."""
    return min(reverse_local_optima(p, z, starts), key=lambda t: t[2])[:2]


def reverse_local_optima(p: Mixture1D, z: torch.Tensor | None = None, starts=None) -> list[tuple[float, float, float]]:
    """[(mean, std, KL(q || p))] reached by L-BFGS from each start (see ``fit_reverse``)."""
    z = grid() if z is None else z
    if starts is None:
        mean, var = p.moments()
        starts = list(zip(p.means, p.stds)) + [(mean, math.sqrt(var))]
    return [_minimize_reverse(p, z, m0, s0) for m0, s0 in starts]


@dataclass(frozen=True)
class Fits:
    """Both fits of one target, with both divergences of each: kl[fit] = (KL(q || p), KL(p || q))."""

    p: Mixture1D
    reverse: tuple[float, float]  # (mean, std) minimizing KL(q || p)
    forward: tuple[float, float]  # (mean, std) minimizing KL(p || q): p's moments
    kl: dict[str, tuple[float, float]]


def fit_both(p: Mixture1D, z: torch.Tensor | None = None) -> Fits:
    """The reverse (mode-seeking) and forward (moment-matching) Gaussian fits of ``p`` and the two KLs of each."""
    z = grid() if z is None else z
    reverse, forward = fit_reverse(p, z), fit_forward(p, z)
    kl = {name: (reverse_kl(p, *fit, z).item(), forward_kl(p, *fit, z).item())
          for name, fit in (("reverse", reverse), ("forward", forward))}
    return Fits(p, reverse, forward, kl)


def draw(ax, fits: Fits, lo: float = -6.0, hi: float = 6.0):
    """The target p (grey, filled) and the two Gaussian fits, each labelled with its two KLs, into ``ax``."""
    import matplotlib  # noqa: F401  (matplotlib is needed only to draw)

    z = torch.linspace(lo, hi, 1201, dtype=torch.float64)
    ax.fill_between(z.numpy(), fits.p.log_prob(z).exp().numpy(), color="0.8", label="p(z | x): two modes")
    for name, (mean, std), colour, how in (("reverse", fits.reverse, "C3", "min KL(q || p), the ELBO's"),
                                           ("forward", fits.forward, "C0", "min KL(p || q)")):
        rev, fwd = fits.kl[name]
        ax.plot(z.numpy(), gaussian_log_prob(z, mean, std).exp().numpy(), color=colour, lw=2,
                label=f"q = N({mean:.2f}, {std:.2f}^2): {how}\n   KL(q || p) = {rev:.2f}, KL(p || q) = {fwd:.2f}")
        ax.axvline(mean, color=colour, ls=":", lw=1)
    ax.set(xlabel="z", ylabel="density", xlim=(lo, hi))
    ax.legend(fontsize=8, loc="upper right")
    return ax
