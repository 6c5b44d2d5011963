"""Exercise checks: right answers pass, unfinished ones say "not done yet", and each typical
wrong answer is caught with a message that names the mistake."""
import math

import numpy as np
import pytest
import torch
from conftest import assert_caught

from vae_lesson import checks
from vae_lesson.checks import CheckResult, ExerciseError

# Notebook-style inputs (NumPy, float64), as a notebook would pass them to the check.
NB_X = np.array([[0.0, 0.0], [1.0, 2.0], [-1.5, 0.5], [3.0, -1.0], [0.2, 0.1], [-2.0, -2.0], [1.0, 1.0]])
NB_W = np.array([0.5, 0.3, 0.2])
NB_M = np.array([[0.0, 0.0], [2.0, 1.0], [-1.0, -1.0]])
NB_C = np.array([np.eye(2), [[1.0, 0.4], [0.4, 0.6]], 0.5 * np.eye(2)])
NB = dict(x=NB_X, weights=NB_W, means=NB_M, covs=NB_C)


# --- the student's building blocks, written here independently of vae_lesson ----------------

def component_log_probs(x, means, covs):
    """(N, C) log N(x_n; mu_c, Sigma_c), by hand with a Cholesky factor."""
    x, means, covs = (torch.as_tensor(t) for t in (x, means, covs))
    d = x.shape[-1]
    L = torch.linalg.cholesky(covs)  # (C, D, D)
    diff = (x[:, None, :] - means[None]).unsqueeze(-1)  # (N, K, D, 1)
    sol = torch.linalg.solve_triangular(L.expand(x.shape[0], *L.shape), diff, upper=False)
    maha = (sol ** 2).sum((-1, -2))
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (d * math.log(2 * math.pi) + logdet + maha)


def joint(x, w, m, c):
    return torch.as_tensor(w).log() + component_log_probs(x, m, c)


def right_log_density(x, w, m, c):
    return torch.logsumexp(joint(x, w, m, c), dim=-1)


def right_responsibilities(x, w, m, c):
    j = joint(x, w, m, c)
    return torch.exp(j - torch.logsumexp(j, dim=-1, keepdim=True))


def right_m_step_means(x, r):
    x, r = torch.as_tensor(x), torch.as_tensor(r)
    return (r[:, :, None] * x[:, None, :]).sum(0) / r.sum(0)[:, None]


def not_done(*args):
    raise NotImplementedError


def test_helper_is_right():
    """The test's own log-density agrees with scipy (so the 'right answers' below are right)."""
    from scipy import stats
    from scipy.special import logsumexp

    expected = logsumexp(np.log(NB_W) + np.stack(
        [stats.multivariate_normal(NB_M[k], NB_C[k]).logpdf(NB_X) for k in range(3)], 1), axis=1)
    np.testing.assert_allclose(right_log_density(NB_X, NB_W, NB_M, NB_C).numpy(), expected, rtol=1e-10)


# --- right answers and unfinished ones --------------------------------------------------------

