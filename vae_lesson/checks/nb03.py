"""Checks for the exercises of notebook 03 (the ELBO)."""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from ..models import Latent1DModel, LinearGaussianModel
from ._core import (
    CheckResult, ExerciseError, compare, mark_used_later, register_signatures, register_solutions, run_check,
)

HINTS = {
    "03.1": "the ELBO is an expectation under q: draw the K samples from q itself, evaluate the integrand "
            "log p(x, z) - log q(z) at each of them, and average (q is a torch distribution: it can both sample "
            "and give log-densities).",
    "03.2": "the KL between two Gaussians has a closed form; for diagonal Gaussians it is a sum over the latent "
            "dimensions of one-dimensional terms, each built from the variance, the squared mean, a constant and "
            "the log of the variance, with a factor 1/2.",
    "03.3": "write log p(x, z) as a quadratic in z and complete the square: the precision (inverse covariance) "
            "is W^T W / sigma^2 plus the prior's identity. It does not depend on x, so one covariance serves "
            "every data point; only the mean moves with x - b. Prefer solving a linear system to inverting.",
}
SOLUTIONS = {
    "03.1": "z = q.sample((n_samples,))\nreturn (log_joint(z) - q.log_prob(z)).mean()",
    "03.2": "return 0.5 * (std**2 + mean**2 - 1 - 2 * torch.log(std)).sum(-1)",
    "03.3": "M = W.T @ W + sigma**2 * torch.eye(W.shape[1], dtype=W.dtype)\n"
            "mean = torch.linalg.solve(M, W.T @ (x - b).T).T\ncov = sigma**2 * torch.linalg.inv(M)\n"
            "return mean, cov",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "03.1": "log_joint (a function: z of shape (K, d) to log p(x, z) of shape (K,)), q (a torch distribution over z), "
            "n_samples (the number K) -> ()",
    "03.2": "mean (N, d), std (N, d) -> (N,)",
    "03.3": "x (N, D), W (D, d), b (D,), sigma (a number) -> mean (N, d), cov (d, d)",
}
register_signatures(SIGNATURES)
mark_used_later("03.2", "03.3")  # 03.1's function is not used by later cells


def _ppca_case(seed: int = 5):
    model = LinearGaussianModel.random(data_dim=6, latent_dim=2, sigma=0.5, seed=seed)
    x, _ = model.sample(1, generator=torch.Generator().manual_seed(seed + 1))
    post = model.posterior(x)  # q: near the posterior but not equal to it
    q = D.MultivariateNormal(post.mean[0] + torch.tensor([0.3, -0.2], dtype=torch.float64),
                             1.5 * post.covariance_matrix[0])
    exact = model.elbo(x, q.mean, q.covariance_matrix)[0].item()
    log_joint = lambda z: model.joint_log_prob(x, z)  # noqa: E731  z (K, d) -> (K,), as x is one point
    entropy = q.entropy().item()
    return log_joint, q, exact, entropy


def _latent1d_case():
    model, x = Latent1DModel(), 1.2
    q = D.Normal(torch.tensor(1.0, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64))
    exact = model.elbo(x, 1.0, 1.5)
    return (lambda z: model.joint_log_prob(x, z)), q, exact, q.entropy().item()


def elbo_monte_carlo(student_fn, n_samples: int = 20_000) -> CheckResult:
    """Exercise 03.1: student_fn(log_joint, q, n_samples) -> a scalar tensor, the Monte Carlo ELBO
    (1/K) sum_k [log p(x, z_k) - log q(z_k)] with z_k ~ q. Compared with the exact ELBO within
    5 standard errors (a right answer fails this less than once in a million runs)."""

    def body(student_fn):
        for case in (_ppca_case, _latent1d_case):
            log_joint, q, exact, entropy = case()
            with torch.no_grad():
                z = q.sample((n_samples,))
                se = ((log_joint(z) - q.log_prob(z)).std() / math.sqrt(n_samples)).item()
            torch.manual_seed(1234)
            answer = student_fn(log_joint, q, n_samples)
            if answer is None:
                raise ExerciseError("your function returned None. Did you forget `return`?")
            answer = torch.as_tensor(answer).detach()
            if answer.numel() != 1:
                raise ExerciseError(
                    f"expected one number (the average over the {n_samples} samples), got shape {tuple(answer.shape)}: "
                    "average the per-sample terms with .mean()")
            value = answer.item()
            if not math.isfinite(value):
                raise ExerciseError(f"your ELBO is {value}; every term log p(x, z) - log q(z) should be finite")
            tol = 5 * se
            if abs(value - exact) <= tol:
                continue
            if abs(value - (exact - entropy)) <= tol:
                raise ExerciseError(
                    f"your value {value:.4f} equals the ELBO minus the entropy of q ({entropy:.4f}): "
                    "you forgot to subtract log q(z_k)")
            if abs(value + exact) <= tol:
                raise ExerciseError(f"the sign is wrong: you returned {value:.4f}, the ELBO is {exact:.4f}")
            raise ExerciseError(
                f"your estimate {value:.4f} is {abs(value - exact) / se:.0f} standard errors from the exact "
                f"ELBO {exact:.4f} (standard error {se:.4f}). Are the samples drawn from q, and do you "
                "average log p(x, z) - log q(z) over them?")

    return run_check("Exercise 03.1 (Monte Carlo ELBO)", body, HINTS["03.1"], student_fn, solution=SOLUTIONS["03.1"])


