"""Checks for the exercises of notebook 01 (latent variable models)."""
from __future__ import annotations

import torch

from ..models import GaussianMixture
from ._core import CheckResult, compare, copies, mark_used_later, register_signatures, register_solutions, run_check

HINTS = {
    "01.1": "p(x) sums the joint p(x, z=c) = pi_c N(x; mu_c, Sigma_c) over the components. Work in log space: "
            "add log pi_c to each component's log-density, then combine the components with a log-sum-exp "
            "(exp of log-densities near -1000 underflows to 0). One value per data point.",
    "01.2": "Bayes' rule: the responsibility of component c is the joint p(x, z=c) divided by its sum over c. "
            "Stay in log space and normalize over the component axis with a softmax, so that far-away points "
            "(log-densities near -1000) do not turn into 0 / 0.",
    "01.3": "each new mean is a weighted average of ALL data points, the weights being the responsibilities r_nc "
            "of that component, divided by their total N_c (the effective number of points of component c).",
}
SOLUTIONS = {
    "01.1": "log_joint = weights.log() + D.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])\n"
            "return torch.logsumexp(log_joint, dim=-1)",
    "01.2": "log_joint = weights.log() + D.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])\n"
            "return torch.softmax(log_joint, dim=-1)",
    "01.3": "return resp.T @ x / resp.sum(0)[:, None]",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "01.1": "x (N, D), weights (C,), means (C, D), covs (C, D, D) -> (N,)",
    "01.2": "x (N, D), weights (C,), means (C, D), covs (C, D, D) -> (N, C)",
    "01.3": "x (N, D), resp (N, C) -> (C, D)",
}
register_signatures(SIGNATURES)
mark_used_later("01.1", "01.2")  # the cells after the checks call mixture_log_density and responsibilities


def _random_mixture(seed: int, C: int = 4, D: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(C, generator=g) + 0.2
    weights = weights / weights.sum()
    means = 2 * torch.randn(C, D, generator=g)
    a = torch.randn(C, D, D, generator=g)
    covs = a @ a.transpose(-1, -2) / D + 0.3 * torch.eye(D)
    x = 2 * torch.randn(7, D, generator=g)
    return x, weights, means, covs


def _far_mixture() -> tuple[torch.Tensor, ...]:
    """Data points far from every component (float64): their log-densities are around -1000, where
    exp underflows to 0, so only a log-sum-exp (log space) route gets them right."""
    x, weights, means, covs = (t.double() for t in _random_mixture(303, C=3, D=2))
    x = x.clone()
    x[:3] = torch.tensor([[40.0, 25.0], [-42.0, 48.0], [46.0, -44.0]], dtype=torch.float64)
    return x, weights, means, covs


def _mixture_cases(x=None, weights=None, means=None, covs=None):
    cases = [_random_mixture(101), _random_mixture(202, C=2, D=2), _far_mixture()]
    if x is not None:  # the notebook's own data: copies, so that an in-place edit cannot change it
        cases.insert(0, tuple(torch.as_tensor(t).clone() for t in (x, weights, means, covs)))
    return cases


def _component_log_probs(x, means, covs):
    return torch.distributions.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])


def mixture_log_density(student_fn, x=None, weights=None, means=None, covs=None) -> CheckResult:
    """Exercise 01.1: student_fn(x (N, D), weights (C,), means (C, D), covs (C, D, D)) -> (N,)
    log p(x_n) = log sum_c pi_c N(x_n; mu_c, Sigma_c)."""

    def body(student_fn):
        for xs, w, m, c in _mixture_cases(x, weights, means, covs):
            expected = GaussianMixture(w, m, c).log_marginal(xs)
            comp = _component_log_probs(xs, m, c)
            mistakes = {
                "you summed the log-densities over the components; the log of a sum is not a sum of logs: "
                "use torch.logsumexp over the component axis.": (w.log() + comp).sum(-1),
                "the mixture weights pi_c are missing: add log pi_c to each component's log-density.":
                    torch.logsumexp(comp, -1),
                "you averaged the components with equal weights 1/C instead of the mixture weights pi_c.":
                    torch.logsumexp(comp, -1) - torch.log(torch.tensor(float(len(w)))),
                "you took the max over components (a hard assignment) instead of log-sum-exp (a sum over z).":
                    (w.log() + comp).max(-1).values,
            }
            compare(student_fn(*copies(xs, w, m, c)), expected, "log p(x)", mistakes)

    return run_check("Exercise 01.1 (log-density of a mixture)", body, HINTS["01.1"], student_fn,
                     solution=SOLUTIONS["01.1"])


def responsibilities(student_fn, x=None, weights=None, means=None, covs=None) -> CheckResult:
    """Exercise 01.2: student_fn(x (N, D), weights (C,), means (C, D), covs (C, D, D)) -> (N, C)
    p(z = c | x_n) = pi_c N(x_n; mu_c, Sigma_c) / sum_j pi_j N(x_n; mu_j, Sigma_j)."""

    def body(student_fn):
        for xs, w, m, c in _mixture_cases(x, weights, means, covs):
            expected = GaussianMixture(w, m, c).posterior(xs)
            joint = w.log() + _component_log_probs(xs, m, c)
            mistakes = {
                "your rows do not sum to 1 over the components: you returned the joint p(x, z=c); "
                "divide by p(x) = sum_c p(x, z=c).": joint.exp(),
                "you normalized over the data points (axis 0); responsibilities sum to 1 over the "
                "components c for each data point.": torch.softmax(joint, 0),
                "the prior weights pi_c are missing from Bayes' rule.":
                    torch.softmax(_component_log_probs(xs, m, c), -1),
                "you returned log-responsibilities; exponentiate them.": torch.log_softmax(joint, -1),
            }
            compare(student_fn(*copies(xs, w, m, c)), expected, "p(z|x)", mistakes)

    return run_check("Exercise 01.2 (posterior responsibilities)", body, HINTS["01.2"], student_fn,
                     solution=SOLUTIONS["01.2"])


def m_step_means(student_fn, x=None, resp=None) -> CheckResult:
    """Exercise 01.3: student_fn(x (N, D), resp (N, C)) -> (C, D) new means
    mu_c = sum_n r_nc x_n / sum_n r_nc."""

    def body(student_fn):
        g = torch.Generator().manual_seed(7)
        cases = [(2 * torch.randn(9, 3, generator=g), torch.softmax(torch.randn(9, 4, generator=g), -1)),
                 (torch.randn(5, 2, generator=g), torch.softmax(3 * torch.randn(5, 3, generator=g), -1))]
        if x is not None:  # the notebook's own data: copies, so that an in-place edit cannot change it
            cases.insert(0, tuple(torch.as_tensor(t).clone() for t in (x, resp)))
        for xs, r in cases:
            expected = r.T @ xs / r.sum(0)[:, None]
            mistakes = {
                "you forgot to divide by N_c = sum_n r_nc (the effective number of points of component c).":
                    r.T @ xs,
                "you divided by the total number of points N instead of N_c = sum_n r_nc.": r.T @ xs / xs.shape[0],
                "you took the plain average of all points; weight each point by its responsibility r_nc.":
                    xs.mean(0).expand(r.shape[1], -1),
            }
            compare(student_fn(*copies(xs, r)), expected, "new means", mistakes)

    return run_check("Exercise 01.3 (M-step for the means)", body, HINTS["01.3"], student_fn,
                     solution=SOLUTIONS["01.3"])
