"""Exercise checks: instant feedback that never lets a wrong answer pass.

Convention (every notebook): an exercise is a Markdown cell with the task, a code cell tagged
``solution`` that defines the student's function, and a code cell that calls its check, e.g.
``checks.mixture_log_density(mixture_log_density)``. The machinery is in ``_core``; each
notebook's checks are in ``nbNN`` and re-exported here.

Students: a failing check gives a hint; ``checks.solution("03.1")`` shows a full solution (unless the
instructor turned solutions off: ``VAE_LESSON_NO_SOLUTIONS=1``, or graded mode ``VAE_LESSON_GRADED=1``).
"""
from ._core import (
    NOT_DONE, SIGNATURES, SOLUTIONS, USED_LATER, CheckResult, ExerciseError, ExerciseNotDone, Signature, StudentError, call_student, compare, copies, graded,
    register_solution, run_check, solution, solutions_enabled,
)
from .nb01 import m_step_means, mixture_log_density, responsibilities
from .nb02 import good_proposal, importance_log_marginal, naive_log_marginal
from .nb03 import elbo_monte_carlo, kl_to_standard_normal, ppca_posterior
from .nb04 import bernoulli_log_q, linear_gaussian_elbo, missing_pixel_marginals
from .nb05 import leave_one_out_baseline, reparameterized_sample, score_function_surrogate
from .nb06 import elbo_of_q, gaps_per_image
from .nb07 import encoder_sample, importance_weighted_log_px, negative_elbo_loss, training_step

__all__ = [
    "CheckResult", "ExerciseError", "ExerciseNotDone", "StudentError", "Signature", "SIGNATURES", "USED_LATER", "compare", "run_check", "copies", "call_student",
    "NOT_DONE", "SOLUTIONS", "register_solution", "solution", "solutions_enabled", "graded",
    "mixture_log_density", "responsibilities", "m_step_means",
    "naive_log_marginal", "importance_log_marginal", "good_proposal",
    "elbo_monte_carlo", "kl_to_standard_normal", "ppca_posterior",
    "bernoulli_log_q", "missing_pixel_marginals", "linear_gaussian_elbo",
    "reparameterized_sample", "score_function_surrogate", "leave_one_out_baseline",
    "elbo_of_q", "gaps_per_image",
    "negative_elbo_loss", "encoder_sample", "importance_weighted_log_px", "training_step",
]
