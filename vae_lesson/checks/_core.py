"""Exercise checks: instant feedback that never lets a wrong answer pass.

Convention (every notebook): an exercise is a Markdown cell with the task, a code cell tagged
``solution`` that defines the student's function, and a code cell that calls its check,
e.g. ``checks.mixture_log_density(mixture_log_density)``.

A check calls the student's function on the notebook's own inputs *and* on fresh random
inputs (so hard-coded answers fail), compares with the reference in ``vae_lesson``, and
- prints a pass line and returns a ``CheckResult`` when the answer is right;
- prints "not done yet" (and returns, without raising) when the function is still the scaffold,
  so "Run all" goes on in a student copy; in a notebook the reference implementation takes the
  student's name meanwhile (``use_reference``);
- raises ``ExerciseError`` with what is wrong (shape, sign, a known mistake, the size of the
  error) and an idea-level hint otherwise. A failing check never prints the solution, and shows
  nothing but its message: ``ExerciseError._render_traceback_`` keeps IPython (and so JupyterLab and
  nbgrader's feedback pages) from printing a traceback through the check's own code.
- explains an error raised inside the student's function (``StudentError``): what was raised, at
  which line of the student's cell, the shapes it was given and the shape it must return.

Writing a check (the interface the per-notebook modules ``nbNN`` use)
--------------------------------------------------------------------
- ``run_check(exercise, body, hint, student_fn=None, solution=None, todo=None)``: ``exercise`` starts
  with "Exercise NN.M (...)"; ``hint`` says what the idea is and where to look, never the code;
  ``solution`` (code) is stored, never printed by a check; ``todo`` is what "not done yet" asks for
  when the scaffold is not a ``raise`` line (02.3's values). ``body(student_fn)`` receives the
  student's function guarded (``GuardedStudentFunction``): call that one.
- Signatures: each ``nbNN`` module registers what each function is given and returns,
  ``register_signatures({"01.3": "x (N, D), resp (N, C) -> (C, D)"})``; the error message of a
  guarded call uses it, and every exercise's Markdown shows ``Signature.markdown()`` (a test
  compares them). ``mark_used_later("01.1", ...)``: the exercises whose function later cells call
  (only those say that the reference stands in; a test reads the notebooks to keep it true).
- What the notebook cannot use, the check refuses with a reason: ``require_tensor`` (later cells
  compute with the result), ``require_float64`` (the notebook checks an identity to 1e-8 nats).
- Solutions: each ``nbNN`` module registers its solutions AT IMPORT with
  ``register_solution("03.1", "z = q.sample(...) ...")`` (module level, next to the check), so
  that ``checks.solution("03.1")`` works before the check ever ran. The registry is the dict
  ``SOLUTIONS`` (id -> text). Passing ``solution=`` to ``run_check`` registers it too.
- "Not done yet" is ONLY: ``NotImplementedError(NOT_DONE)`` raised anywhere (the scaffold's line,
  ``raise NotImplementedError("✏️ your code here")``), or a bare ``NotImplementedError`` raised
  directly by the student's function (``student_fn``), by the check's own ``body`` (e.g. 02.3's
  "still None": better raise ``NotImplementedError(NOT_DONE)`` there), or by code the student
  wrote in the notebook. Any other NotImplementedError (torch has no KL formula for a pair,
  ``Categorical.rsample``...) is an ExerciseError that quotes torch; the student's function is
  then never replaced by the reference.
- ``compare(answer, expected, what, mistakes=None, rtol=1e-4, atol=1e-5, scale=None, inputs=())``:
  the given rtol/atol are the float64 tolerances. When the student's answer (or any tensor in
  ``inputs``, or ``expected``) is float32/16, or the answer is a Python list/tuple/number, the
  tolerances widen to float32 round-off: rtol >= FLOAT32_RTOL and atol >= FLOAT32_RTOL * scale,
  where ``scale`` (default max(1, max|expected|)) is the magnitude of the intermediate terms
  (pass it when a result is a small difference or sum of large terms).
- ``copies(*objs)`` / ``call_student(student_fn, *args)``: pass the student deep copies of the
  notebook's tensors (tensors, arrays, modules, lists/tuples/dicts of them), so an in-place edit
  (``x.mul_(0)``) cannot change the notebook's data. A leaf tensor that requires grad is copied
  to a NEW leaf: read ``.grad`` from the copy.

Modes
-----
- Solutions: ``checks.solution("03.1")`` prints and returns the solution; refused when the env
  var ``VAE_LESSON_NO_SOLUTIONS=1``, in graded mode, or after ``solutions_enabled(False)``.
- Graded (nbgrader): env var ``VAE_LESSON_GRADED=1`` or ``graded(True)``. A not-done exercise
  still installs the reference fallback (later cells run) and then raises ``ExerciseNotDone``
  ("not done: 0 points"), so the autograded test cell fails; solutions are off.
"""
from __future__ import annotations

