"""Latent-variable models whose pieces the lecture names: prior p(z), decoder p(x|z),
joint p(x, z), marginal p(x) and true posterior p(z|x).

- ``FiniteMixture``: z takes C values, so p(x) and p(z|x) are exact sums over z (Lecture 6,
  0:00-2:30). ``GaussianMixture`` is the mixture of Gaussians; EM (39:00) is shared by every
  finite mixture through ``em_step``.
- ``LatentGaussianModel``: the "infinite mixture" z ~ N(0, I), x|z ~ N(mu_theta(z),
  diag sigma_theta(z)^2) with small networks mu_theta, sigma_theta (2:30, 17:45).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import distributions as D
from torch import nn

from .estimators import log_mean_exp
from .validation import (
    as_tensor,
    check_finite,
    check_last_dim,
    check_ndim,
    check_positive,
    check_positive_int,
)


@dataclass(frozen=True)
class EMStepReport:
    """What one EM iteration did to the bound, in nats per data point (averaged over x).

    log_lik_before: (1/N) sum_n log p(x_n; theta_old)
    elbo_after_e:   ELBO(theta_old, q = p(z|x; theta_old)), equal to log_lik_before (tight)
    elbo_after_m:   ELBO(theta_new, same q), >= elbo_after_e (the M-step maximizes it)
    log_lik_after:  (1/N) sum_n log p(x_n; theta_new), >= elbo_after_m (the gap is the KL)
    """

    log_lik_before: float
    elbo_after_e: float
    elbo_after_m: float
    log_lik_after: float


class FiniteMixture:
    """A finite mixture: z ~ Categorical(weights) over C components, x | z=c ~ p_c(x).

    Subclasses define ``component_log_prob(x)`` (N, C) = log p(x_n | z=c) and ``m_step``.
    Everything else (joint, marginal, posterior, ELBO, EM) is exact enumeration over c.
    """

    weights: torch.Tensor  # (C,)

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def prior(self) -> D.Categorical:
        """p(z) = Categorical(weights)."""
        return D.Categorical(probs=self.weights)

    def _check_x(self, x) -> torch.Tensor:
        raise NotImplementedError

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C): log p(x_n | z = c)."""
        raise NotImplementedError

    def joint_log_prob(self, x) -> torch.Tensor:
        """(N, C): log p(x_n, z = c) = log p(z = c) + log p(x_n | z = c)."""
        x = self._check_x(x)
        return self.weights.log() + self.component_log_prob(x)

    def log_marginal(self, x) -> torch.Tensor:
        """(N,): log p(x_n) = log sum_c p(x_n, z = c), computed stably with log-sum-exp."""
        return torch.logsumexp(self.joint_log_prob(x), dim=-1)

    def posterior(self, x) -> torch.Tensor:
        """(N, C): p(z = c | x_n) = p(x_n, z = c) / p(x_n), the "responsibilities" (Bayes)."""
        return torch.softmax(self.joint_log_prob(x), dim=-1)

    def elbo(self, x, q) -> torch.Tensor:
        """(N,): ELBO(x_n; q_n) = sum_c q_nc [log p(x_n, z=c) - log q_nc], exact by enumeration.

        q: (N, C) rows of probabilities. ELBO <= log p(x_n), with equality iff q_n = p(z|x_n).
        """
        joint = self.joint_log_prob(x)
        q = as_tensor(q, "q").to(joint.dtype)
        if q.shape != joint.shape:
            raise ValueError(f"q must have shape {tuple(joint.shape)} (data points, components), got {tuple(q.shape)}")
        if (q < 0).any() or not torch.allclose(q.sum(-1), torch.ones((), dtype=q.dtype), atol=1e-4):
            raise ValueError("q must hold probabilities: non-negative rows that sum to 1 over the components")
        expected_joint = torch.where(q > 0, q * joint, torch.zeros(()))  # 0 * log 0 counts as 0
        return expected_joint.sum(-1) - torch.special.xlogy(q, q).sum(-1)

    @classmethod
    def m_step(cls, x: torch.Tensor, resp: torch.Tensor) -> "FiniteMixture":
        """The parameters theta maximizing sum_n sum_c resp_nc log p(x_n, z=c; theta)."""
        raise NotImplementedError

    def em_step(self, x) -> tuple["FiniteMixture", EMStepReport]:
        """One EM iteration. E-step: q = p(z|x; theta_old), which makes the bound tight.
        M-step: theta_new = argmax_theta ELBO(theta, q). Returns (new model, report)."""
        x = self._check_x(x)
        q = self.posterior(x)
        log_lik_before = self.log_marginal(x).mean().item()
        elbo_after_e = self.elbo(x, q).mean().item()
        new = type(self).m_step(x, q)
        elbo_after_m = new.elbo(x, q).mean().item()
        log_lik_after = new.log_marginal(x).mean().item()
        return new, EMStepReport(log_lik_before, elbo_after_e, elbo_after_m, log_lik_after)


