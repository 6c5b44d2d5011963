"""Checks for the exercises of notebook 05 (gradients through sampling)."""
from __future__ import annotations

import torch

from ._core import (
    CheckResult, ExerciseError, compare, mark_used_later, register_signatures, register_solutions, run_check,
)

HINTS = {
    "05.1": "the randomness is all in eps; mean and std only shift and scale it. Use + and * on tensors "
            "(no .sample(), torch.normal, NumPy or .item()), so autograd can follow z back to mean and std.",
    "05.2": "you need a number whose gradient with respect to phi is the average of f(z_k) times the gradient of "
            "log q(z_k). Which of the two inputs must carry the gradient, and which must be treated as a constant?",
    "05.3": "b_k must not depend on f(z_k): it is the plain average of f over the OTHER samples. How many "
            "others are there, and how can the total over all samples help?",
}
SOLUTIONS = {
    "05.1": "z = mean + std * eps",
    "05.2": "return (f_values.detach() * log_q).mean()",
    "05.3": "K = f_values.shape[0]\nreturn (f_values.sum() - f_values) / (K - 1)",
}
register_solutions(SOLUTIONS)  # checks.solution("NN.M") works before any check ran
SIGNATURES = {
    "05.1": "mean (d,), std (d,), eps (K, d) -> (K, d)",
    "05.2": "f_values (K,), log_q (K,) -> ()",
    "05.3": "f_values (K,) -> (K,)",
}
register_signatures(SIGNATURES)
mark_used_later("05.1")  # 05.2's and 05.3's functions are not used by later cells


def reparameterized_sample(student_fn) -> CheckResult:
    """Exercise 05.1: student_fn(mean (d,), std (d,), eps (K, d)) -> z (K, d) = mean + std * eps,
    differentiable with respect to mean and std."""

    def body(student_fn):
        g = torch.Generator().manual_seed(51)
        for K, d in ((5, 3), (1, 1), (4, 7)):
            mean = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_(True)
            std = (torch.rand(d, generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
            eps = torch.randn(K, d, generator=g, dtype=torch.float64)
            z = student_fn(mean, std, eps)
            if not isinstance(z, torch.Tensor):
                raise ExerciseError(f"return a torch tensor, not {type(z).__name__}: converting to NumPy, a list "
                                    "or a float cuts the sample off from mean and std, so no gradient can flow")
            if z.shape == eps.shape and not z.requires_grad:
                raise ExerciseError("no gradient flows back to mean and std: the sample was detached. Build z from "
                                    "mean, std and eps with + and * (no .sample(), .detach(), torch.normal or .item()).")
            expected = (mean + std * eps).detach()
            compare(z, expected, "z", {
                "you multiplied eps by the variance; the scale is the standard deviation: z = mean + std * eps.":
                    (mean + std**2 * eps).detach(),
                "the noise must be scaled by std: z = mean + std * eps.": (mean + eps).detach(),
                "mean and std are swapped: z = mean + std * eps.": (std + mean * eps).detach(),
            }, rtol=1e-9, atol=1e-12)
            (z.sum()).backward()
            compare(mean.grad, torch.full((d,), float(K), dtype=torch.float64), "d(sum z)/d mean", rtol=1e-9, atol=1e-12)
            compare(std.grad, eps.sum(0), "d(sum z)/d std", rtol=1e-9, atol=1e-12)

    return run_check("Exercise 05.1 (the reparameterized sample)", body, HINTS["05.1"], student_fn,
                     solution=SOLUTIONS["05.1"])


def score_function_surrogate(student_fn) -> CheckResult:
    """Exercise 05.2: student_fn(f_values (K,), log_q (K,)) -> a scalar whose gradient with respect to
    phi (through log_q) is the score-function estimate (1/K) sum_k f(z_k) grad log q(z_k; phi)."""

    def body(student_fn):
        g = torch.Generator().manual_seed(52)
        for K, f_has_graph in ((6, False), (1, False), (40, False), (8, True)):
            phi = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)
            features = torch.randn(K, 3, generator=g, dtype=torch.float64)
            log_q = features @ phi - torch.logsumexp(features @ phi, 0)  # any differentiable log q(z_k; phi)
            f_values = torch.randn(K, generator=g, dtype=torch.float64) * 3 + 2  # f(z_k)
            if f_has_graph:  # f(z_k) computed from samples that still carry phi's graph, as happens in practice
                f_values = f_values + (features @ phi) ** 2
            out = student_fn(f_values, log_q)
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                raise ExerciseError("return one number (a scalar tensor): average over the samples")
            if not out.requires_grad:
                raise ExerciseError("your result does not depend on phi: the gradient must flow through log_q "
                                    "(do not detach log q)")
            got = torch.autograd.grad(out, phi, allow_unused=True, retain_graph=True)[0]
            if got is None:
                raise ExerciseError("your result does not depend on phi through log_q")
            fd = f_values.detach()
            expected = torch.autograd.grad((fd * log_q).mean(), phi, retain_graph=True)[0]
            wrong = {
                "f(z_k) carries a gradient here (it was computed from samples connected to phi), and your surrogate "
                "lets it through: then autograd adds the gradient of f itself, which the score-function estimator "
                "does not have. Treat f(z_k) as a constant weight: f_values.detach().":
                    torch.autograd.grad((f_values * log_q).mean(), phi, retain_graph=True)[0],
                "you differentiated q instead of log q: the score function is grad log q = grad q / q.":
                    torch.autograd.grad((fd * log_q.exp()).mean(), phi, retain_graph=True)[0],
                "the product of the averages is not the average of the products: average f(z_k) * log q(z_k).":
                    torch.autograd.grad(fd.mean() * log_q.mean(), phi, retain_graph=True)[0],
            }
            # f(z) is data without gradient: a route that rounds it to float32 (f_values.float()) is right, and its
            # gradient (float64 if log_q is) carries float32 round-off: compare at float32 precision
            compare(got.float(), expected, "the gradient of your surrogate", wrong, rtol=1e-8, atol=1e-10)

    return run_check("Exercise 05.2 (the score-function surrogate)", body, HINTS["05.2"], student_fn,
                     solution=SOLUTIONS["05.2"])


def leave_one_out_baseline(student_fn) -> CheckResult:
    """Exercise 05.3: student_fn(f_values (K,)) -> (K,), b_k = mean of f over the other K - 1 samples."""

    def body(student_fn):
        g = torch.Generator().manual_seed(53)
        for K in (5, 2, 30):
            f = torch.randn(K, generator=g, dtype=torch.float64) * 4 + 1
            expected = (f.sum() - f) / (K - 1)
            compare(student_fn(f.clone()), expected, "baseline", {
                "your baseline includes the sample itself (the plain mean): b_k then depends on z_k and the "
                "estimator is biased. Leave sample k out.": f.mean().expand(K),
                "divide by K - 1, the number of other samples, not by K.": (f.sum() - f) / K,
                "that is the sum of the other samples; take their mean.": f.sum() - f,
            }, rtol=1e-9, atol=1e-12)

    return run_check("Exercise 05.3 (a leave-one-out baseline)", body, HINTS["05.3"], student_fn,
                     solution=SOLUTIONS["05.3"])