import copy
import inspect
import linecache
import math
import os
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

NOT_DONE = "✏️ your code here"
"""The scaffold's marker: ``raise NotImplementedError(NOT_DONE)`` means "not done yet"."""

FLOAT32_RTOL = 256 * torch.finfo(torch.float32).eps  # about 3e-5: float32 round-off over a few hundred operations

SOLUTIONS: dict[str, str] = {}
"""Exercise id ("03.1") -> solution code, filled at import by the ``nbNN`` modules."""

SIGNATURES: dict[str, "Signature"] = {}
"""Exercise id -> the shapes of the student function's arguments and result (``register_signatures``)."""

USED_LATER: set[str] = set()
"""Exercise ids whose function later cells of the notebook call (so the reference stands in meanwhile)."""

_GRADED: bool | None = None  # None: follow the environment variable
_SOLUTIONS_ON: bool | None = None


class ExerciseError(AssertionError):
    """The answer to an exercise is wrong; the message says how and gives a hint.

    In a notebook IPython shows an exception through its ``_render_traceback_`` when it has one: an
    ExerciseError shows its message and nothing else, so that no line of the check's own code (the
    reference computation, the table of known mistakes) reaches the student's screen or an nbgrader
    feedback page. Where the student's own code raised, the message quotes that line itself."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines() or [type(self).__name__]


class ExerciseNotDone(ExerciseError):
    """Graded mode only: the exercise is still the scaffold, so its test cell earns 0 points."""


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing when a check is a cell's last line: the check already printed its line."""


# --- modes and solutions ----------------------------------------------------------------------

def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def graded(on: bool | None = None) -> bool:
    """Graded mode (for nbgrader): ``graded(True)`` / ``graded(False)`` switch it for this
    session, ``graded(None)`` goes back to the env var ``VAE_LESSON_GRADED``. Returns whether it is on."""
    global _GRADED
    if on is not None:
        _GRADED = bool(on)
    return _GRADED if _GRADED is not None else _env_flag("VAE_LESSON_GRADED")


def reset_modes() -> None:
    """Forget ``graded(...)`` and ``solutions_enabled(...)``: follow the environment variables again."""
    global _GRADED, _SOLUTIONS_ON
    _GRADED = _SOLUTIONS_ON = None


def solutions_enabled(on: bool | None = None) -> bool:
    """Whether ``solution(...)`` may show solutions: never in graded mode nor with the env var
    ``VAE_LESSON_NO_SOLUTIONS=1``; ``solutions_enabled(False)`` turns them off for this session."""
    global _SOLUTIONS_ON
    if on is not None:
        _SOLUTIONS_ON = bool(on)
    if graded() or _env_flag("VAE_LESSON_NO_SOLUTIONS"):
        return False
    return _SOLUTIONS_ON if _SOLUTIONS_ON is not None else True


def exercise_id(exercise: str) -> str | None:
    """ "Exercise 03.1 (Monte Carlo ELBO)" -> "03.1" (None when there is no such number)."""
    m = re.search(r"(\d{2}\.\d+)", exercise)
    return m.group(1) if m else None


