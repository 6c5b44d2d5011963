"""The exercise checks of notebook 04 (vae_lesson.checks.nb04): right answers, written here
independently of the package, pass; unfinished ones say "not done yet"; each typical wrong answer
raises ExerciseError with a message that names the mistake."""
import math

import numpy as np
import pytest
import torch
from conftest import assert_caught

from vae_lesson import checks
from vae_lesson.checks import ExerciseError



# --- the student's functions, right ------------------------------------------------------------

def right_log_q(samples, phi):
    return torch.distributions.Bernoulli(probs=phi).log_prob(samples).sum(-1)


def right_log_q_loops(samples, phi):
    """The formula with explicit loops, in float64."""
    out = torch.zeros(samples.shape[0], dtype=torch.float64)
    for s in range(samples.shape[0]):
        for j in range(samples.shape[1]):
            p = phi[j].item()
            out[s] += math.log(p) if samples[s, j] == 1 else math.log(1 - p)
    return out


def right_marginals(x, observed, weights, probs):
    """Bayes over the observed pixels with explicit products, then the posterior-weighted prototypes."""
    K, P = probs.shape
    post = np.array([weights[k].item() * np.prod([probs[k, j].item() if x[j] == 1 else 1 - probs[k, j].item()
                                                  for j in range(P) if observed[j]]) for k in range(K)])
    post /= post.sum()
    return torch.tensor([sum(post[k] * probs[k, j].item() for k in range(K)) for j in range(P) if not observed[j]],
                        dtype=torch.float64)


def right_linear_gaussian_elbo(x, W, b, log_sigma, q_mean, q_log_std):
    """E_q[log p(x|z)] with E||x - Wz - b||^2 = ||x - Wm - b||^2 + tr(W S W^T), KL via torch.distributions."""
    sigma2 = torch.exp(2 * log_sigma)
    S = torch.diag_embed(torch.exp(2 * q_log_std))
    resid = x - q_mean @ W.T - b
    trace = torch.einsum("ij,njk,ik->n", W, S, W)
    recon = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2) - (resid.pow(2).sum(-1) + trace) / (2 * sigma2)
    q = torch.distributions.MultivariateNormal(q_mean, covariance_matrix=S)
    d = W.shape[1]
    prior = torch.distributions.MultivariateNormal(torch.zeros(d, dtype=x.dtype), torch.eye(d, dtype=x.dtype))
    return recon - torch.distributions.kl_divergence(q, prior)


# right answers per check; tests/test_checks_common.py runs the generic checks on them
CHECKS = {
    "bernoulli_log_q": (checks.bernoulli_log_q, [right_log_q, right_log_q_loops]),
    "missing_pixel_marginals": (checks.missing_pixel_marginals, [right_marginals]),
    "linear_gaussian_elbo": (checks.linear_gaussian_elbo, [right_linear_gaussian_elbo]),
}


# --- the typical wrong answers --------------------------------------------------------------------

def lq_no_off_term(samples, phi):
    return (samples * phi.log()).sum(-1)


def lq_phi_for_zeros(samples, phi):
    return (samples * phi.log() + (1 - samples) * phi.log()).sum(-1)


def lq_per_pixel(samples, phi):
    return samples * phi.log() + (1 - samples) * torch.log1p(-phi)


def lq_sum_over_samples(samples, phi):
    return (samples * phi.log() + (1 - samples) * torch.log1p(-phi)).sum(0)


def lq_exp(samples, phi):
    return right_log_q(samples, phi).exp()


def lq_sign(samples, phi):
    return -right_log_q(samples, phi)


LOG_Q_MISTAKES = [
    (lq_no_off_term, "(1 - x_j) log(1 - phi_j)"),
    (lq_phi_for_zeros, "1 - phi_j, not phi_j"),
    (lq_per_pixel, "one axis too many"),
    (lq_sum_over_samples, "expected shape (5,), got shape (32,)"),
    (lq_exp, "exp of the expected"),
    (lq_sign, "sign is wrong"),
]


def _bern(x, probs):
    return x * probs.log() + (1 - x) * torch.log1p(-probs)  # (K, P)


