"""The true posterior p(z | x; theta) of a VAE with a 2-D latent, computed on a grid (notebook 07).

Nothing in a VAE computes p(z | x): the encoder q_phi(z | x) only approximates it. With d = 2
we can evaluate the joint log p(x, z) = log p(z) + log p(x | z; theta) at every point z_g of a
regular n x n grid with spacing h (cell area A = h^2) and normalize it ourselves:

    p(x)          ~= sum_g p(x, z_g) A               (log: a log-sum-exp over the grid + log A)
    p(z_g | x)     = p(x, z_g) / p(x)                (a density; p(z_g | x) A is the mass of cell g)

The log-normalizer is a third estimate of log p(x), next to the ELBO (a bound) and the
importance-weighted K-sample estimate. For a Gaussian q(z) = N(m, diag s^2), expectations under q
become weighted sums over the same grid, with weights w_g = q(z_g) / sum_g' q(z_g'):

    ELBO(q)           ~= sum_g w_g [log p(x, z_g) - log q(z_g)]
    KL(q || p(z | x)) ~= sum_g w_g [log q(z_g) - log p(z_g | x)] = log p(x) - ELBO(q)

For many images at once, ``DecodedGrid`` runs the decoder once on a fixed grid; each image's
log p(x), border mass and posterior mode is then a matrix product (notebook 07, sections 7 and 10).
``regions_of_mass`` splits a posterior's highest-density region into its separate pieces (a posterior
with two modes has two), with the mass, mean and standard deviation of each.

Shapes: x (64,) one binary image; grid axes z1, z2 (n,); fields on the grid (n, n), indexed
[i, j] for the point (z1[i], z2[j]). All log-probabilities in nats per image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .estimators import log_mean_exp
from .objectives import Estimate
from .validation import as_tensor, check_finite, check_positive_int


def _check_model(model) -> None:
    if getattr(model, "latent_dim", None) != 2:
        raise ValueError(f"the grid posterior needs a VAE with a 2-D latent space, got latent_dim="
                         f"{getattr(model, 'latent_dim', None)}; use vae.trained_vae('2d')")


def _check_image(model, x) -> torch.Tensor:
    """One image x (D,) (or (1, D)) as a (1, D) binary float tensor."""
    x = as_tensor(x, "x")
    if x.dim() == 2 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 1:
        raise ValueError(f"x must be ONE image of shape ({model.data_dim},), got shape {tuple(x.shape)}; "
                         "pass x_test[i], not a batch")
    return model.check_x(x)


def _check_gaussian(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """A diagonal Gaussian's mean (2,) and std (2,) as float64, or a clear error."""
    mean = check_finite(as_tensor(mean, "mean"), "mean").reshape(-1).double()
    std = check_finite(as_tensor(std, "std"), "std").reshape(-1).double()
    if mean.numel() != 2 or std.numel() != 2:
        raise ValueError(f"mean and std must each hold 2 numbers (z1, z2), got {mean.numel()} and {std.numel()}")
    if not (std > 0).all():
        raise ValueError(f"std must be strictly positive (a standard deviation, not a log-std: "
                         f"pass log_std.exp()), got {std.tolist()}")
    return mean, std