def register_solution(exercise: str, text: str) -> None:
    """Store the solution of an exercise ("03.1" or "Exercise 03.1 (...)"); it is shown only by
    ``solution(...)``, never by a failing check."""
    key = exercise_id(exercise)
    if key is None:
        raise ValueError(f"register_solution: expected an exercise id like '03.1', got {exercise!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"register_solution({key!r}): the solution must be a non-empty string")
    SOLUTIONS[key] = text.strip()


def register_solutions(solutions: Mapping[str, str]) -> None:
    """``register_solution`` for every (id, text) of a notebook's table, at import, so that
    ``checks.solution("NN.M")`` works before any check has run."""
    for key, text in solutions.items():
        register_solution(key, text)


def solution(exercise: str) -> str:
    """Print and return the solution of an exercise, e.g. ``checks.solution("03.1")``.
    Refused with PermissionError when solutions are turned off (``solutions_enabled``); an
    unknown id raises ValueError listing the known ones."""
    key = exercise_id(str(exercise))
    if key is None or key not in SOLUTIONS:
        known = ", ".join(sorted(SOLUTIONS)) or "none"
        raise ValueError(f"no exercise {exercise!r}; the exercises with solutions are: {known}")
    if not solutions_enabled():
        why = ("this is a graded copy" if graded() else
               "the instructor turned them off (VAE_LESSON_NO_SOLUTIONS)" if _env_flag("VAE_LESSON_NO_SOLUTIONS")
               else "they were turned off with checks.solutions_enabled(False)")
        raise PermissionError(f"solutions are not available here: {why}. Use the hint of the check, "
                              "or ask your instructor.")
    text = SOLUTIONS[key]
    print(f"Solution of exercise {key}:\n{text}")
    return text


# --- what the student's function is given and must return -------------------------------------

def _split_top(text: str) -> list[str]:
    """Split at the commas outside parentheses: "x (N, D), b (D,)" -> ["x (N, D)", "b (D,)"]."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_DIMS = re.compile(r"^\s*(?:[A-Za-z_]\w*|\d+)?(?:\s*,\s*(?:[A-Za-z_]\w*|\d+))*\s*,?\s*$")


def _dims(inner: str) -> tuple[str, ...] | None:
    """"N, D" -> ("N", "D"); "N," -> ("N",); "" -> () (a scalar); "a number" -> None (words, not a shape)."""
    if not _DIMS.match(inner):
        return None
    return tuple(t.strip() for t in inner.split(",") if t.strip())


def _item(text: str) -> tuple[str, tuple[str, ...] | None, str]:
    """"x (N, D)" -> ("x", ("N", "D"), "(N, D)"); "(N,)" -> ("", ("N",), "(N,)"); "model (a VAE)" ->
    ("model", None, "(a VAE)"); words alone -> ("", None, words)."""
    m = re.match(r"^\s*(.*?)\s*\((.*)\)\s*$", text)
    if not m:
        return "", None, text.strip()
    name, inner = m.group(1), m.group(2)
    return name, _dims(inner), f"({inner})"


@dataclass(frozen=True)
class Signature:
    """What a student function is given and must return, e.g.
    ``Signature("x (N, D), resp (N, C) -> (C, D)")``: each argument with its shape in symbols (or a few
    words: ``model (a VAE)``), and the result. ``derived`` gives symbols no argument's shape fixes,
    from the arguments (e.g. M, the number of hidden pixels)."""

    text: str
    derived: Mapping[str, Callable[[dict], int]] | None = None

    @property
    def arguments(self) -> list[tuple[str, tuple[str, ...] | None, str]]:
        return [_item(t) for t in _split_top(self.text.split("->")[0])]

    @property
    def result(self) -> list[tuple[str, tuple[str, ...] | None, str]]:
        right = self.text.split("->", 1)[1].strip() if "->" in self.text else ""
        return [_item(t) for t in _split_top(right)] if right else []

    def markdown(self) -> str:
        """The line an exercise's Markdown shows: "**Shapes:** `x` (N, D), `resp` (N, C) → (C, D)"."""
        def show(items):
            return ", ".join((f"`{n}` {d}" if n else d) for n, _, d in items)
        out = f"**Shapes:** {show(self.arguments)}"
        return out + (f" → {show(self.result)}" if self.result else "")

    def bind(self, values: dict) -> dict[str, int]:
        """The sizes the symbols take for these argument values (name -> value)."""
        sizes: dict[str, int] = {}
        for name, dims, _ in self.arguments:
            value = values.get(name)
            shape = getattr(value, "shape", None)
            if dims is None or shape is None or len(dims) != len(shape):
                continue
            for sym, n in zip(dims, shape):
                if not sym.isdigit():
                    sizes.setdefault(sym, int(n))
        for sym, rule in (self.derived or {}).items():
            try:
                sizes[sym] = int(rule(values))
            except Exception:  # noqa: BLE001  (the arguments were not what the rule expects)
                pass
        return sizes

    def describe_call(self, values: dict) -> str:
        """"It was given x (9, 3) = (N, D) and resp (9, 4) = (N, C); it must return (C, D) = (4, 3)."."""
        sizes = self.bind(values)

        def concrete(dims):
            got = [str(sizes.get(d, d)) for d in dims]
            return "(" + ", ".join(got) + ("," if len(got) == 1 else "") + ")"

        given = []
        for name, dims, words in self.arguments:
            value = values.get(name, None)
            given.append(f"{name} {_value_description(value)}" + (f" = {words}" if dims is not None and
                                                                   isinstance(value, torch.Tensor) else ""))
        text = "It was given " + ", ".join(given)
        if self.result:
            parts = []
            for name, dims, words in self.result:
                label = f"{name} " if name else ""
                parts.append(f"{label}{words}" + (f" = {concrete(dims)}" if dims is not None else ""))
            text += "; it must return " + ", ".join(parts)
        return text + "."


def _value_description(value) -> str:
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        return f"of shape {shape}" if shape else "(a scalar tensor)"
    if isinstance(value, np.ndarray):
        return f"(a NumPy array of shape {value.shape})"
    if isinstance(value, torch.nn.Module):
        return f"(a {type(value).__name__})"
    if isinstance(value, torch.optim.Optimizer):
        return f"(a torch.optim.{type(value).__name__})"
    if isinstance(value, torch.distributions.Distribution):
        return (f"(a {type(value).__name__} distribution, batch shape {tuple(value.batch_shape)}, "
                f"event shape {tuple(value.event_shape)})")
    if isinstance(value, (bool, int, float)):
        return f"= {value!r}"
    if callable(value):
        return "(a function)"
    return f"(a {type(value).__name__})"


def register_signatures(signatures: Mapping[str, "Signature | str"]) -> None:
    """Store what each exercise's function is given and returns ("01.3" -> Signature or its text), at
    import, for the message of an error raised inside the student's function and for the notebooks'
    "Shapes:" lines (tests/test_exercise_words.py compares the two)."""
    for key, sig in signatures.items():
        SIGNATURES[key] = sig if isinstance(sig, Signature) else Signature(sig)


def mark_used_later(*keys: str) -> None:
    """Exercises whose function later cells of their notebook call: while one is not done, its check says
    that the reference stands in for it."""
    USED_LATER.update(keys)


class StudentError(ExerciseError):
    """The student's function raised (``original``: its exception); the message says where and why."""

    def __init__(self, message: str, original: BaseException):
        super().__init__(message)
        self.original = original


def _in_cell(filename: str) -> bool:
    return "ipykernel_" in filename or filename.startswith("<ipython-input")


def _student_line(exc: BaseException) -> tuple[int, str, str] | None:
    """(line number, the line's text, where) of the innermost frame of the student's own code (outside
    torch, Python and vae_lesson) in the exception's traceback; None if there is none."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if not _in_library(tb.tb_frame):
            found = tb
        tb = tb.tb_next
    if found is None:
        return None
    filename = found.tb_frame.f_code.co_filename
    text = linecache.getline(filename, found.tb_lineno).strip()
    where = "your cell" if _in_cell(filename) else Path(filename).name
    return found.tb_lineno, text, where


def student_error_message(exc: BaseException, signature: Signature | None, values: dict) -> str:
    """"your function raised RuntimeError at line 3 of your cell: <torch's message>", the line, and the
    shapes it was given and must return."""
    detail = " ".join(str(exc).split()) or "(no message)"
    if len(detail) > 400:
        detail = detail[:400] + " ..."
    where = _student_line(exc)
    if where is None:
        head = f"your function raised {type(exc).__name__}: {detail}"
    else:
        line, text, place = where
        head = f"your function raised {type(exc).__name__} at line {line} of {place}: {detail}"
        if text:
            head += f"\n   line {line}: {text}"
    if signature is not None:
        head += "\n" + signature.describe_call(values)
    return head


class GuardedStudentFunction:
    """The student's function as a check calls it: an exception raised inside it (a shape error from
    torch, a typo) becomes a ``StudentError`` that says where and what it was given, instead of a
    traceback through the check. "Not done yet" (NotImplementedError) and ExerciseError pass through."""

    def __init__(self, fn: Callable, signature: Signature | None):
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "your function")
        self.signature = signature

    def __call__(self, *args, **kwargs):
        try:
            return self.__wrapped__(*args, **kwargs)
        except (NotImplementedError, ExerciseError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001  (any error in the student's code is explained)
            raise StudentError(student_error_message(exc, self.signature, self._values(args, kwargs)), exc) from None

    def _values(self, args, kwargs) -> dict:
        """name -> value, under the exercise's names (the student may have named the parameters otherwise)."""
        if self.signature is None:
            try:
                return dict(inspect.signature(self.__wrapped__).bind_partial(*args, **kwargs).arguments)
            except (TypeError, ValueError):
                return dict(kwargs)
        values = {name: value for (name, _, _), value in zip(self.signature.arguments, args)}
        values.update(kwargs)
        return values