def mm_hidden_in_bayes(x, observed, weights, probs):
    r = torch.softmax(weights.log() + _bern(x, probs).sum(-1), 0)
    return (r @ probs)[~observed]


def mm_no_weights(x, observed, weights, probs):
    r = torch.softmax(_bern(x, probs)[:, observed].sum(-1), 0)
    return (r @ probs)[~observed]


def mm_prior_only(x, observed, weights, probs):
    return (weights @ probs)[~observed]


def mm_returns_r(x, observed, weights, probs):
    return torch.softmax(weights.log() + _bern(x, probs)[:, observed].sum(-1), 0)


def mm_all_pixels(x, observed, weights, probs):
    r = torch.softmax(weights.log() + _bern(x, probs)[:, observed].sum(-1), 0)
    return r @ probs


MARGINAL_MISTAKES = [
    (mm_hidden_in_bayes, "hidden"),
    (mm_no_weights, "weights"),
    (mm_prior_only, "prior weights only"),
    (mm_returns_r, "expected shape (8,), got shape (4,)"),
    (mm_all_pixels, "expected shape (8,), got shape (16,)"),
]


def lge_parts(x, W, b, log_sigma, q_mean, q_log_std, sigma2=None):
    sigma2 = torch.exp(2 * log_sigma) if sigma2 is None else sigma2
    s2 = torch.exp(2 * q_log_std)
    sq = (x - q_mean @ W.T - b).pow(2).sum(-1)
    spread = s2 @ W.pow(2).sum(0)
    const = -0.5 * x.shape[1] * torch.log(2 * math.pi * sigma2)
    kl = 0.5 * (s2 + q_mean.pow(2) - 1 - 2 * q_log_std).sum(-1)
    return const, sq, spread, sigma2, kl


def lge_no_spread(*a):
    const, sq, spread, sigma2, kl = lge_parts(*a)
    return const - sq / (2 * sigma2) - kl


def lge_no_kl(*a):
    const, sq, spread, sigma2, kl = lge_parts(*a)
    return const - (sq + spread) / (2 * sigma2)


def lge_kl_added(*a):
    const, sq, spread, sigma2, kl = lge_parts(*a)
    return const - (sq + spread) / (2 * sigma2) + kl


def lge_sign(*a):
    return -right_linear_gaussian_elbo(*a)


def lge_sigma_not_squared(*a):
    const, sq, spread, sigma2, kl = lge_parts(*a, sigma2=torch.exp(a[3]))
    return const - (sq + spread) / (2 * sigma2) - kl


ELBO_MISTAKES = [
    (lge_no_spread, "spread"),
    (lge_no_kl, "KL term is missing"),
    (lge_kl_added, "subtracted, not added"),
    (lge_sign, "sign is wrong"),
    (lge_sigma_not_squared, "differ from the reference"),
]


def _assert_caught(check, wrong, phrase, capsys):
    assert_caught(lambda: check(wrong), phrase, capsys)


@pytest.mark.parametrize("wrong, phrase", LOG_Q_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
def test_log_q_mistakes(wrong, phrase, capsys):
    _assert_caught(checks.bernoulli_log_q, wrong, phrase, capsys)


@pytest.mark.parametrize("wrong, phrase", MARGINAL_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
def test_marginal_mistakes(wrong, phrase, capsys):
    _assert_caught(checks.missing_pixel_marginals, wrong, phrase, capsys)


@pytest.mark.parametrize("wrong, phrase", ELBO_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
def test_linear_gaussian_elbo_mistakes(wrong, phrase, capsys):
    _assert_caught(checks.linear_gaussian_elbo, wrong, phrase, capsys)


def test_mistake_messages_are_specific(capsys):
    """The generic 'differ from the reference' line is kept for mistakes the check does not know."""
    for check, wrong in ((checks.bernoulli_log_q, lq_no_off_term), (checks.missing_pixel_marginals, mm_hidden_in_bayes),
                         (checks.linear_gaussian_elbo, lge_no_spread)):
        with pytest.raises(ExerciseError) as info:
            check(wrong)
        assert "differ from the reference" not in str(info.value)