class GaussianMixture(FiniteMixture):
    """Mixture of Gaussians: z ~ Categorical(weights), x | z=c ~ N(means[c], covs[c]).

    weights (C,), means (C, D), covs (C, D, D) symmetric positive definite.
    """

    def __init__(self, weights, means, covs):
        weights = check_finite(as_tensor(weights, "weights"), "weights")
        means = check_finite(as_tensor(means, "means"), "means")
        covs = check_finite(as_tensor(covs, "covs"), "covs")
        check_ndim(weights, "weights", 1, "(C,) mixture weights")
        check_ndim(means, "means", 2, "(C, D): one mean per component")
        check_ndim(covs, "covs", 3, "(C, D, D): one covariance matrix per component")
        dtype = torch.promote_types(torch.promote_types(weights.dtype, means.dtype), covs.dtype)
        weights, means, covs = weights.to(dtype), means.to(dtype), covs.to(dtype)
        K, Dm = means.shape
        if weights.shape[0] != K or covs.shape != (K, Dm, Dm):
            raise ValueError(
                f"mismatched sizes: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                f"covs {tuple(covs.shape)}; expected (C,), (C, D), (C, D, D)"
            )
        if (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-4:
            raise ValueError(f"weights must be non-negative and sum to 1, got {weights.tolist()}")
        if not torch.allclose(covs, covs.transpose(-1, -2), atol=1e-5):
            raise ValueError("covs must be symmetric matrices")
        if (torch.linalg.eigvalsh(covs) <= 0).any():
            raise ValueError("covs must be positive definite (every eigenvalue > 0); a std must be > 0")
        self.weights, self.means, self.covs = weights, means, covs

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _check_x(self, x) -> torch.Tensor:
        x = check_finite(as_tensor(x, "x"), "x")
        check_ndim(x, "x", 2, f"(N, {self.dim}): a batch of points; use x[None] for one point")
        return check_last_dim(x, "x", self.dim, "the data dimension of the means").to(self.means.dtype)

    def components(self) -> D.MultivariateNormal:
        """The decoder p(x | z=c) for all c, as a batch of C MultivariateNormals."""
        return D.MultivariateNormal(self.means, covariance_matrix=self.covs)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.components().log_prob(x[:, None, :])

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: z ~ p(z), then x ~ p(x | z). Returns x (n, D) and z (n,)."""
        check_positive_int(n, "n")
        z = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator)
        chol = torch.linalg.cholesky(self.covs)[z]  # (n, D, D)
        x = self.means[z] + (chol @ eps[..., None]).squeeze(-1)
        return x, z

    @classmethod
    def m_step(cls, x: torch.Tensor, resp: torch.Tensor, reg: float = 1e-6) -> "GaussianMixture":
        """weights_c = N_c / N, means_c = sum_n r_nc x_n / N_c,
        covs_c = sum_n r_nc (x_n - means_c)(x_n - means_c)^T / N_c + reg * I, with N_c = sum_n r_nc."""
        nk = resp.sum(0) + 1e-12  # (C,)
        weights = nk / nk.sum()
        means = resp.T @ x / nk[:, None]
        diff = x[None, :, :] - means[:, None, :]  # (C, N, D)
        covs = torch.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None]
        covs = covs + reg * torch.eye(x.shape[1], dtype=covs.dtype)
        return cls(weights, means, covs)

    @classmethod
    def initialize(cls, x, n_components: int, generator: torch.Generator | None = None) -> "GaussianMixture":
        """A starting point for EM: uniform weights, means at C distinct random data points,
        every covariance equal to the data's per-dimension variance (a round blob)."""
        x = check_finite(as_tensor(x, "x"), "x")
        check_ndim(x, "x", 2, "(N, D): a batch of points")
        check_positive_int(n_components, "n_components")
        if n_components > x.shape[0]:
            raise ValueError(f"n_components ({n_components}) cannot exceed the number of points ({x.shape[0]})")
        idx = torch.randperm(x.shape[0], generator=generator)[:n_components]
        var = x.var(0).mean().clamp_min(1e-6)
        covs = var * torch.eye(x.shape[1], dtype=x.dtype).expand(n_components, -1, -1).clone()
        return cls(torch.full((n_components,), 1.0 / n_components, dtype=x.dtype), x[idx].clone(), covs)


def fit_em(model: FiniteMixture, x, n_iter: int = 20):
    """Run ``n_iter`` EM iterations from ``model``. Returns (final model, list of EMStepReport)."""
    check_positive_int(n_iter, "n_iter")
    reports = []
    for _ in range(n_iter):
        model, report = model.em_step(x)
        reports.append(report)
    return model, reports


class GaussianDecoder(nn.Module):
    """The decoder p(x | z; theta) = N(mu_theta(z), diag sigma_theta(z)^2) of a small MLP.

    z (..., latent_dim) -> Independent Normal over x (..., data_dim).
    sigma_theta = softplus(.) + min_std keeps every std strictly positive.
    """

    def __init__(self, latent_dim: int = 1, data_dim: int = 2, hidden: int = 64, min_std: float = 0.05):
        super().__init__()
        check_positive_int(latent_dim, "latent_dim")
        check_positive_int(data_dim, "data_dim")
        check_positive_int(hidden, "hidden")
        if min_std <= 0:
            raise ValueError(f"min_std must be > 0, got {min_std}")
        self.latent_dim, self.data_dim, self.min_std = latent_dim, data_dim, min_std
        self.net = nn.Sequential(  # z -> (mu, pre-softplus std), two SiLU hidden layers
            nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * data_dim),
        )

    def forward(self, z: torch.Tensor) -> D.Independent:
        check_last_dim(z, "z", self.latent_dim, "the latent dimension")
        mu, s = self.net(z).chunk(2, dim=-1)
        std = nn.functional.softplus(s) + self.min_std
        return D.Independent(D.Normal(mu, std), 1)


