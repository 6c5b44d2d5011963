"""A checked output prints only what is stable across CPUs.

Cells tagged ``nbval-check-output`` are compared character by character with their stored output
on whatever laptop runs the tests. Another CPU changes the last bits of a floating-point result
(SIMD width, summation order), so such a cell must not print round-off: no negative zero, no
tiny number that is really a zero in exact arithmetic (print it as a bound, "below 1e-10"), no
more digits than a float32 result carries. This lint reads every stored checked output; the
nbval run itself also executes notebooks 01-05 on another floating-point path (see conftest.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from vae_lesson.report import below, fixed

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "apps").glob("*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])([-+]?)(\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])")
BOUND_WORDS = ("below ", "under ", "< ", "<= ", "above ")
MAX_SIGNIFICANT = 8  # float32 carries about 7; a float64 closed form printed to 8 stays put
SMALLEST = 1e-5  # anything smaller in a checked output must be printed as a bound


def roundoff_problems(text: str) -> list[str]:
    """What in ``text`` would print differently on another CPU: negative zeros, tiny numbers not
    written as bounds, and decimals with more than MAX_SIGNIFICANT significant digits."""
    problems = []
    for match in NUMBER.finditer(text):
        sign, digits = match.groups()
        value = float(digits.replace(",", ""))
        before = text[max(0, match.start() - 6):match.start()]
        if sign == "-" and value == 0:
            problems.append(f"negative zero {match.group()!r}: print it with vae_lesson.report.fixed")
        elif 0 < value < SMALLEST and not before.endswith(BOUND_WORDS):
            problems.append(f"{match.group()!r} is round-off size: print a bound with vae_lesson.report.below")
        elif "." in digits:
            mantissa = re.split(r"[eE]", digits)[0].replace(",", "").replace(".", "").lstrip("0")
            if len(mantissa) > MAX_SIGNIFICANT:
                problems.append(f"{match.group()!r} has {len(mantissa)} significant digits (at most {MAX_SIGNIFICANT})")
    return problems


def checked_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if "nbval-check-output" in cell.metadata.get("tags", []) or "NBVAL_CHECK_OUTPUT" in cell.source:
            text = "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            yield i, text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_outputs_print_no_roundoff(path):
    for i, text in checked_outputs(path):
        problems = roundoff_problems(text)
        assert not problems, f"{path.name} code cell {i}: " + "; ".join(problems)


def test_every_notebook_has_checked_outputs():
    """The lint above is only worth something if there is something to lint."""
    assert sum(1 for p in NOTEBOOKS for _ in checked_outputs(p)) >= 20


@pytest.mark.parametrize("text, phrase", [
    ("ELBO -5.137 (gap -0.000)", "negative zero"),
    ("gap -0.0000 nats", "negative zero"),
    ("between 5.2e-07 and 1.1e-02 nats", "round-off size"),
    ("relative error 3e-14", "round-off size"),
    ("a difference of 0.0000004", "round-off size"),
    ("log p(x) = -7.8117198264", "significant digits"),
])
def test_the_lint_finds_roundoff(text, phrase):
    problems = roundoff_problems(text)
    assert len(problems) == 1 and phrase in problems[0], problems


@pytest.mark.parametrize("text", [
    "gap after each q-update up to 1.1e-02 nats, at the end below 1e-05",
    "relative error < 1e-12", "difference below 1e-10", "57,480 numbers", "-0.0030 ± 0.0012",
    "2,400,000", "ELBO -5.137 (gap 0.000)", "+0.0000 ± 0.0012", "-7.811720", "x_1, z_2 and 0.5e-3 ink",
])
def test_the_lint_accepts_stable_output(text):
    assert roundoff_problems(text) == []


def test_fixed_never_prints_a_negative_zero():
    assert fixed(-0.0004, 3) == "0.000" and fixed(-0.0004, 3, sign=True) == "+0.000"
    assert fixed(-0.0006, 3) == "-0.001" and fixed(0.0090, 4, sign=True) == "+0.0090"
    assert fixed(-1.23456, 2) == "-1.23" and fixed(2, 0) == "2"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="decimals"):
            fixed(1.0, bad)
    with pytest.raises(ValueError, match="NaN"):
        fixed(float("nan"))


def test_below_prints_the_bound_or_says_it_broke():
    assert below(3e-13, 1e-12) == "below 1e-12" and below(-3e-13, 1e-12) == "below 1e-12"
    assert below(2e-9, 1e-10) == "2.0e-09 (above 1e-10)"
    with pytest.raises(ValueError, match="bound"):
        below(1e-3, 0)
