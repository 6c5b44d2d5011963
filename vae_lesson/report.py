"""Numbers printed the same way on every CPU.

A notebook's checked output (cells tagged ``nbval-check-output``) is compared character by
character with the stored one, on whatever laptop runs the tests. Floating-point results differ
between CPUs in their last bits (another SIMD width, another order of summation), so a checked
output may only print what the math guarantees:

- ``fixed(x, decimals)``: rounded to ``decimals`` places, never "-0.000" (round-off on the wrong
  side of zero prints as 0.000);
- ``below(x, bound)``: a quantity that is zero in exact arithmetic (a gap that must vanish, a
  relative error) printed as the bound it stays under, "below 1e-10", never as its round-off.
"""
from __future__ import annotations

import math


def _as_float(x) -> float:
    value = float(x)  # Python numbers, 0-d tensors and NumPy scalars alike
    if math.isnan(value):
        raise ValueError("got NaN: there is no number to print; find where it came from first")
    return value


def fixed(x, decimals: int = 3, sign: bool = False) -> str:
    """``x`` with ``decimals`` places (and a + on positive values with ``sign``); anything that
    rounds to zero prints as 0 (or +0 with ``sign``), never as a negative zero."""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be an integer >= 0, got {decimals!r}")
    value = _as_float(x)
    text = f"{value:{'+' if sign else ''}.{decimals}f}"
    if float(text) == 0:  # -0.0004 -> "0.000", not "-0.000"
        text = f"{0.0:{'+' if sign else ''}.{decimals}f}"
    return text


def below(x, bound: float) -> str:
    """"below 1e-10" when |x| < ``bound``; otherwise |x| itself in two significant digits, so that a
    checked output shows at once that the bound broke."""
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound!r}")
    value = abs(_as_float(x))
    return f"below {bound:.0e}" if value < bound else f"{value:.1e} (above {bound:.0e})"