# --- copies ----------------------------------------------------------------------------------

def _copy(obj):
    if isinstance(obj, torch.Tensor):
        if obj.requires_grad and obj.is_leaf:
            return obj.detach().clone().requires_grad_(True)
        return obj.clone()
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, torch.nn.Module):
        return copy.deepcopy(obj)
    if isinstance(obj, list):
        return [_copy(o) for o in obj]
    if isinstance(obj, tuple):
        return type(obj)(*(_copy(o) for o in obj)) if hasattr(obj, "_fields") else tuple(_copy(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, (int, float, complex, str, bytes, bool, type(None))) or callable(obj):
        return obj
    try:
        return copy.deepcopy(obj)
    except Exception:  # noqa: BLE001  (e.g. a distribution holding non-leaf tensors): pass it as it is
        return obj


def copies(*objs):
    """Deep copies of the notebook's inputs for a student's function: tensors are cloned (a leaf
    that requires grad becomes a new leaf: read its ``.grad`` from the copy), arrays copied,
    modules deep-copied, lists/tuples/dicts copied element-wise; functions and numbers are passed
    as they are. One argument -> its copy; several -> a tuple of copies."""
    out = tuple(_copy(o) for o in objs)
    return out[0] if len(out) == 1 else out


def call_student(student_fn, *args, **kwargs):
    """``student_fn`` called on copies of ``args``/``kwargs``: its in-place edits stay its own."""
    return student_fn(*(_copy(a) for a in args), **{k: _copy(v) for k, v in kwargs.items()})


# --- compare ---------------------------------------------------------------------------------

def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}"