def kl_to_standard_normal(student_fn) -> CheckResult:
    """Exercise 03.2: student_fn(mean (N, d), std (N, d)) -> (N,)
    KL(N(mean, diag std^2) || N(0, I)) = 1/2 sum_j (std_j^2 + mean_j^2 - 1 - 2 log std_j)."""

    def body(student_fn):
        g = torch.Generator().manual_seed(21)
        for n, d in ((5, 3), (4, 1), (2, 7)):
            m = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.5
            s = torch.rand(n, d, generator=g, dtype=torch.float64) * 2 + 0.2
            q = D.Independent(D.Normal(m, s), 1)
            p = D.Independent(D.Normal(torch.zeros_like(m), torch.ones_like(s)), 1)
            expected = D.kl_divergence(q, p)
            mistakes = {
                "you used the std where the variance belongs: the first term is std^2, and the log term is "
                "2 log std = log std^2.": 0.5 * (s + m**2 - 1 - s.log()).sum(-1),
                "the log term should be 2 log std (= log of the variance), not log std.":
                    0.5 * (s**2 + m**2 - 1 - s.log()).sum(-1),
                "you forgot the -1 in each dimension.": 0.5 * (s**2 + m**2 - 2 * s.log()).sum(-1),
                "you forgot the factor 1/2.": (s**2 + m**2 - 1 - 2 * s.log()).sum(-1),
                "you computed KL(p(z) || q(z)), the other direction; the ELBO uses KL(q || p(z)).":
                    D.kl_divergence(p, q),
            }
            compare(student_fn(m.clone(), s.clone()), expected, "KL", mistakes, rtol=1e-6, atol=1e-8)

    return run_check("Exercise 03.2 (Gaussian KL in closed form)", body, HINTS["03.2"], student_fn,
                     solution=SOLUTIONS["03.2"])


def ppca_posterior(student_fn) -> CheckResult:
    """Exercise 03.3: student_fn(x (N, D), W (D, d), b (D,), sigma) -> (mean (N, d), cov (d, d)) of
    p(z | x) = N(M^{-1} W^T (x - b), sigma^2 M^{-1}), M = W^T W + sigma^2 I."""

    def body(student_fn):
        for seed, (D_, d, sigma) in ((3, (5, 2, 0.7)), (4, (8, 3, 0.3)), (5, (4, 1, 1.5))):
            model = LinearGaussianModel.random(D_, d, sigma, seed=seed)
            x, _ = model.sample(6, generator=torch.Generator().manual_seed(seed))
            post = model.posterior(x)
            W, b, s = model.W.clone(), model.b.clone(), float(sigma)
            out = student_fn(x.clone(), W, b, s)
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise ExerciseError("return two things: (mean, cov), the posterior mean (N, d) and covariance (d, d)")
            mean, cov = out
            WtW, I = W.T @ W, torch.eye(d, dtype=torch.float64)
            M = WtW + s**2 * I
            compare(mean, post.mean, "posterior mean", {
                "M must include sigma^2 I: M = W^T W + sigma^2 I (the prior's pull towards 0).":
                    torch.linalg.solve(WtW, W.T @ (x - b).T).T,
                "subtract b from x first: the mean is M^{-1} W^T (x - b).": torch.linalg.solve(M, W.T @ x.T).T,
            }, rtol=1e-6, atol=1e-8)
            if isinstance(cov, torch.Tensor) and cov.shape == (x.shape[0], d, d):
                per_point = cov.detach().to(torch.float64)
                same = bool(torch.allclose(per_point, per_point[:1].expand_as(per_point), rtol=1e-6, atol=1e-8))
                raise ExerciseError(
                    f"posterior covariance: expected shape ({d}, {d}), got {tuple(cov.shape)}, one covariance per data "
                    "point. The posterior covariance sigma^2 M^{-1} does not depend on x: it is one covariance shared "
                    "by all data points (only the mean moves with x). "
                    + ("Yours are all equal: return one (d, d) matrix, e.g. without the batch axis."
                       if same else "Yours differ from point to point: check where x enters your covariance."))
            compare(cov, post.covariance_matrix[0], "posterior covariance", {
                "the covariance is sigma^2 M^{-1}: you left out sigma^2.": torch.linalg.inv(M),
                "the covariance is sigma^2 M^{-1}, the inverse of M, not M itself.": s**2 * M,
                "M must include sigma^2 I: M = W^T W + sigma^2 I.": s**2 * torch.linalg.inv(WtW),
            }, rtol=1e-6, atol=1e-8)

    return run_check("Exercise 03.3 (the q that makes the bound tight)", body, HINTS["03.3"], student_fn,
                     solution=SOLUTIONS["03.3"])
