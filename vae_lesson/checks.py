"""Exercise checks: instant feedback that never lets a wrong answer pass.

Convention (every notebook): an exercise is a Markdown cell with the task, a code cell tagged
``solution`` that defines the student's function, and a code cell that calls its check here,
e.g. ``checks.mixture_log_density(mixture_log_density)``.

A check calls the student's function on the notebook's own inputs *and* on fresh random
inputs (so hard-coded answers fail), compares with the reference in ``vae_lesson``, and
- prints a pass line and returns a ``CheckResult`` when the answer is right;
- prints "not done yet" (and returns, without raising) when the function still raises
  ``NotImplementedError``, so "Run all" goes on in a student copy;
- raises ``ExerciseError`` with what is wrong (shape, sign, a known mistake, the size of the
  error) and a hint otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .models import GaussianMixture


class ExerciseError(AssertionError):
    """The answer to an exercise is wrong; the message says how and gives a hint."""


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing when a check is a cell's last line: the check already printed its line."""


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}"


def compare(
    answer,
    expected: torch.Tensor,
    what: str,
    mistakes: Mapping[str, torch.Tensor] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Raise ExerciseError unless ``answer`` matches ``expected`` (same shape, allclose).

    The message diagnoses the usual slips: ``None`` returned, wrong shape (transposed, an axis
    reduced or kept), NaN, wrong sign, a forgotten log or exp, and any of the exercise's
    known ``mistakes`` (name -> what that mistake would return); otherwise it reports the
    largest error and where it is.
    """
    if answer is None:
        raise ExerciseError(f"{what}: your function returned None. Did you forget `return`?")
    if not isinstance(answer, torch.Tensor):
        try:
            answer = torch.as_tensor(answer, dtype=expected.dtype)
        except Exception:  # noqa: BLE001
            raise ExerciseError(
                f"{what}: expected a torch tensor, got {type(answer).__name__}"
            ) from None
    answer = answer.detach().to(expected.dtype)
    if answer.shape != expected.shape:
        msg = f"{what}: expected {_describe(expected)}, got {_describe(answer)}."
        if answer.dim() == 2 and answer.shape == expected.shape[::-1] and expected.dim() == 2:
            msg += " It looks transposed: check which axis is which (data points first)."
        elif answer.numel() == 1 and expected.numel() > 1:
            msg += " You reduced everything to one number: keep one value per data point."
        elif answer.dim() == expected.dim() + 1:
            msg += " There is one axis too many: did you forget to sum or log-sum-exp over an axis?"
        elif answer.dim() + 1 == expected.dim():
            msg += " An axis is missing: you reduced over an axis that should stay."
        raise ExerciseError(msg)
    if not torch.isfinite(answer).all():
        n = (~torch.isfinite(answer)).sum().item()
        raise ExerciseError(
            f"{what}: {n} value(s) are NaN or infinite. Work in log space (torch.logsumexp) "
            "instead of multiplying or exponentiating small numbers."
        )

    def close(a, b):
        return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)

    if close(answer, expected):
        return
    for name, wrong in (mistakes or {}).items():
        if close(answer, wrong.to(expected.dtype)):
            raise ExerciseError(f"{what}: {name}")
    if close(-answer, expected):
        raise ExerciseError(f"{what}: the sign is wrong (your values are the negatives of the expected ones).")
    with torch.no_grad():
        if (expected > 0).all() and close(answer, expected.log()):
            raise ExerciseError(f"{what}: your values are the log of the expected ones: exponentiate.")
        if (answer > 0).all() and close(answer.log(), expected):
            raise ExerciseError(
                f"{what}: your values are exp of the expected ones: return the log (a log-density, in nats)."
            )
    err = (answer - expected).abs()
    i = int(err.argmax())
    idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), expected.shape))
    raise ExerciseError(
        f"{what}: values differ from the reference by up to {err.max().item():.3g} "
        f"(at index {idx}: expected {expected.flatten()[i].item():.6g}, got {answer.flatten()[i].item():.6g}); "
        f"the tolerance is rtol={rtol:g}, atol={atol:g}."
    )


def run_check(exercise: str, body: Callable[[], None], hint: str) -> CheckResult:
    """Run a check body; translate NotImplementedError into "not done yet" and wrong answers
    into an ExerciseError that carries the hint."""
    try:
        body()
    except NotImplementedError:
        msg = f"⏳ {exercise}: not done yet. Replace `raise NotImplementedError` with your code, then run the check again."
        print(msg)
        return CheckResult(exercise, False, msg)
    except ExerciseError as exc:
        raise ExerciseError(f"❌ {exercise}: {exc}\nHint: {hint}") from None
    msg = f"✅ {exercise}: correct."
    print(msg)
    return CheckResult(exercise, True, msg)


# --- Notebook 01: latent variable models -------------------------------------------------

def _random_mixture(seed: int, K: int = 4, D: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=g) + 0.2
    weights = weights / weights.sum()
    means = 2 * torch.randn(K, D, generator=g)
    a = torch.randn(K, D, D, generator=g)
    covs = a @ a.transpose(-1, -2) / D + 0.3 * torch.eye(D)
    x = 2 * torch.randn(7, D, generator=g)
    return x, weights, means, covs


def _mixture_cases(x=None, weights=None, means=None, covs=None):
    cases = [_random_mixture(101), _random_mixture(202, K=2, D=2)]
    if x is not None:
        cases.insert(0, (torch.as_tensor(x), torch.as_tensor(weights), torch.as_tensor(means), torch.as_tensor(covs)))
    return cases


def _component_log_probs(x, means, covs):
    return torch.distributions.MultivariateNormal(means, covariance_matrix=covs).log_prob(x[:, None, :])


def mixture_log_density(student_fn, x=None, weights=None, means=None, covs=None) -> CheckResult:
    """Exercise 01.1: student_fn(x (N, D), weights (K,), means (K, D), covs (K, D, D)) -> (N,)
    log p(x_n) = log sum_k pi_k N(x_n; mu_k, Sigma_k)."""

    def body():
        for xs, w, m, c in _mixture_cases(x, weights, means, covs):
            expected = GaussianMixture(w, m, c).log_marginal(xs)
            comp = _component_log_probs(xs, m, c)
            mistakes = {
                "you summed the log-densities over the components; the log of a sum is not a sum of logs: "
                "use torch.logsumexp over the component axis.": (w.log() + comp).sum(-1),
                "the mixture weights pi_k are missing: add log pi_k to each component's log-density.":
                    torch.logsumexp(comp, -1),
                "you averaged the components with equal weights 1/K instead of the mixture weights pi_k.":
                    torch.logsumexp(comp, -1) - torch.log(torch.tensor(float(len(w)))),
                "you took the max over components (a hard assignment) instead of log-sum-exp (a sum over z).":
                    (w.log() + comp).max(-1).values,
            }
            compare(student_fn(xs, w, m, c), expected, "log p(x)", mistakes)

    return run_check("Exercise 01.1 (log-density of a mixture)", body,
                     "log p(x) = logsumexp_k [log pi_k + log N(x; mu_k, Sigma_k)], one value per data point.")


def responsibilities(student_fn, x=None, weights=None, means=None, covs=None) -> CheckResult:
    """Exercise 01.2: student_fn(x (N, D), weights (K,), means (K, D), covs (K, D, D)) -> (N, K)
    p(z = k | x_n) = pi_k N(x_n; mu_k, Sigma_k) / sum_j pi_j N(x_n; mu_j, Sigma_j)."""

    def body():
        for xs, w, m, c in _mixture_cases(x, weights, means, covs):
            expected = GaussianMixture(w, m, c).posterior(xs)
            joint = w.log() + _component_log_probs(xs, m, c)
            mistakes = {
                "your rows do not sum to 1 over the components: you returned the joint p(x, z=k); "
                "divide by p(x) = sum_k p(x, z=k).": joint.exp(),
                "you normalized over the data points (axis 0); responsibilities sum to 1 over the "
                "components k for each data point.": torch.softmax(joint, 0),
                "the prior weights pi_k are missing from Bayes' rule.":
                    torch.softmax(_component_log_probs(xs, m, c), -1),
                "you returned log-responsibilities; exponentiate them.": torch.log_softmax(joint, -1),
            }
            compare(student_fn(xs, w, m, c), expected, "p(z|x)", mistakes)

    return run_check("Exercise 01.2 (posterior responsibilities)", body,
                     "Bayes: p(z=k|x) = p(x, z=k) / p(x); in log space, torch.softmax(log pi + log N, dim=-1).")


def m_step_means(student_fn, x=None, resp=None) -> CheckResult:
    """Exercise 01.3: student_fn(x (N, D), resp (N, K)) -> (K, D) new means
    mu_k = sum_n r_nk x_n / sum_n r_nk."""

    def body():
        g = torch.Generator().manual_seed(7)
        cases = [(2 * torch.randn(9, 3, generator=g), torch.softmax(torch.randn(9, 4, generator=g), -1)),
                 (torch.randn(5, 2, generator=g), torch.softmax(3 * torch.randn(5, 3, generator=g), -1))]
        if x is not None:
            cases.insert(0, (torch.as_tensor(x), torch.as_tensor(resp)))
        for xs, r in cases:
            expected = r.T @ xs / r.sum(0)[:, None]
            mistakes = {
                "you forgot to divide by N_k = sum_n r_nk (the effective number of points of component k).":
                    r.T @ xs,
                "you divided by the total number of points N instead of N_k = sum_n r_nk.": r.T @ xs / xs.shape[0],
                "you took the plain average of all points; weight each point by its responsibility r_nk.":
                    xs.mean(0).expand(r.shape[1], -1),
            }
            compare(student_fn(xs, r), expected, "new means", mistakes)

    return run_check("Exercise 01.3 (M-step for the means)", body,
                     "mu_k = sum_n r_nk x_n / sum_n r_nk; in matrix form resp.T @ x / resp.sum(0)[:, None].")