_LOW = (torch.float32, torch.float16, torch.bfloat16)


def _as_tensor(answer, what: str):
    """(tensor, low_precision, origin): the answer as a tensor, whether it only carries float32
    precision (a float32/16 tensor, or a Python list/number: treated alike), and what it was."""
    if isinstance(answer, torch.Tensor):
        return answer.detach(), answer.dtype in _LOW, f"{answer.dtype}"
    if isinstance(answer, np.ndarray) or isinstance(answer, np.generic):
        t = torch.as_tensor(np.asarray(answer))
        return t, t.dtype in _LOW, f"a NumPy {t.dtype} array"
    kind = type(answer).__name__
    if isinstance(answer, (list, tuple)) and answer and all(isinstance(a, torch.Tensor) for a in answer):
        try:
            t = torch.stack([a.detach() for a in answer])
        except Exception:  # noqa: BLE001
            raise ExerciseError(f"{what}: expected a torch tensor, got a {kind} of tensors of different shapes") from None
        return t, True, f"a {kind} of tensors"
    try:
        t = torch.as_tensor(answer, dtype=torch.float64)
    except Exception:  # noqa: BLE001
        raise ExerciseError(f"{what}: expected a torch tensor, got {kind}") from None
    return t, True, f"a Python {kind}"


def tolerances(low_precision: bool, expected: torch.Tensor, rtol: float, atol: float,
               scale: float | None = None) -> tuple[float, float]:
    """(rtol, atol) for comparing with ``expected``: as given for float64 work; for float32 work
    widened to rtol >= FLOAT32_RTOL and atol >= FLOAT32_RTOL * scale, scale = max(1, max|expected|)
    unless given (the size of the terms the result is computed from)."""
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"tolerances: rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"tolerances: scale is the size of the terms, a positive number; got {scale}")
    if not low_precision:
        return rtol, atol
    if scale is None:
        finite = expected[torch.isfinite(expected)]
        scale = max(1.0, finite.abs().max().item()) if finite.numel() else 1.0
    return max(rtol, FLOAT32_RTOL), max(atol, FLOAT32_RTOL * float(scale))