CHECKS = {
    "mixture_log_density": (checks.mixture_log_density, right_log_density, NB),
    "responsibilities": (checks.responsibilities, right_responsibilities, NB),
    "m_step_means": (checks.m_step_means, right_m_step_means,
                     dict(x=NB_X, resp=np.full((7, 3), 1 / 3) + np.linspace(-0.1, 0.1, 7)[:, None] * [1, -1, 0])),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("with_notebook_inputs", [False, True])
def test_right_answer_passes(name, with_notebook_inputs, capsys):
    check, right, nb = CHECKS[name]
    result = check(right, **nb) if with_notebook_inputs else check(right)
    assert isinstance(result, CheckResult)
    assert result.passed is True and bool(result) is True
    out = capsys.readouterr().out.strip()
    assert out.startswith("✅")
    assert result.message.startswith("✅")


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_not_done_yet(name, capsys):
    check, _, nb = CHECKS[name]
    result = check(not_done, **nb)
    assert isinstance(result, CheckResult)
    assert result.passed is False and not result
    out = capsys.readouterr().out
    assert "not done yet" in out
    assert "not done yet" in result.message


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_student_function_sees_notebook_and_fresh_inputs(name):
    check, right, nb = CHECKS[name]
    seen = []

    def spy(*args):
        seen.append(torch.as_tensor(args[0]).clone())
        return right(*args)

    check(spy, **nb)
    assert len(seen) >= 3
    np.testing.assert_array_equal(seen[0].numpy(), NB_X)  # the notebook's own inputs first
    assert not any(s.shape == seen[0].shape and torch.equal(s.to(seen[0].dtype), seen[0]) for s in seen[1:])


# --- typical wrong answers ----------------------------------------------------------------

def ld_sum_of_logs(x, w, m, c):
    return joint(x, w, m, c).sum(-1)


def ld_missing_weights(x, w, m, c):
    return torch.logsumexp(component_log_probs(x, m, c), -1)


def ld_uniform_weights(x, w, m, c):
    return torch.logsumexp(component_log_probs(x, m, c) - math.log(len(w)), -1)


def ld_max(x, w, m, c):
    return joint(x, w, m, c).max(-1).values


def ld_exp(x, w, m, c):
    return right_log_density(x, w, m, c).exp()


def ld_sign(x, w, m, c):
    return -right_log_density(x, w, m, c)


def ld_not_reduced(x, w, m, c):
    return joint(x, w, m, c)


def ld_none(x, w, m, c):
    right_log_density(x, w, m, c)  # computed, but not returned


HARD_CODED = right_log_density(NB_X, NB_W, NB_M, NB_C)


def ld_hard_coded(x, w, m, c):
    return HARD_CODED.clone()  # right on the notebook's inputs, and on nothing else


def ld_constant(x, w, m, c):
    return torch.full((len(x),), -3.5)


def ld_mean_over_points(x, w, m, c):
    return right_log_density(x, w, m, c).mean()


def ld_slightly_off(x, w, m, c):
    return right_log_density(x, w, m, c) + 1e-2


LOG_DENSITY_MISTAKES = [
    (ld_sum_of_logs, "logsumexp"),
    (ld_sum_of_logs, "sum of logs"),
    (ld_missing_weights, "weights pi_c are missing"),
    (ld_uniform_weights, "equal weights 1/C"),
    (ld_max, "max over components"),
    (ld_exp, "exp of the expected"),
    (ld_sign, "sign is wrong"),
    (ld_not_reduced, "one axis too many"),
    (ld_none, "returned None"),
    (ld_hard_coded, "differ from the reference"),
    (ld_constant, "differ from the reference"),
    (ld_mean_over_points, "one number"),
    (ld_slightly_off, "differ from the reference"),
]


def resp_joint(x, w, m, c):
    return joint(x, w, m, c).exp()


def resp_axis0(x, w, m, c):
    return torch.softmax(joint(x, w, m, c), dim=0)


def resp_missing_prior(x, w, m, c):
    return torch.softmax(component_log_probs(x, m, c), dim=-1)


def resp_log(x, w, m, c):
    return torch.log_softmax(joint(x, w, m, c), dim=-1)


def resp_transposed(x, w, m, c):
    return right_responsibilities(x, w, m, c).T


def resp_nan(x, w, m, c):
    return torch.full((len(x), len(w)), float("nan"))


def resp_overflow(x, w, m, c):
    e = torch.exp(-100 * joint(x, w, m, c))  # exp of huge values: inf / inf = NaN
    return e / e.sum(-1, keepdim=True)


def resp_sign(x, w, m, c):
    return -right_responsibilities(x, w, m, c)


def resp_none(x, w, m, c):
    return None


RESPONSIBILITY_MISTAKES = [
    (resp_joint, "do not sum to 1"),
    (resp_axis0, "axis 0"),
    (resp_missing_prior, "prior weights pi_c are missing"),
    (resp_log, "log-responsibilities"),
    (resp_transposed, "transposed"),
    (resp_nan, "NaN"),
    (resp_overflow, "NaN"),
    (resp_overflow, "logsumexp"),
    (resp_sign, "sign is wrong"),
    (resp_none, "None"),
]


def ms_no_division(x, r):
    return torch.as_tensor(r).T @ torch.as_tensor(x)


def ms_divide_by_n(x, r):
    return torch.as_tensor(r).T @ torch.as_tensor(x) / len(x)


def ms_unweighted(x, r):
    return torch.as_tensor(x).mean(0).expand(torch.as_tensor(r).shape[1], -1)


def ms_transposed(x, r):
    return right_m_step_means(x, r).T


def ms_sign(x, r):
    return -right_m_step_means(x, r)


def ms_list_of_strings(x, r):
    return [["a"] * torch.as_tensor(x).shape[1]] * torch.as_tensor(r).shape[1]


M_STEP_MISTAKES = [
    (ms_no_division, "divide by N_c"),
    (ms_divide_by_n, "total number of points N"),
    (ms_unweighted, "plain average"),
    (ms_transposed, "transposed"),
    (ms_sign, "sign is wrong"),
    (ms_list_of_strings, "expected a torch tensor"),
]


def _assert_caught(check, wrong, phrase, capsys, **nb):
    assert_caught(lambda: check(wrong, **nb), phrase, capsys)


@pytest.mark.parametrize("wrong, phrase", LOG_DENSITY_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
def test_log_density_mistakes(wrong, phrase, capsys):
    _assert_caught(checks.mixture_log_density, wrong, phrase, capsys, **NB)


@pytest.mark.parametrize("wrong, phrase", [m for m in LOG_DENSITY_MISTAKES if m[0] is not ld_hard_coded],
                         ids=lambda v: getattr(v, "__name__", v))
def test_log_density_mistakes_without_notebook_inputs(wrong, phrase, capsys):
    _assert_caught(checks.mixture_log_density, wrong, phrase, capsys)


@pytest.mark.parametrize("wrong, phrase", RESPONSIBILITY_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("with_notebook_inputs", [False, True])
def test_responsibility_mistakes(wrong, phrase, with_notebook_inputs, capsys):
    nb = NB if with_notebook_inputs else {}
    _assert_caught(checks.responsibilities, wrong, phrase, capsys, **nb)


@pytest.mark.parametrize("wrong, phrase", M_STEP_MISTAKES, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("with_notebook_inputs", [False, True])
def test_m_step_mistakes(wrong, phrase, with_notebook_inputs, capsys):
    nb = CHECKS["m_step_means"][2] if with_notebook_inputs else {}
    _assert_caught(checks.m_step_means, wrong, phrase, capsys, **nb)


def test_other_exceptions_are_explained_not_called_not_done(capsys):
    """Only NotImplementedError means "not done yet": a bug in the student's code surfaces as an explained
    error (what was raised, where, the shapes given and expected), with the original exception kept."""
    def broken(x, w, m, c):
        raise KeyError("oops")

    with pytest.raises(checks.StudentError) as info:
        checks.mixture_log_density(broken)
    assert isinstance(info.value.original, KeyError)
    msg = str(info.value)
    assert msg.startswith("❌ Exercise 01.1") and "raised KeyError at line" in msg and "'oops'" in msg
    assert 'raise KeyError("oops")' in msg and "must return (N,) = (7,)" in msg and "Hint:" in msg
    assert "not done yet" not in capsys.readouterr().out


# --- compare() ----------------------------------------------------------------------------

def test_compare_accepts_tensors_that_require_grad():
    leaf = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    checks.compare(leaf * 2, torch.tensor([2.0, 4.0, 6.0]), "y")  # a non-leaf tensor with a graph
    checks.compare(torch.tensor([2.0, 4.0, 6.0]), leaf * 2, "y")  # expected may carry a graph too
    with pytest.raises(ExerciseError, match="differ from the reference"):
        checks.compare(leaf * 3, torch.tensor([2.0, 4.0, 6.0]), "y")
    with pytest.raises(ExerciseError, match="sign is wrong"):
        checks.compare(-leaf * 2, torch.tensor([2.0, 4.0, 6.0]), "y")


def test_compare_accepts_numpy_and_lists():
    expected = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    checks.compare(np.array([[0.1, 0.2], [0.3, 0.4]]), expected, "a")  # float64 array
    checks.compare([[0.1, 0.2], [0.3, 0.4]], expected, "a")
    with pytest.raises(ExerciseError, match="transposed"):
        checks.compare(np.array([[0.1, 0.2, 0.5], [0.3, 0.4, 0.6]]), torch.zeros(3, 2), "a")


def test_compare_rejects_a_list_of_strings():
    with pytest.raises(ExerciseError) as info:
        checks.compare(["0.1", "0.2"], torch.tensor([0.1, 0.2]), "p")
    msg = str(info.value)
    assert msg.startswith("p: ")
    assert "expected a torch tensor" in msg and "list" in msg


def test_compare_messages():
    expected = torch.tensor([0.5, 1.5, 2.5])
    checks.compare(expected + 5e-6, expected, "v")  # within tolerance
    with pytest.raises(ExerciseError, match="None"):
        checks.compare(None, expected, "v")
    with pytest.raises(ExerciseError, match="log of the expected"):
        checks.compare(expected.log(), expected, "v")
    with pytest.raises(ExerciseError, match="my mistake"):
        checks.compare(expected * 2, expected, "v", mistakes={"my mistake": expected * 2})
    with pytest.raises(ExerciseError, match="An axis is missing"):
        checks.compare(torch.zeros(3), torch.zeros(3, 2), "v")
    with pytest.raises(ExerciseError, match=r"index \(1,\)"):
        checks.compare(torch.tensor([0.5, 9.0, 2.5]), expected, "v")
    with pytest.raises(ExerciseError, match="NaN or infinite"):
        checks.compare(torch.tensor([0.5, float("inf"), 2.5]), expected, "v")


def test_check_result_displays_nothing(capsys):
    result = checks.mixture_log_density(right_log_density)
    capsys.readouterr()
    assert result._ipython_display_() is None
    assert capsys.readouterr().out == ""
