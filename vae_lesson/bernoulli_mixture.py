"""A mixture of Bernoullis for binary images, and what it can say about a half-hidden image.

    c ~ Categorical(weights)                        weights (C,)
    x | c ~ prod_j Bernoulli(x_j; probs[c, j])      probs (C, P), one "prototype" image per c

The component is written c, not z: in notebook 04 z is the hidden top half of an image (slide 11).
Everything is exact because c takes only C values (Lecture 6, 0:00-2:30), and EM is the one
every ``FiniteMixture`` shares (``em_step``, ``fit_em``); only the M-step is new here.

Partial observation (slide 11): hide some pixels of an image and ask what they were.
``observed`` is a boolean mask over the P pixels, of shape (P,) (the same pixels for every
image) or (N, P) (per image), True where a pixel is seen. With o the observed and m the
missing pixels of one image, the pixels are independent given c, so

    log p(x_o)        = logsumexp_c [log pi_c + sum_{j in o} log Bern(x_j; p_cj)]
    p(c | x_o)        = pi_c prod_{j in o} Bern(x_j; p_cj) / p(x_o)                (Bayes)
    p(x_m | x_o)      = sum_c p(c | x_o) prod_{j in m} Bern(x_j; p_cj)
    p(x_j = 1 | x_o)  = sum_c p(c | x_o) p_cj                                      (j in m)

are all sums over c, and sampling x_m ~ p(x_m | x_o) is ancestral: c ~ p(c | x_o), then every
missing pixel independently ~ Bern(p_cj). Values of x at unobserved pixels are ignored (they
may be anything, NaN included) except in ``log_prob_missing``, which scores them.
"""
from __future__ import annotations

import math
import numbers

import torch

from .data import IMAGE_SHAPE, N_PIXELS
from .models import FiniteMixture, fit_em
from .validation import as_tensor, check_binary, check_finite, check_last_dim, check_ndim, check_positive_int

__all__ = ["BernoulliMixture", "observed_bottom_half", "fit_bernoulli_mixture"]

WEIGHT_SUM_TOL = 1e-4
WEIGHT_FLOOR = 1e-12  # added to every N_c in the M-step, so no weight is exactly 0