class LatentGaussianModel(nn.Module):
    """The "infinite mixture of Gaussians": p(z) = N(0, I), p(x|z; theta) = GaussianDecoder.

    p(x) = integral p(z) N(x; mu_theta(z), diag sigma_theta(z)^2) dz: a continuum of Gaussians,
    one for every z, weighted by the prior.
    """

    def __init__(self, latent_dim: int = 1, data_dim: int = 2, hidden: int = 64, min_std: float = 0.05):
        super().__init__()
        self.decoder = GaussianDecoder(latent_dim, data_dim, hidden, min_std)

    @property
    def latent_dim(self) -> int:
        return self.decoder.latent_dim

    @property
    def data_dim(self) -> int:
        return self.decoder.data_dim

    @property
    def prior(self) -> D.Independent:
        """p(z) = N(0, I)."""
        zeros = torch.zeros(self.latent_dim)
        return D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)

    def _check_x(self, x) -> torch.Tensor:
        x = check_finite(as_tensor(x, "x"), "x")
        check_ndim(x, "x", 2, f"(N, {self.data_dim}): a batch of points; use x[None] for one point")
        return check_last_dim(x, "x", self.data_dim, "the model's data dimension")

    def joint_log_prob(self, x, z) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z); x (..., data_dim), z (..., latent_dim) broadcast."""
        return self.prior.log_prob(z) + self.decoder(z).log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: z ~ p(z), x ~ p(x | z). Returns x (n, data_dim), z (n, latent_dim)."""
        check_positive_int(n, "n")
        z = torch.randn(n, self.latent_dim, generator=generator)
        px = self.decoder(z).base_dist
        x = px.loc + px.scale * torch.randn(px.loc.shape, generator=generator)
        return x, z

    def mixture_from_latents(self, z: torch.Tensor) -> D.MixtureSameFamily:
        """p_K(x) = (1/K) sum_k N(x; mu_theta(z_k), diag sigma_theta(z_k)^2) for z (K, latent_dim):
        a finite mixture of K Gaussians, one per latent sample. With z_k ~ p(z) it is an
        unbiased estimate of the density p(x), exact as K -> infinity."""
        z = as_tensor(z, "z")
        check_ndim(z, "z", 2, "(K, latent_dim)")
        K = z.shape[0]
        return D.MixtureSameFamily(D.Categorical(logits=torch.zeros(K)), self.decoder(z))

    def log_marginal_quadrature(
        self, x, n_points: int = 2000, z_max: float = 6.0, generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(N,): log p(x) by numerical integration over a 1-D latent (midpoint rule):
        p(x) ~= sum_j w_j p(x | z_j), z_j on a uniform grid of ``n_points`` over [-z_max, z_max],
        w_j proportional to the prior density p(z_j) and summing to 1.

        Only possible because z is one-dimensional: in d dimensions the grid needs n_points^d
        points. With a ``generator`` the grid is shifted by a random fraction of its spacing
        (stratified sampling), which is what training uses so that the model cannot place its
        Gaussians between fixed grid points.
        """
        if self.latent_dim != 1:
            raise ValueError(
                f"quadrature needs a 1-D latent, this model has latent_dim={self.latent_dim}; "
                "use a Monte Carlo estimate instead"
            )
        x = self._check_x(x)
        check_positive_int(n_points, "n_points")
        if not z_max > 0:
            raise ValueError(f"z_max must be > 0, got {z_max}")
        h = 2 * z_max / n_points
        shift = 0.5 if generator is None else torch.rand((), generator=generator).item()
        z = (-z_max + h * (torch.arange(n_points, dtype=x.dtype) + shift))[:, None]
        log_w = torch.log_softmax(self.prior.log_prob(z), dim=0)  # (n_points,)
        log_px_given_z = self.decoder(z).log_prob(x[:, None, :])  # (N, n_points)
        return torch.logsumexp(log_w + log_px_given_z, dim=-1)

    def log_marginal_mc(self, x, n_samples: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N,): log of the naive Monte Carlo estimate (1/K) sum_k p(x | z_k), z_k ~ p(z).
        The estimate of p(x) is unbiased; its log is not (notebook 02)."""
        x = self._check_x(x)
        check_positive_int(n_samples, "n_samples")
        z = torch.randn(n_samples, self.latent_dim, generator=generator)
        return log_mean_exp(self.decoder(z).log_prob(x[:, None, :]), dim=-1)  # over the K samples


class LinearGaussianModel:
    """Probabilistic PCA, a latent-variable model with every answer in closed form:

        p(z) = N(0, I_d),   p(x | z) = N(W z + b, sigma^2 I_D),   W (D, d), b (D,), sigma > 0.

    marginal   p(x)     = N(b, W W^T + sigma^2 I_D)
    posterior  p(z | x) = N(M^{-1} W^T (x - b), sigma^2 M^{-1}),   M = W^T W + sigma^2 I_d.

    Computations run in float64 so that identities can be checked to 1e-6 or better.
    """

    def __init__(self, W, b, sigma):
        W = check_finite(as_tensor(W, "W", exact=torch.float64), "W").to(torch.float64)
        check_ndim(W, "W", 2, "(D, d): data dimension by latent dimension")
        b = check_finite(as_tensor(b, "b", exact=torch.float64), "b").to(torch.float64)
        check_ndim(b, "b", 1, "(D,)")
        if b.shape[0] != W.shape[0]:
            raise ValueError(f"b must have shape ({W.shape[0]},) to match W {tuple(W.shape)}, got {tuple(b.shape)}")
        sigma = as_tensor(sigma, "sigma", exact=torch.float64).to(torch.float64)
        if sigma.dim() != 0:
            raise ValueError(f"sigma must be one number (the noise std), got shape {tuple(sigma.shape)}")
        check_positive(check_finite(sigma, "sigma"), "sigma")
        self.W, self.b, self.sigma = W, b, sigma

    @classmethod
    def random(cls, data_dim: int, latent_dim: int, sigma: float, seed: int = 0, scale: float = 1.0):
        """A model with W ~ N(0, scale^2) entries and b ~ N(0, 1), drawn with ``seed``."""
        check_positive_int(data_dim, "data_dim")
        check_positive_int(latent_dim, "latent_dim")
        g = torch.Generator().manual_seed(seed)
        W = scale * torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64)
        return cls(W, torch.randn(data_dim, generator=g, dtype=torch.float64), sigma)

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def _check_x(self, x) -> torch.Tensor:
        x = check_finite(as_tensor(x, "x", exact=torch.float64), "x").to(torch.float64)
        check_ndim(x, "x", 2, f"(N, {self.data_dim}): a batch of points; use x[None] for one point")
        return check_last_dim(x, "x", self.data_dim, "the data dimension D of W")

    @property
    def prior(self) -> D.MultivariateNormal:
        """p(z) = N(0, I_d)."""
        d = self.latent_dim
        return D.MultivariateNormal(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))

    def decoder(self, z) -> D.Independent:
        """p(x | z) = N(W z + b, sigma^2 I) for z (..., d)."""
        z = as_tensor(z, "z", exact=torch.float64).to(torch.float64)
        check_last_dim(z, "z", self.latent_dim, "the latent dimension d of W")
        loc = z @ self.W.T + self.b
        return D.Independent(D.Normal(loc, self.sigma.expand(loc.shape)), 1)

    def log_likelihood(self, x, z) -> torch.Tensor:
        """log p(x_n | z) for x (N, D) and z (..., d): the result has the broadcast shape of
        z.shape[:-1] and (N,), e.g. z (S, N, d) -> (S, N), z (d,) -> (N,), and z (S, d) with N = 1 -> (S,).

        Same value as ``decoder(z).log_prob(x)``, computed by expanding the square
        ||x - b - W z||^2 = ||x - b||^2 - 2 z^T W^T (x - b) + z^T W^T W z, which costs O(d^2)
        per sample instead of O(D): what makes millions of Monte Carlo samples cheap here.
        """
        x = self._check_x(x)
        z = as_tensor(z, "z", exact=torch.float64).to(torch.float64)
        check_last_dim(z, "z", self.latent_dim, "the latent dimension d of W")
        r = x - self.b  # (N, D)
        quad = r.pow(2).sum(-1) - 2 * (z * (r @ self.W)).sum(-1) + ((z @ (self.W.T @ self.W)) * z).sum(-1)
        s2 = self.sigma**2
        return -0.5 * self.data_dim * torch.log(2 * math.pi * s2) - quad / (2 * s2)

    def joint_log_prob(self, x, z) -> torch.Tensor:
        """log p(x_n, z) = log p(z) + log p(x_n | z), shapes as in ``log_likelihood``."""
        z = as_tensor(z, "z", exact=torch.float64).to(torch.float64)
        return self.prior.log_prob(z) + self.log_likelihood(x, z)

    def marginal(self) -> D.MultivariateNormal:
        """p(x) = N(b, W W^T + sigma^2 I)."""
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(self.data_dim, dtype=torch.float64)
        return D.MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x) -> torch.Tensor:
        """(N,): log p(x_n), exact."""
        return self.marginal().log_prob(self._check_x(x))

    def posterior(self, x) -> D.MultivariateNormal:
        """p(z | x_n) for each row of x: a batch of N Gaussians N(M^{-1} W^T (x_n - b), sigma^2 M^{-1})."""
        x = self._check_x(x)
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(self.latent_dim, dtype=torch.float64)
        mean = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T  # (N, d)
        cov = self.sigma**2 * torch.linalg.inv(M)
        return D.MultivariateNormal(mean, covariance_matrix=cov.expand(x.shape[0], -1, -1))

    def expected_log_likelihood(self, x, q_mean, q_cov) -> torch.Tensor:
        """(N,): E_{q(z)}[log p(x_n | z)] for Gaussian q_n = N(q_mean[n], q_cov[n]), in closed form:
        -D/2 log(2 pi sigma^2) - (||x - W m - b||^2 + tr(W S W^T)) / (2 sigma^2)."""
        x = self._check_x(x)
        m, S = _gaussian_q(q_mean, q_cov, x.shape[0], self.latent_dim)
        resid = x - m @ self.W.T - self.b
        trace = torch.einsum("ij,njk,ik->n", self.W, S, self.W)
        s2 = self.sigma**2
        return -0.5 * self.data_dim * torch.log(2 * math.pi * s2) - (resid.pow(2).sum(-1) + trace) / (2 * s2)

    def elbo(self, x, q_mean, q_cov) -> torch.Tensor:
        """(N,): ELBO(x_n; q_n) = E_q[log p(x|z)] - KL(q || p(z)), exact for Gaussian q."""
        x = self._check_x(x)
        m, S = _gaussian_q(q_mean, q_cov, x.shape[0], self.latent_dim)
        q = D.MultivariateNormal(m, covariance_matrix=S)
        return self.expected_log_likelihood(x, m, S) - D.kl_divergence(q, self.prior)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: z ~ N(0, I), x = W z + b + sigma * eps. Returns x (n, D), z (n, d)."""
        check_positive_int(n, "n")
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        eps = torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.sigma * eps, z


def _gaussian_q(q_mean, q_cov, n: int, d: int):
    """Validate a batch of Gaussian q's: mean (N, d) or (d,), covariance (N, d, d) or (d, d)."""
    m = check_finite(as_tensor(q_mean, "q_mean", exact=torch.float64), "q_mean").to(torch.float64)
    S = check_finite(as_tensor(q_cov, "q_cov", exact=torch.float64), "q_cov").to(torch.float64)
    m = m.expand(n, d) if m.shape == (d,) else m
    S = S.expand(n, d, d) if S.shape == (d, d) else S
    if m.shape != (n, d):
        raise ValueError(f"q_mean must have shape ({n}, {d}) or ({d},), got {tuple(as_tensor(q_mean, 'q_mean').shape)}")
    if S.shape != (n, d, d):
        raise ValueError(f"q_cov must have shape ({n}, {d}, {d}) or ({d}, {d}), got {tuple(as_tensor(q_cov, 'q_cov').shape)}")
    if (torch.linalg.eigvalsh(S) <= 0).any():
        raise ValueError("q_cov must be positive definite: every variance (and eigenvalue) > 0")
    return m, S