@dataclass(frozen=True)
class PosteriorGrid:
    """log p(x, z_g) on a regular grid: axes z1, z2 (n,) float64, log_joint (n, n) float64 with
    log_joint[i, j] = log p(x, (z1[i], z2[j])), and the cell area A = h^2."""

    z1: torch.Tensor
    z2: torch.Tensor
    log_joint: torch.Tensor
    cell_area: float

    @property
    def log_px(self) -> float:
        """log p(x) ~= log sum_g p(x, z_g) A (log-sum-exp over the grid, plus log A)."""
        return float(torch.logsumexp(self.log_joint.reshape(-1), 0)) + math.log(self.cell_area)

    @property
    def log_posterior(self) -> torch.Tensor:
        """log p(z_g | x) = log p(x, z_g) - log p(x), a log-density (n, n)."""
        return self.log_joint - self.log_px

    @property
    def cell_mass(self) -> torch.Tensor:
        """p(z_g | x) A, the posterior mass of each cell (n, n); sums to 1."""
        return torch.softmax(self.log_joint.reshape(-1), 0).reshape(self.log_joint.shape)

    @property
    def border_mass(self) -> float:
        """Posterior mass in the outermost ring of cells: tiny when the grid holds all the mass."""
        p = self.cell_mass
        return float(p.sum() - p[1:-1, 1:-1].sum())

    def mean_and_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean (2,) and standard deviations (2,), from the cell masses."""
        p = self.cell_mass
        p1, p2 = p.sum(1), p.sum(0)  # marginals over z1 and z2
        m = torch.stack([(p1 * self.z1).sum(), (p2 * self.z2).sum()])
        v = torch.stack([(p1 * (self.z1 - m[0]) ** 2).sum(), (p2 * (self.z2 - m[1]) ** 2).sum()])
        return m, v.sqrt()

    def mass_outside(self, center, half_width: float) -> float:
        """Posterior mass of the cells outside the square center +- half_width."""
        c = as_tensor(center, "center").double().reshape(-1)
        inside1 = (self.z1 - c[0]).abs() <= half_width
        inside2 = (self.z2 - c[1]).abs() <= half_width
        return float(1 - self.cell_mass[inside1][:, inside2].sum())


@torch.no_grad()
def posterior_grid(model, x, lim: float = 5.0, n: int = 101, center=(0.0, 0.0)) -> PosteriorGrid:
    """log p(x, z) = log p(z) + log p(x | z; theta) at the n x n points of the square
    center +- lim (both ends included, spacing h = 2 lim / (n - 1)), for ONE image x (64,).

    Cost: n^2 decoder evaluations (n = 101: about 0.03 s of CPU).
    """
    _check_model(model)
    x = _check_image(model, x)
    check_positive_int(n, "n")
    if n < 3:
        raise ValueError(f"n must be at least 3 points per axis, got {n}")
    if not (isinstance(lim, (int, float)) and math.isfinite(lim) and lim > 0):
        raise ValueError(f"lim must be a positive number (the half-width of the square), got {lim!r}")
    c = check_finite(as_tensor(center, "center"), "center").double().reshape(-1)
    if c.numel() != 2:
        raise ValueError(f"center must hold 2 numbers (z1, z2), got {c.numel()}")
    z1 = torch.linspace(-lim, lim, n, dtype=torch.float64) + c[0]
    z2 = torch.linspace(-lim, lim, n, dtype=torch.float64) + c[1]
    z = torch.stack(torch.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 1, 2).float()  # (n^2, 1, 2)
    log_joint = model.joint_log_prob(x, z)[:, 0].double().reshape(n, n)
    h = 2 * lim / (n - 1)
    return PosteriorGrid(z1, z2, log_joint, h * h)


class DecodedGrid:
    """The decoder's work on a fixed n x n grid over [-lim, lim]^2, done once for every image: the
    grid does not depend on x, and for a Bernoulli decoder with logits l_g = f_theta(z_g)

        log p(x, z_g) = log p(z_g) + sum_j [x_j log sigmoid(l_gj) + (1 - x_j) log sigmoid(-l_gj)],

    a matrix-vector product per image. ``grid_for(x)`` then equals ``posterior_grid(model, x, lim,
    n)`` (up to float32 round-off) in a fraction of a millisecond instead of n^2 decoder passes."""

    @torch.no_grad()
    def __init__(self, model, lim: float = 5.0, n: int = 61):
        _check_model(model)
        check_positive_int(n, "n")
        self.model, self.lim, self.n = model, float(lim), n
        self.z1 = self.z2 = torch.linspace(-lim, lim, n, dtype=torch.float64)
        z = torch.stack(torch.meshgrid(self.z1, self.z2, indexing="ij"), -1).reshape(-1, 2).float()  # (n^2, 2)
        logits = model.decoder.logits(z)
        self.log_on = torch.nn.functional.logsigmoid(logits)  # (n^2, D): log p(x_j = 1 | z_g)
        self.log_off = torch.nn.functional.logsigmoid(-logits)  # log p(x_j = 0 | z_g)
        self.log_prior = model.prior.log_prob(z)  # (n^2,)
        h = 2 * lim / (n - 1)
        self.cell_area = h * h

    @torch.no_grad()
    def grid_for(self, x) -> PosteriorGrid:
        """log p(x, z_g) on this grid for ONE image x (64,)."""
        x = _check_image(self.model, x)[0]
        log_joint = self.log_prior + self.log_on @ x + self.log_off @ (1 - x)
        return PosteriorGrid(self.z1, self.z2, log_joint.double().reshape(self.n, self.n), self.cell_area)

    @torch.no_grad()
    def _each_image(self, x, per_chunk, chunk_size: int = 64) -> torch.Tensor:
        """per_chunk(log_joint (n^2, B) float64) for the images of x (N, D), B at a time, concatenated."""
        x = self.model.check_x(x)
        out = []
        for xb in x.split(chunk_size):
            log_joint = (self.log_prior[:, None] + self.log_on @ xb.T + self.log_off @ (1 - xb).T).double()
            out.append(per_chunk(log_joint))
        return torch.cat(out)

    def log_px(self, x) -> torch.Tensor:
        """log p(x) ~= log sum_g p(x, z_g) A for every image of x (N, D) at once: (N,) float64, equal to
        ``grid_for(x[i]).log_px`` for each i. Check ``border_mass`` on a few images: the square must hold
        every posterior."""
        return self._each_image(x, lambda lj: torch.logsumexp(lj, 0) + math.log(self.cell_area))

    def border_mass(self, x) -> torch.Tensor:
        """Posterior mass in the outermost ring of cells, for every image of x (N, D): (N,) float64."""
        ring = torch.ones(self.n, self.n, dtype=torch.bool)
        ring[1:-1, 1:-1] = False
        return self._each_image(x, lambda lj: torch.softmax(lj, 0)[ring.reshape(-1)].sum(0))

    def modes(self, x) -> torch.Tensor:
        """The grid point of highest posterior density p(z | x), for every image of x (N, D): (N, 2)."""
        z = torch.stack(torch.meshgrid(self.z1, self.z2, indexing="ij"), -1).reshape(-1, 2)
        return self._each_image(x, lambda lj: z[lj.argmax(0)])


@torch.no_grad()
def zoomed_posterior_grid(model, x, covering=(), lim: float = 5.0, n_coarse: int = 61, n: int = 81,
                          n_sds: float = 6.0, left_out: float = 1e-7,
                          decoded: DecodedGrid | None = None) -> tuple[PosteriorGrid, PosteriorGrid]:
    """Two grids for one image x (64,): a coarse n_coarse x n_coarse one over [-lim, lim]^2 finds
    where p(z | x) lives (the smallest set of its cells that leaves out at most ``left_out`` of
    the mass, however many modes it has), then a fine n x n square grid covers those cells (plus
    one coarse cell all round) and each Gaussian (mean (2,), std (2,)) in ``covering`` (the q's to
    compare with p(z | x)) out to ``n_sds`` standard deviations. Returns (coarse, fine); use the
    fine one, and check that coarse.border_mass and fine.border_mass are negligible. ``decoded``:
    the coarse grid's decoder outputs computed once for many images (``DecodedGrid``; its lim and n
    are then the coarse grid's).
    """
    if decoded is not None:
        coarse, lim, n_coarse = decoded.grid_for(x), decoded.lim, decoded.n
    else:
        coarse = posterior_grid(model, x, lim=lim, n=n_coarse)
    h = 2 * lim / (n_coarse - 1)
    p = coarse.cell_mass
    kept = p >= p.reshape(-1).sort().values[int((p.reshape(-1).sort().values.cumsum(0) <= left_out).sum())]
    rows, cols = kept.any(1), kept.any(0)
    lo = torch.stack([coarse.z1[rows].min(), coarse.z2[cols].min()]) - h
    hi = torch.stack([coarse.z1[rows].max(), coarse.z2[cols].max()]) + h
    for mean, std in covering:
        mean, std = _check_gaussian(mean, std)
        lo, hi = torch.minimum(lo, mean - n_sds * std), torch.maximum(hi, mean + n_sds * std)
    half = float((hi - lo).max()) / 2
    return coarse, posterior_grid(model, x, lim=half, n=n, center=(lo + hi) / 2)


def regions_of_mass(grid: PosteriorGrid, mass: float = 0.99) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
    """The separate regions where p(z | x) puts its mass: the smallest set of grid cells holding ``mass``
    of it (a highest-density region), split into connected pieces (cells that share a side). Returns
    [(mass of the piece, mean (2,), std (2,))], the heaviest first, mean and std those of p(z | x)
    restricted to the piece: one entry for a posterior with one region, two or more when it has
    separate modes."""
    if not 0 < mass < 1:
        raise ValueError(f"mass must lie in (0, 1), got {mass!r}")
    p = grid.cell_mass
    sorted_p = p.reshape(-1).sort(descending=True).values
    threshold = sorted_p[min(int((sorted_p.cumsum(0) < mass).sum()), len(sorted_p) - 1)]
    inside = (p >= threshold).tolist()
    n1, n2 = p.shape
    seen = [[False] * n2 for _ in range(n1)]
    z = torch.stack(torch.meshgrid(grid.z1, grid.z2, indexing="ij"), -1)  # (n, n, 2)
    regions = []
    for i0 in range(n1):
        for j0 in range(n2):
            if not inside[i0][j0] or seen[i0][j0]:
                continue
            stack, cells = [(i0, j0)], []
            seen[i0][j0] = True
            while stack:  # flood fill over side neighbours
                i, j = stack.pop()
                cells.append((i, j))
                for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                    if 0 <= a < n1 and 0 <= b < n2 and inside[a][b] and not seen[a][b]:
                        seen[a][b] = True
                        stack.append((a, b))
            rows, cols = torch.tensor(cells).T
            w = p[rows, cols] / p[rows, cols].sum()
            centre = (w[:, None] * z[rows, cols]).sum(0)
            spread = (w[:, None] * (z[rows, cols] - centre) ** 2).sum(0).sqrt()
            regions.append((float(p[rows, cols].sum()), centre, spread))
    return sorted(regions, key=lambda r: -r[0])


def _q_weights(grid: PosteriorGrid, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """log q(z_g) (n, n) for q = N(mean, diag std^2), and the normalized weights w_g = q(z_g) / sum q;
    an error when q has mass off the grid."""
    mean, std = _check_gaussian(mean, std)
    log_q = q_log_density(grid, mean, std)
    mass = float(torch.logsumexp(log_q.reshape(-1), 0).exp()) * grid.cell_area
    if abs(mass - 1) > 1e-3:
        h = math.sqrt(grid.cell_area)
        raise ValueError(f"q's density sums to {mass:.4f} over the grid, not 1: the grid does not cover q, or its "
                         f"spacing ({h:.3g}) is too coarse for q's std {std.tolist()}; use a grid that covers and "
                         "resolves q, e.g. zoomed_posterior_grid(model, x, covering=[(mean, std)])")
    w = torch.softmax(log_q.reshape(-1), 0).reshape(log_q.shape)
    return log_q, w


def elbo_on_grid(grid: PosteriorGrid, mean, std) -> float:
    """ELBO(q) = E_q[log p(x, z) - log q(z)] for q = N(mean, diag std^2) (mean, std (2,)), by
    quadrature: sum_g w_g [log p(x, z_g) - log q(z_g)], w_g = q(z_g) / sum_g' q(z_g')."""
    log_q, w = _q_weights(grid, mean, std)
    return float((w * (grid.log_joint - log_q)).sum())


def kl_on_grid(grid: PosteriorGrid, mean, std) -> float:
    """KL(q || p(z | x)) = E_q[log q(z) - log p(z | x)] for q = N(mean, diag std^2) (mean, std (2,)),
    by quadrature: sum_g w_g [log q(z_g) - log p(z_g | x)]. Equals grid.log_px - elbo_on_grid."""
    log_q, w = _q_weights(grid, mean, std)
    return float((w * (log_q - grid.log_posterior)).sum())


def log_mean_exp_with_se(log_w) -> Estimate:
    """log (1/K) sum_k w_k from log-weights (K,), with the standard error of that log (delta method):
    se = std_k(w_k / mean w) / sqrt(K). For an importance-weighted log p(x) (K draws from q)."""
    log_w = check_finite(as_tensor(log_w, "log_w"), "log_w").double()
    if log_w.dim() != 1 or log_w.numel() < 2:
        raise ValueError(f"log_w must be a vector of at least 2 log-weights (K,), got shape {tuple(log_w.shape)}")
    k = log_w.numel()
    value = log_mean_exp(log_w, 0)
    ratio = (log_w - value).exp()  # w_k / mean(w)
    return Estimate(value, ratio.std() / math.sqrt(k))


@torch.no_grad()
def importance_log_px(model, x, n_samples: int = 5000, seed: int = 0) -> Estimate:
    """``model.log_marginal(x, n_samples, seed=seed)`` for ONE image x (64,), the same draws
    (z_k ~ q_phi(z | x), k = 1..K, in one chunk), with its standard error (``log_mean_exp_with_se``)."""
    _check_model(model)
    x = _check_image(model, x)
    check_positive_int(n_samples, "n_samples")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q = model.encoder(x)
        z = q.sample((n_samples,))  # (K, 1, 2), as log_marginal draws them with chunk_size = K
    return log_mean_exp_with_se((model.joint_log_prob(x, z) - q.log_prob(z))[:, 0])


def mass_levels(log_density: torch.Tensor, masses=(0.5, 0.9, 0.99)) -> list[float]:
    """Density thresholds t (increasing) such that the cells with log-density above log t hold
    each of ``masses`` (a highest-density region), for contour lines that mean the same thing on
    every distribution: log_density (n, n) on a regular grid."""
    p = torch.softmax(log_density.reshape(-1).double(), 0)
    order = p.sort(descending=True).values
    cum = order.cumsum(0)
    scale = float(torch.logsumexp(log_density.reshape(-1).double(), 0).exp()) / float(p.sum())
    levels = [float(order[min(int((cum < m).sum()), len(order) - 1)]) * scale for m in masses]
    return sorted(levels)


def q_log_density(grid: PosteriorGrid, mean, std) -> torch.Tensor:
    """log N(z_g; mean, diag std^2) on the grid (n, n); mean, std (2,)."""
    mean, std = _check_gaussian(mean, std)
    return (torch.distributions.Normal(mean[0], std[0]).log_prob(grid.z1)[:, None]
            + torch.distributions.Normal(mean[1], std[1]).log_prob(grid.z2)[None, :])


def shown_window(grid: PosteriorGrid, qs=()) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo (2,), hi (2,)): the square to show, which holds p(z | x)'s 99.9% region (its smallest set of
    cells with that mass) and each q = (mean (2,), std (2,)) out to 3.5 standard deviations, plus 10%."""
    p = grid.cell_mass
    sorted_p = p.reshape(-1).sort().values
    kept = p >= sorted_p[int((sorted_p.cumsum(0) <= 1e-3).sum())]
    lo = torch.stack([grid.z1[kept.any(1)].min(), grid.z2[kept.any(0)].min()])
    hi = torch.stack([grid.z1[kept.any(1)].max(), grid.z2[kept.any(0)].max()])
    for mean, std in qs:
        m, s = _check_gaussian(mean, std)
        lo, hi = torch.minimum(lo, m - 3.5 * s), torch.maximum(hi, m + 3.5 * s)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.1
    return centre - half, centre + half