def compare(
    answer,
    expected: torch.Tensor,
    what: str,
    mistakes: Mapping[str, torch.Tensor] | list[tuple[str, torch.Tensor]] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    scale: float | None = None,
    inputs=(),
) -> None:
    """Raise ExerciseError unless ``answer`` matches ``expected``: same shape and, elementwise,
    |answer - expected| <= atol + rtol |expected|.

    ``rtol``/``atol`` are for float64 work; when the answer is float32/16 (or a Python list or
    number), or ``expected`` or any tensor in ``inputs`` is, the float32 tolerances of
    ``tolerances`` apply (``scale``: magnitude of the terms, see there). The message diagnoses
    the usual slips: ``None`` returned, wrong shape (transposed, an axis reduced or kept), NaN,
    wrong sign, a forgotten log or exp, and any of the exercise's known ``mistakes`` (name ->
    what that mistake would return); otherwise it shows the element that breaks the tolerance
    by most, with its index, both values to 10 significant digits, and the tolerance.
    """
    if answer is None:
        raise ExerciseError(f"{what}: your function returned None. Did you forget `return`?")
    expected = torch.as_tensor(expected).detach()
    answer, low, origin = _as_tensor(answer, what)
    if answer.dtype.is_complex:
        raise ExerciseError(f"{what}: expected real numbers, got {answer.dtype}")
    if not low and (expected.dtype in _LOW or any(isinstance(t, torch.Tensor) and t.dtype in _LOW
                                                  for t in (inputs or ()))):
        low, origin = True, "the inputs are float32"
    work = torch.float64  # compare in float64 so that the comparison itself adds no round-off
    answer = answer.to(work)
    expected = expected.to(work)
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
    rt, at = tolerances(low, expected, rtol, atol, scale)

    def close(a, b):
        return a.shape == b.shape and bool(torch.isclose(a, b, rtol=rt, atol=at).all())

    if close(answer, expected):
        return
    pairs = mistakes.items() if isinstance(mistakes, Mapping) else (mistakes or ())
    for name, wrong in pairs:  # a mapping, or (message, value) pairs when one message fits several values
        wrong = torch.as_tensor(wrong).detach().to(work)
        if close(answer, wrong):
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
    raise ExerciseError(differ_message(answer, expected, what, rt, at, low, origin))