class Latent1DModel:
    """A one-dimensional latent z with a non-Gaussian posterior, computed on a fine grid:

        p(z) = N(0, prior_std^2),   p(x | z) = N(a tanh(z / c), noise_std^2),   x a scalar.

    The saturating decoder mean makes p(z | x) skewed, so no Gaussian q matches it exactly.
    Integrals over z use the trapezoid rule on ``n_grid`` points over +-``z_max``. The posterior's
    tail decays only like the prior (tanh saturates), so the grid reaches far: +-40 covers every
    q the widgets offer (mean up to 8, std up to 4) and matches integration over the whole real
    line to about 1e-8.
    """

    def __init__(self, prior_std: float = 3.0, a: float = 2.0, c: float = 2.0, noise_std: float = 0.6,
                 z_max: float = 40.0, n_grid: int = 80001):
        for name, v in (("prior_std", prior_std), ("c", c), ("noise_std", noise_std), ("z_max", z_max)):
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        check_positive_int(n_grid, "n_grid")
        self.prior_std, self.a, self.c, self.noise_std = float(prior_std), float(a), float(c), float(noise_std)
        self.z = torch.linspace(-z_max, z_max, n_grid, dtype=torch.float64)

    @property
    def prior(self) -> D.Normal:
        return D.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(self.prior_std, dtype=torch.float64))

    def decoder(self, z) -> D.Normal:
        """p(x | z) = N(a tanh(z / c), noise_std^2)."""
        z = as_tensor(z, "z").to(torch.float64)
        return D.Normal(self.a * torch.tanh(z / self.c), torch.tensor(self.noise_std, dtype=torch.float64))

    def joint_log_prob(self, x: float, z) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z) for a scalar x and any shape of z."""
        z = as_tensor(z, "z").to(torch.float64)
        return self.prior.log_prob(z) + self.decoder(z).log_prob(torch.as_tensor(float(x), dtype=torch.float64))

    def _integrate(self, values: torch.Tensor) -> torch.Tensor:
        return torch.trapezoid(values, self.z)

    def _on_grid(self, x: float) -> tuple[torch.Tensor, float]:
        """log p(x, z) on the grid and log p(x), for the last x asked about (a widget asks about the
        same x at every update; the model's parameters never change)."""
        key = float(x)
        if getattr(self, "_grid_cache", (None,))[0] != key:
            lj = self.joint_log_prob(key, self.z)
            top = lj.max()
            self._grid_cache = (key, lj, (top + self._integrate((lj - top).exp()).log()).item())
        return self._grid_cache[1], self._grid_cache[2]

    def log_marginal(self, x: float) -> float:
        """log p(x) = log integral p(x, z) dz, on the grid (stable: factor out the max)."""
        return self._on_grid(x)[1]

    def posterior_log_prob(self, x: float, z) -> torch.Tensor:
        """log p(z | x) = log p(x, z) - log p(x)."""
        return self.joint_log_prob(x, z) - self.log_marginal(x)

    def _q(self, q_mean: float, q_std: float) -> D.Normal:
        if not (q_std > 0 and math.isfinite(q_std)):
            raise ValueError(f"q_std must be a positive number, got {q_std!r}")
        return D.Normal(torch.tensor(float(q_mean), dtype=torch.float64), torch.tensor(float(q_std), dtype=torch.float64))

    def elbo(self, x: float, q_mean: float, q_std: float) -> float:
        """ELBO(q) = integral q(z) [log p(x, z) - log q(z)] dz for q = N(q_mean, q_std^2), on the grid."""
        q = self._q(q_mean, q_std)
        lq = q.log_prob(self.z)
        return self._integrate(lq.exp() * (self._on_grid(x)[0] - lq)).item()

    def kl_to_posterior(self, x: float, q_mean: float, q_std: float) -> float:
        """KL(q(z) || p(z | x)) = integral q(z) [log q(z) - log p(z | x)] dz, on the grid."""
        q = self._q(q_mean, q_std)
        lq = q.log_prob(self.z)
        lj, log_px = self._on_grid(x)
        return self._integrate(lq.exp() * (lq - (lj - log_px))).item()
