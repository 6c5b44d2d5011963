"""What every exercise check must do, for the checks whose right answers are listed in CHECKS of
the per-notebook test files: pass the reference answers, say "not done yet" to a scaffold, and
try more than one input (a memorized answer fails)."""
import pytest
from conftest import assert_memorized_answer_fails, assert_not_done_yet, assert_right_answers_pass
from test_checks_nb04 import CHECKS as NB04
from test_checks_nb05 import CHECKS as NB05
from test_checks_nb06_nb07 import CHECKS as NB06_07

CHECKS = {**NB04, **NB05, **NB06_07}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_right_answers_pass(name, capsys):
    assert_right_answers_pass(*CHECKS[name], capsys)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_not_done_yet(name, capsys):
    assert_not_done_yet(CHECKS[name][0], capsys)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_checks_use_several_inputs(name):
    check, rights = CHECKS[name]
    assert_memorized_answer_fails(check, rights[0])


# --- every function check: the scaffold's marker, graded mode, torch's own NotImplementedError -------

FUNCTION_CHECKS = [
    "mixture_log_density", "responsibilities", "m_step_means", "naive_log_marginal", "importance_log_marginal",
    "elbo_monte_carlo", "kl_to_standard_normal", "ppca_posterior", "bernoulli_log_q", "missing_pixel_marginals",
    "linear_gaussian_elbo", "reparameterized_sample", "score_function_surrogate", "leave_one_out_baseline",
    "elbo_of_q", "gaps_per_image", "negative_elbo_loss", "encoder_sample", "importance_weighted_log_px",
    "training_step",
]


@pytest.fixture
def modes(monkeypatch):
    from vae_lesson.checks import _core

    monkeypatch.delenv("VAE_LESSON_GRADED", raising=False)
    monkeypatch.delenv("VAE_LESSON_NO_SOLUTIONS", raising=False)
    _core.reset_modes()
    yield _core
    _core.reset_modes()


def scaffold_fn(*args, **kwargs):
    from vae_lesson.checks import NOT_DONE

    raise NotImplementedError(NOT_DONE)


def torch_not_implemented(*args, **kwargs):
    import torch

    return torch.distributions.Categorical(logits=torch.zeros(3)).rsample()


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_the_scaffold_marker_is_not_done(name, modes, capsys):
    from vae_lesson import checks

    result = getattr(checks, name)(scaffold_fn)
    assert result.passed is False and "not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", FUNCTION_CHECKS + ["good_proposal"])
def test_graded_not_done_scores_zero(name, modes, capsys):
    from vae_lesson import checks
    from vae_lesson.models import LinearGaussianModel

    modes.graded(True)
    with pytest.raises(checks.ExerciseNotDone, match="0 points"):
        if name == "good_proposal":
            model = LinearGaussianModel.random(data_dim=2, latent_dim=1, sigma=0.5, seed=0)
            checks.good_proposal(None, None, model, model.sample(1)[0])
        else:
            getattr(checks, name)(scaffold_fn)
    assert "not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_torch_not_implemented_is_an_error_that_never_shows_the_solution(name, modes, capsys):
    from vae_lesson import checks
    from vae_lesson.checks import _core

    with pytest.raises(checks.ExerciseError) as info:
        getattr(checks, name)(torch_not_implemented)
    assert not isinstance(info.value, checks.ExerciseNotDone)
    msg = str(info.value) + capsys.readouterr().out
    assert "NotImplementedError inside torch (`Categorical.rsample`)" in msg and "Hint:" in msg
    assert "not done yet" not in msg
    key = _core.exercise_id(msg)
    solution_lines = [line.strip() for line in checks.SOLUTIONS[key].splitlines() if len(line.strip()) >= 12]
    assert solution_lines
    assert not [line for line in solution_lines if line in msg]