def require_tensor(answer, what: str) -> None:
    """For an exercise whose function the notebook's later cells call: the answer must be a torch tensor
    (they compute with it: ``.exp()``, ``.mean()``, ``.item()``), not a list or a number."""
    if answer is not None and not isinstance(answer, torch.Tensor):
        raise ExerciseError(f"{what}: return a torch tensor, not a {type(answer).__name__}: the cells below call "
                            "your function and compute with its result (.exp(), .mean(), .item()).")


def require_float64(answer, what: str, why: str) -> None:
    """For an exercise whose result the notebook checks to float64 precision (an identity to 1e-8 nats or
    closer): a float32 (or lower) answer is refused, with ``why``, instead of failing a later cell."""
    if isinstance(answer, torch.Tensor) and answer.dtype in _LOW:
        raise ExerciseError(
            f"{what}: your result is {answer.dtype}, but the inputs are float64. {why} float32 keeps about 7 "
            "significant digits, so keep the inputs' dtype: no .float(), and create any new tensor with "
            "dtype=x.dtype (torch.zeros(n) is float32 by default).")


def differ_message(answer: torch.Tensor, expected: torch.Tensor, what: str, rtol: float, atol: float,
                   low_precision: bool = False, origin: str = "") -> str:
    """The "values differ" message: the element that breaks |a - e| <= atol + rtol |e| by most."""
    err = (answer - expected).abs()
    allowed = atol + rtol * expected.abs()
    i = int((err - allowed).flatten().argmax())
    idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), expected.shape)) if expected.dim() else ()
    n_bad = int((err > allowed).sum())
    e, a = expected.flatten()[i].item(), answer.flatten()[i].item()
    because = origin if origin.startswith("the inputs") else f"your result is {origin}"
    which = (f"float32 tolerance, as {because}" if low_precision and origin
             else "float32 tolerance" if low_precision else "float64 tolerance")
    return (f"{what}: values differ from the reference by more than the tolerance at {n_bad} of {expected.numel()} "
            f"element(s). Worst at index {idx}: expected {e:.10g}, got {a:.10g} (difference {abs(a - e):.3g}, "
            f"allowed {allowed.flatten()[i].item():.3g}: rtol={rtol:.3g}, atol={atol:.3g}, {which}).")


# --- running a check --------------------------------------------------------------------------

def use_reference(student_fn, key: str | None = None) -> str:
    """While an exercise is not done, put the reference implementation (``checks.reference``)
    into the notebook under the student's function name, so that later cells still run.
    Returns the note to show: "" outside a notebook, when there is no reference, or when no later
    cell of the notebook calls the function (``USED_LATER``; tests/test_exercise_words.py reads the
    notebooks to keep that set true)."""
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
    if key is not None and key not in USED_LATER:
        return ""
    return (f"\n   Until then, the cells below use the reference `{name}` from vae_lesson, so the rest of "
            f"the notebook runs. Your own `{name}` takes over when you re-run its cell.")


def _library_dirs() -> tuple[str, ...]:
    dirs = {str(Path(torch.__file__).resolve().parent), str(Path(__file__).resolve().parents[1])}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(str(Path(sysconfig.get_paths()[key]).resolve()))
        except (KeyError, OSError):  # pragma: no cover
            pass
    return tuple(sorted(dirs))


