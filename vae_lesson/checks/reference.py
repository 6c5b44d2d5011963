"""Reference answers to the exercises, under the names the notebooks use.

A student copy of a notebook starts each exercise as a scaffold. While an exercise is "not done
yet", its check puts the reference function below into the notebook under the exercise's name,
so the cells that use it still run: a student stuck on exercise 1 can still do exercise 3.
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D


def mixture_log_density(x, weights, means, covs):
    """log p(x_n) = logsumexp_c [log pi_c + log N(x_n; mu_c, Sigma_c)]: (N, D) -> (N,)."""
    return torch.logsumexp(weights.log() + D.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :]), -1)


def responsibilities(x, weights, means, covs):
    """p(z = c | x_n): (N, D) -> (N, C)."""
    return torch.softmax(weights.log() + D.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :]), -1)


def m_step_means(x, resp):
    """mu_c = sum_n r_nc x_n / sum_n r_nc: (N, D), (N, C) -> (C, D)."""
    return resp.T @ x / resp.sum(0)[:, None]


def naive_log_marginal(log_likelihoods):
    """log (1/K) sum_k exp(l_k) over axis 0: (K, N) -> (N,)."""
    return torch.logsumexp(log_likelihoods, 0) - math.log(log_likelihoods.shape[0])


def importance_log_marginal(log_joint, log_q):
    """log (1/K) sum_k p(x, z_k) / q(z_k): (K, N), (K, N) -> (N,)."""
    return torch.logsumexp(log_joint - log_q, 0) - math.log(log_joint.shape[0])


def elbo_monte_carlo(log_joint, q, n_samples):
    """(1/K) sum_k [log p(x, z_k) - log q(z_k)], z_k ~ q."""
    z = q.sample((n_samples,))
    return (log_joint(z) - q.log_prob(z)).mean()


def kl_to_standard_normal(mean, std):
    """KL(N(mean, diag std^2) || N(0, I)): (N, d) -> (N,)."""
    return 0.5 * (std**2 + mean**2 - 1 - 2 * torch.log(std)).sum(-1)


def ppca_posterior(x, W, b, sigma):
    """p(z | x) = N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I."""
    M = W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)
    return torch.linalg.solve(M, W.T @ (x - b).T).T, sigma**2 * torch.linalg.inv(M)


def log_q(samples, phi):
    """log q(x_top; phi) for a product of Bernoullis: (K, M), (M,) -> (K,)."""
    return (samples * torch.log(phi) + (1 - samples) * torch.log1p(-phi)).sum(-1)


def missing_pixel_marginals(x, observed, weights, probs):
    """p(x_j = 1 | x_bottom) for the hidden pixels j."""
    r = torch.softmax(weights.log() + D.Bernoulli(probs=probs).log_prob(x)[:, observed].sum(-1), 0)
    return (r @ probs)[~observed]


def elbo_pca(x, W, b, log_sigma, q_mean, q_log_std):
    """The closed-form ELBO of probabilistic PCA with q_n = N(m_n, diag s_n^2): (N, D) -> (N,)."""
    from ..variational import elbo_linear_gaussian

    return elbo_linear_gaussian(x, W, b, log_sigma, q_mean, q_log_std)


def reparameterized_sample(mean, std, eps):
    """z = mean + std * eps."""
    return mean + std * eps


def score_function_surrogate(f_values, log_q):
    """A scalar whose gradient is (1/K) sum_k f(z_k) grad log q(z_k)."""
    return (f_values.detach() * log_q).mean()


def leave_one_out_baseline(f_values):
    """b_k = the mean of f over the other K - 1 samples."""
    return (f_values.sum() - f_values) / (f_values.shape[0] - 1)


def elbo_of_q(model, x, mean, log_std, eps):
    """(1/K) sum_k [log p(x, z_k) - log q(z_k)], z_k = mean + exp(log_std) eps_k: -> (N,)."""
    z = mean + log_std.exp() * eps
    return (model.joint_log_prob(x, z) - D.Normal(mean, log_std.exp()).log_prob(z).sum(-1)).mean(0)


def gaps_per_image(encoder_elbo, refined_elbo, log_px):
    """(log p(x) - refined ELBO, refined ELBO - encoder ELBO), each (N,)."""
    return log_px - refined_elbo, refined_elbo - encoder_elbo


def negative_elbo_loss(x, logits, mean, log_std):
    """-(1/B) sum_b [sum_j log Bernoulli(x_bj; sigmoid(logits_bj)) - KL(N(mean_b, exp(log_std_b)^2) || N(0, I))]."""
    reconstruction = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum(-1)
    return -(reconstruction - kl).mean()


def encoder_sample(model, x, eps):
    """z = mu_phi(x) + sigma_phi(x) * eps: (K, N, d)."""
    mean, log_std = model.encoder.params(x)
    return mean + log_std.exp() * eps


def importance_weighted_log_px(model, x, eps):
    """log (1/K) sum_k p(x, z_k) / q_phi(z_k | x), z_k = mu + sigma eps_k: (N,)."""
    q = model.encoder(x)
    z = q.mean + q.stddev * eps
    return torch.logsumexp(model.joint_log_prob(x, z) - q.log_prob(z), 0) - math.log(eps.shape[0])


def training_step(model, x_batch, optimizer):
    """One VAE training step on minus the ELBO (rsample, summed pixels, closed-form KL): the package's own."""
    from ..vae import training_step as step

    return step(model, x_batch, optimizer)