def draw_posterior_panels(axes, grid: PosteriorGrid, x, qs: dict, masses=(0.5, 0.9, 0.99)) -> None:
    """Draw into ``axes`` (1 + 1 + len(qs) axes): the digit x, p(z | x) on the grid (filled
    contours of the regions holding ``masses`` of its probability), then for each q in ``qs``
    (title -> (mean (2,), std (2,))) its own regions of the same masses (ellipses: q is Gaussian)
    over a faint p(z | x), titled with KL(q || p(z | x)) on the grid."""
    import numpy as np
    from matplotlib.patches import Ellipse

    ax_x, ax_p, *ax_qs = axes
    ax_x.imshow(np.asarray(x, dtype=float).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax_x.set_title("the test digit x", fontsize=9)
    ax_x.axis("off")
    z1, z2 = grid.z1.numpy(), grid.z2.numpy()
    post = grid.log_posterior.exp().numpy().T  # contour wants [row = z2, column = z1]
    levels = mass_levels(grid.log_posterior, masses)
    extent = [float(z1[0]), float(z1[-1]), float(z2[0]), float(z2[-1])]
    for ax in [ax_p, *ax_qs]:
        ax.imshow(post, origin="lower", extent=extent, cmap="Greys", aspect="equal",
                  alpha=1.0 if ax is ax_p else 0.55, interpolation="bilinear")
        ax.contour(z1, z2, post, levels=levels, colors="k", linewidths=0.8)
        ax.set(xlabel="$z_1$", xlim=extent[:2], ylim=extent[2:])
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=5)  # few ticks: cheaper to draw, and enough to read z off
    lo, hi = shown_window(grid, list(qs.values()))
    for ax in [ax_p, *ax_qs]:
        ax.set(xlim=(float(lo[0]), float(hi[0])), ylim=(float(lo[1]), float(hi[1])))
    ax_p.set_ylabel("$z_2$")
    ax_p.set_title(f"true posterior p(z|x) on the grid\nlog p(x) = {grid.log_px:.2f}", fontsize=9)
    for ax, (title, (mean, std)), colour in zip(ax_qs, qs.items(), ["C1", "C2", "C3", "C4"]):
        m, s = _check_gaussian(mean, std)
        for mass in masses:  # a Gaussian's region of mass m: the ellipse of radius sqrt(-2 ln(1 - m)) sds
            r = math.sqrt(-2 * math.log(1 - mass))
            ax.add_patch(Ellipse((float(m[0]), float(m[1])), 2 * r * float(s[0]), 2 * r * float(s[1]),
                                 fill=False, edgecolor=colour, linewidth=1.5))
        kl = kl_on_grid(grid, mean, std)
        ax.set_title(f"{title} (colour) over p(z|x) (grey)\nKL(q || p(z|x)) = {kl:.2f} nats", fontsize=9)