def observed_bottom_half() -> torch.Tensor:
    """(64,) bool mask of an 8x8 image flattened row by row: True (observed) on the bottom half,
    rows 4-7 (pixel indices 32..63), False (hidden) on the top half, rows 0-3 (indices 0..31).

    This is the lecture's slide 11: the top half of the image is missing and plays the role of
    the latent variable (z = x_top), the bottom half is what we see (x = x_bottom). Use it as
    the ``observed`` argument of the partial-observation methods of ``BernoulliMixture``.
    """
    rows = IMAGE_SHAPE[0]
    mask = torch.zeros(IMAGE_SHAPE, dtype=torch.bool)
    mask[rows // 2:, :] = True
    return mask.reshape(N_PIXELS)


def _check_binary(x, name: str, dim: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """x as a finite (N, P) tensor with every value 0 or 1 (P = ``dim`` when given)."""
    x = check_finite(as_tensor(x, name), name)
    shape = f"(N, {dim})" if dim is not None else "(N, P)"
    check_ndim(x, name, 2, f"{shape}: a batch of flattened binary images; use x[None] for one image")
    if dim is not None:
        check_last_dim(x, name, dim, "the number of pixels P of probs")
    check_binary(x, name)
    return x if dtype is None else x.to(dtype)


class BernoulliMixture(FiniteMixture):
    """Mixture of Bernoullis: c ~ Categorical(weights), x | c ~ prod_j Bernoulli(probs[c, j]).

    weights (C,): non-negative, summing to 1.
    probs (C, P): the probability that pixel j is on in component c, strictly inside (0, 1) so
    that every binary image has p(x) > 0 (EM's smoothing, ``m_step``'s alpha > 0, keeps them there).
    Both are stored in their common floating dtype (float32 unless float64 is given).
    """

    def __init__(self, weights, probs):
        weights = check_finite(as_tensor(weights, "weights"), "weights")
        probs = check_finite(as_tensor(probs, "probs"), "probs")
        check_ndim(weights, "weights", 1, "(C,) mixture weights")
        check_ndim(probs, "probs", 2, "(C, P): one pixel-probability image per component")
        dtype = torch.promote_types(weights.dtype, probs.dtype)
        weights, probs = weights.to(dtype), probs.to(dtype)
        if weights.shape[0] != probs.shape[0]:
            raise ValueError(
                f"mismatched sizes: weights {tuple(weights.shape)}, probs {tuple(probs.shape)}; "
                "expected (C,) and (C, P) with the same number of components C"
            )
        if probs.shape[1] == 0:
            raise ValueError(f"probs must have at least one pixel, got shape {tuple(probs.shape)}")
        if (weights < 0).any() or abs(weights.sum().item() - 1) > WEIGHT_SUM_TOL:
            raise ValueError(
                f"weights must be non-negative and sum to 1, got {weights.tolist()} (sum {weights.sum().item():.6g})"
            )
        if ((probs <= 0) | (probs >= 1)).any():
            raise ValueError(
                "probs must lie strictly between 0 and 1 (a pixel probability of exactly 0 or 1 gives "
                "log p(x) = -inf to an image that disagrees; EM's smoothing alpha > 0 keeps probs inside), "
                f"got values in [{probs.min().item():.4g}, {probs.max().item():.4g}]"
            )
        self.weights, self.probs = weights, probs

    @property
    def dim(self) -> int:
        """P, the number of pixels."""
        return self.probs.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.probs.dtype

    def __repr__(self) -> str:
        return f"BernoulliMixture(C={self.n_components}, P={self.dim}, dtype={self.dtype})"

    def _check_x(self, x) -> torch.Tensor:
        return _check_binary(x, "x", self.dim, self.dtype)

    # --- the full model ---------------------------------------------------------------------

    def _log_probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, P) log p_cj and log(1 - p_cj) (log1p, accurate for small p_cj)."""
        return self.probs.log(), torch.log1p(-self.probs)

    def _masked_log_lik(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, C): sum_{j: mask_nj} [x_nj log p_cj + (1 - x_nj) log(1 - p_cj)], by two matmuls.
        x (N, P) with finite values at the masked pixels; mask (N, P) bool."""
        log_p, log_q = self._log_probs()
        on = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
        off = torch.where(mask, 1 - x, torch.zeros((), dtype=x.dtype))
        return on @ log_p.T + off @ log_q.T

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C): log p(x_n | c) = sum_j x_nj log p_cj + (1 - x_nj) log(1 - p_cj), x (N, P) binary."""
        x = self._check_x(x)
        log_p, log_q = self._log_probs()
        return x @ log_p.T + (1 - x) @ log_q.T

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: c ~ Categorical(weights), then x_j ~ Bernoulli(probs[c, j])
        independently. Returns x (n, P) in the model dtype with values in {0, 1}, and the components c (n,) int64."""
        check_positive_int(n, "n")
        c = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = torch.rand(n, self.dim, generator=generator, dtype=self.dtype)
        return (u < self.probs[c]).to(self.dtype), c

    # --- EM ---------------------------------------------------------------------------------

    @classmethod
    def m_step(cls, x, resp, alpha: float = 1.0) -> "BernoulliMixture":
        """The M-step, with N_c = sum_n r_nc (resp (N, C), x (N, P) binary):

            weights_c = N_c / N           (N = sum_c N_c, the number of images)
            probs_cj  = (sum_n r_nc x_nj + alpha) / (N_c + 2 alpha)

        alpha = 0 is maximum likelihood (the responsibility-weighted pixel means), which can set a
        pixel probability to exactly 0 or 1. alpha > 0 is Laplace smoothing: alpha imaginary "on"
        and alpha "off" pixels per component, the MAP estimate under a Beta(alpha + 1, alpha + 1)
        prior on each p_cj. It keeps every p_cj inside [alpha / (N_c + 2 alpha), 1 - that], so EM
        then increases the penalized objective sum_n log p(x_n) + alpha sum_kj log[p_cj (1 - p_cj)]
        at every step (the MAP objective: log Beta(p; alpha + 1, alpha + 1) = alpha log[p (1 - p)] + const).
        The plain log-likelihood can then dip slightly: on the binarized digits with alpha = 1
        (seed 0, 300 steps) it rose at every step for C = 10 and 20, but with C = 50 it fell by up
        to ~0.003 nats per image per step from step ~33 on, as small clusters are pulled to 0.5.

        N_c gets a floor of 1e-12 (as in ``GaussianMixture.m_step``): in float32 a responsibility
        can underflow to ~1e-44, N_c / N to exactly 0, and log 0 = -inf would make the ELBO in
        ``em_step``'s report -inf. The floor changes no weight above ~1e-10.

        ``FiniteMixture.em_step`` calls ``type(model).m_step(x, q)``, so EM uses the default alpha.
        """
        x = _check_binary(x, "x")
        resp = check_finite(as_tensor(resp, "resp"), "resp")
        check_ndim(resp, "resp", 2, "(N, C): responsibilities, one row per data point")
        if resp.shape[0] != x.shape[0]:
            raise ValueError(
                f"resp must have one row per data point: x has {x.shape[0]} rows, resp has shape {tuple(resp.shape)}"
            )
        if (resp < 0).any():
            raise ValueError(f"resp must be non-negative, got minimum {resp.min().item():.4g}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < math.inf:
            raise ValueError(
                f"alpha must be a positive number (the smoothing that keeps probs inside (0, 1)), got {alpha!r}"
            )
        dtype = torch.promote_types(x.dtype, resp.dtype)
        x, resp = x.to(dtype), resp.to(dtype)
        nk = resp.sum(0) + WEIGHT_FLOOR  # (C,)
        weights = nk / nk.sum()
        alpha = float(alpha)
        probs = (resp.T @ x + alpha) / (nk[:, None] + 2 * alpha)
        return cls(weights, probs)

    @classmethod
    def initialize(cls, x, n_components: int, generator: torch.Generator | None = None) -> "BernoulliMixture":
        """A starting point for EM: uniform weights 1/C, and for each c a distinct random image x_(c):

            probs_c = clip(0.5 x_(c) + 0.25 + u_c, 0.05, 0.95),   u_c ~ Uniform(-0.05, 0.05)^P

        i.e. about 0.75 where the image is on and 0.25 where it is off: a blurred copy of a data
        point, so components start in different places without committing to any pixel. The noise
        breaks ties between identical images. x (N, P) binary; returns probs (C, P) in x's dtype.
        """
        x = _check_binary(x, "x")
        check_positive_int(n_components, "n_components")
        if n_components > x.shape[0]:
            raise ValueError(f"n_components ({n_components}) cannot exceed the number of images ({x.shape[0]})")
        idx = torch.randperm(x.shape[0], generator=generator)[:n_components]
        noise = 0.1 * torch.rand(n_components, x.shape[1], generator=generator, dtype=x.dtype) - 0.05
        probs = (0.5 * x[idx] + 0.25 + noise).clamp(0.05, 0.95)
        return cls(torch.full((n_components,), 1.0 / n_components, dtype=x.dtype), probs)

    # --- partial observation (slide 11) -------------------------------------------------------

    def _check_observed(self, x, observed, complete: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, mask), both (N, P): x in the model dtype, mask bool. With ``complete`` every value
        of x must be 0 or 1; otherwise only the observed ones (the rest are set to 0)."""
        if complete:
            x = self._check_x(x)
        else:
            x = as_tensor(x, "x")
            check_ndim(x, "x", 2, f"(N, {self.dim}): a batch of flattened binary images; use x[None] for one image")
            check_last_dim(x, "x", self.dim, "the number of pixels P of probs")
            x = x.to(self.dtype)
        try:
            mask = torch.as_tensor(observed)
        except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
            raise TypeError(f"observed must be a boolean mask, got {type(observed).__name__}") from exc
        if mask.dtype != torch.bool:
            raise ValueError(
                f"observed must be a boolean mask (True = pixel observed), got dtype {mask.dtype}; "
                "use e.g. observed.bool() or a comparison such as idx >= 32"
            )
        n, p = x.shape
        if mask.shape == (p,):
            mask = mask.expand(n, p)
        elif mask.shape != (n, p):
            raise ValueError(
                f"observed must have shape ({p},) (the same pixels for every image) or ({n}, {p}) "
                f"(one mask per image of x), got {tuple(mask.shape)}"
            )
        if not complete:
            seen = x[mask]
            if not torch.isfinite(seen).all():
                raise ValueError(
                    f"x contains {(~torch.isfinite(seen)).sum().item()} NaN or infinite value(s) at observed "
                    "pixels; expected 0 or 1 there (unobserved pixels may hold anything)"
                )
            check_binary(seen, "x (at observed pixels)")
            x = torch.where(mask, x, torch.zeros((), dtype=x.dtype))
        return x, mask

    def _joint_observed(self, x, observed, complete: bool = False):
        """(log p(x_o, c) (N, C), x (N, P), mask (N, P))."""
        x, mask = self._check_observed(x, observed, complete)
        return self.weights.log() + self._masked_log_lik(x, mask), x, mask

    def log_marginal_observed(self, x, observed) -> torch.Tensor:
        """(N,): log p(x_o) = logsumexp_c [log pi_c + sum_{j observed} log Bern(x_j; p_cj)].

        x (N, P), observed (P,) or (N, P) bool. The missing pixels are summed out, which for a
        product of Bernoullis just drops their factors. All observed: log p(x); none observed: 0.
        """
        joint, _, _ = self._joint_observed(x, observed)
        return torch.logsumexp(joint, dim=-1)

    def cluster_posterior_observed(self, x, observed) -> torch.Tensor:
        """(N, C): p(c | x_o) = pi_c p(x_o | c) / sum_l pi_l p(x_o | l) (Bayes, with only
        the observed pixels as evidence). x (N, P), observed (P,) or (N, P) bool."""
        joint, _, _ = self._joint_observed(x, observed)
        return torch.softmax(joint, dim=-1)

    def missing_marginals(self, x, observed) -> torch.Tensor:
        """(N, P): p(x_nj = 1 | x_o) = sum_c p(c | x_o) p_cj at unobserved pixels j, and the
        observed value x_nj (0 or 1) at observed ones. x (N, P), observed (P,) or (N, P) bool.

        Each missing pixel's probability is an average of the prototypes, weighted by how well
        each cluster explains what is seen: the model's "best guess" image.
        """
        joint, x, mask = self._joint_observed(x, observed)
        guess = torch.softmax(joint, dim=-1) @ self.probs
        return torch.where(mask, x, guess)

    def log_prob_missing(self, x, observed) -> torch.Tensor:
        """(N,): log p(x_m | x_o) = logsumexp_c [log p(c | x_o) + sum_{j missing} log Bern(x_j; p_cj)].

        x (N, P) complete binary images: the values at the missing pixels are the completion being
        scored, those at observed pixels the evidence. Equals log p(x) - log p(x_o).
        """
        joint, x, mask = self._joint_observed(x, observed, complete=True)
        log_post = torch.log_softmax(joint, dim=-1)
        return torch.logsumexp(log_post + self._masked_log_lik(x, ~mask), dim=-1)

    def sample_missing(self, x, observed, n_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n_samples, N, P): exact samples of x_m ~ p(x_m | x_o) for every image, by ancestral
        sampling: c ~ p(c | x_o), then each missing pixel j ~ Bernoulli(p_cj) independently.
        Observed pixels are copied from x. x (N, P), observed (P,) or (N, P) bool.

        The missing pixels of one sample share a c, so they are dependent (a whole top half of
        one digit), unlike sampling each pixel from its marginal ``missing_marginals``.
        """
        check_positive_int(n_samples, "n_samples")
        joint, x, mask = self._joint_observed(x, observed)
        post = torch.softmax(joint, dim=-1)  # (N, C)
        c = torch.multinomial(post, n_samples, replacement=True, generator=generator).T  # (K, N): a component per sample
        u = torch.rand(n_samples, *x.shape, generator=generator, dtype=self.dtype)
        bits = (u < self.probs[c]).to(self.dtype)  # (K, N, P)
        return torch.where(mask, x, bits)


def fit_bernoulli_mixture(x, n_components: int = 20, n_iter: int = 50, seed: int = 0):
    """Fit a ``BernoulliMixture`` to binary images x (N, P) by EM: ``BernoulliMixture.initialize``
    with a generator seeded by ``seed``, then ``fit_em`` for ``n_iter`` iterations (smoothing
    alpha = 1, ``m_step``'s default). Returns (model, list of ``EMStepReport``)."""
    check_positive_int(n_iter, "n_iter")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    x = _check_binary(x, "x")
    init = BernoulliMixture.initialize(x, n_components, generator=torch.Generator().manual_seed(seed))
    model, reports = fit_em(init, x, n_iter=n_iter)
    return model, reports

