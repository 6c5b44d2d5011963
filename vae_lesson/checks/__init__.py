"""Exercise checks: instant feedback that never lets a wrong answer pass.

Convention (every notebook): an exercise is a Markdown cell with the task, a code cell tagged
``solution`` that defines the student's function, and a code cell that calls its check, e.g.
``checks.mixture_log_density(mixture_log_density)``. The machinery is in ``_core``; each
notebook's checks are in ``nbNN`` and re-exported here.
"""
from ._core import CheckResult, ExerciseError, compare, run_check
from .nb01 import m_step_means, mixture_log_density, responsibilities

__all__ = [
    "CheckResult", "ExerciseError", "compare", "run_check",
    "mixture_log_density", "responsibilities", "m_step_means",
]