def _innermost_frame(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame if tb is not None else None


def _in_library(frame) -> bool:
    try:
        path = str(Path(frame.f_code.co_filename).resolve())
    except (OSError, ValueError):  # pragma: no cover
        return False
    return path.startswith(_library_dirs())


def is_not_done(exc: NotImplementedError, student_fn=None, body=None) -> bool:
    """Whether a NotImplementedError means "the exercise is not done yet": it carries NOT_DONE,
    or it is bare and raised directly by ``student_fn``, by the check's ``body``, or by other code
    outside any library (the student's notebook). Torch's own NotImplementedErrors are not."""
    if exc.args and exc.args[0] == NOT_DONE:
        return True
    if exc.args and any(str(a).strip() for a in exc.args):
        return False
    frame = _innermost_frame(exc)
    if frame is None:
        return False
    own = {getattr(f, "__code__", None) for f in (student_fn, body)} - {None}
    if frame.f_code in own:
        return True
    return not _in_library(frame)


def _where(exc: BaseException) -> str:
    """Describe where a library raised: "inside torch (`Categorical.rsample`)"."""
    frame = _innermost_frame(exc)
    if frame is None:
        return ""
    torch_dir = str(Path(torch.__file__).resolve().parent)
    lib = "torch" if str(Path(frame.f_code.co_filename).resolve()).startswith(torch_dir) else "a library"
    owner = frame.f_locals.get("self")
    name = f"{type(owner).__name__}.{frame.f_code.co_name}" if owner is not None else frame.f_code.co_name
    return f" inside {lib} (`{name}`)" if _in_library(frame) else f" (in `{name}`)"


def _not_implemented_message(exc: NotImplementedError) -> str:
    where = _where(exc)
    detail = str(exc).strip() or "(no message)"
    if where.startswith(" inside torch"):
        return (f"your function raised NotImplementedError{where}: {detail}\nThis is an error, not an unfinished "
                "exercise: torch has no implementation for what was called (e.g. no KL formula for that pair of "
                "distributions, no rsample for a discrete distribution). Write that step yourself from the formula.")
    return (f"your function raised NotImplementedError{where}: {detail}\nOnly the scaffold's line "
            f"`raise NotImplementedError(\"{NOT_DONE}\")` means \"not done yet\"; this one is an error to fix.")


def _solution_note(key: str | None) -> str:
    if key and key in SOLUTIONS and solutions_enabled():
        return f'\n(Still stuck? `checks.solution("{key}")` shows a full solution.)'
    return ""


def run_check(exercise: str, body: Callable[..., None], hint: str, student_fn=None,
              solution: str | None = None, todo: str | None = None) -> CheckResult:
    """Run a check body. An unfinished exercise (see ``is_not_done``) prints "not done yet" and, in
    a notebook, puts the reference in place of ``student_fn`` (in graded mode it then raises
    ExerciseNotDone); a wrong answer raises ExerciseError with the ``hint`` (never the
    ``solution``, which is only registered for ``checks.solution``).

    A ``body`` that takes one argument is given the student's function guarded
    (``GuardedStudentFunction``): an error raised inside it is explained with the exercise's
    ``SIGNATURES`` entry. ``todo``: what "not done yet" asks for (default: replace the scaffold's
    ``raise NotImplementedError(...)`` line)."""
    key = exercise_id(exercise)
    if solution is not None and key is not None:
        register_solution(key, solution)
    own = getattr(student_fn, "__wrapped__", student_fn)
    try:
        if student_fn is not None and inspect.signature(body).parameters:
            body(GuardedStudentFunction(own, SIGNATURES.get(key)))
        else:
            body()
    except NotImplementedError as exc:
        if not is_not_done(exc, own, body):
            raise ExerciseError(f"❌ {exercise}: {_not_implemented_message(exc)}\nHint: {hint}{_solution_note(key)}") from None
        msg = f"⏳ {exercise}: not done yet. " + (todo or "Replace the line `raise NotImplementedError(...)` with "
                                                         "your code, then run the check again.")
        if own is not None:
            msg += use_reference(own, key)
        print(msg)
        if graded():
            raise ExerciseNotDone(f"⏳ {exercise}: not done: 0 points.") from None
        return CheckResult(exercise, False, msg)
    except ExerciseError as exc:
        text = f"❌ {exercise}: {exc}\nHint: {hint}{_solution_note(key)}"
        raise (StudentError(text, exc.original) if isinstance(exc, StudentError) else type(exc)(text)) from None
    msg = f"✅ {exercise}: correct."
    print(msg)
    return CheckResult(exercise, True, msg)
