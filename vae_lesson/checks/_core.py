"""Exercise checks: instant feedback that never lets a wrong answer pass.

Convention (every notebook): an exercise is a Markdown cell with the task, a code cell tagged
``solution`` that defines the student's function, and a code cell that calls its check,
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


def use_reference(student_fn) -> str:
    """While an exercise is not done, put the reference implementation (``checks.reference``)
    into the notebook under the student's function name, so that later cells still run.
    Returns the note to show ("" outside a notebook or when there is no reference)."""
    name = getattr(student_fn, "__name__", None)
    from . import reference

    fallback = getattr(reference, name, None) if name else None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return ""
    shell = get_ipython()
    if fallback is None or shell is None:
        return ""
    shell.user_ns[name] = fallback
    return (f"\n   Until then, the cells below use the reference `{name}` from vae_lesson, so the rest of "
            f"the notebook runs. Your own `{name}` takes over when you re-run its cell.")


def run_check(exercise: str, body: Callable[[], None], hint: str, student_fn=None) -> CheckResult:
    """Run a check body; translate NotImplementedError into "not done yet" (and, in a notebook,
    fall back to the reference implementation of ``student_fn``) and wrong answers into an
    ExerciseError that carries the hint."""
    try:
        body()
    except NotImplementedError:
        msg = f"⏳ {exercise}: not done yet. Replace `raise NotImplementedError` with your code, then run the check again."
        if student_fn is not None:
            msg += use_reference(student_fn)
        print(msg)
        return CheckResult(exercise, False, msg)
    except ExerciseError as exc:
        raise ExerciseError(f"❌ {exercise}: {exc}\nHint: {hint}") from None
    msg = f"✅ {exercise}: correct."
    print(msg)
    return CheckResult(exercise, True, msg)
