"""The check machinery (vae_lesson.checks._core): what counts as "not done yet", hints versus
solutions, graded mode for nbgrader, the tolerance of compare() and its messages, and copies."""
import re

import numpy as np
import pytest
import torch
from torch import distributions as D

from vae_lesson import checks, student
from vae_lesson.checks import ExerciseError, ExerciseNotDone, _core


@pytest.fixture(autouse=True)
def default_modes(monkeypatch):
    """Every test starts with solutions on and graded mode off, whatever the environment says."""
    monkeypatch.delenv("VAE_LESSON_GRADED", raising=False)
    monkeypatch.delenv("VAE_LESSON_NO_SOLUTIONS", raising=False)
    _core.reset_modes()
    yield
    _core.reset_modes()


@pytest.fixture
def shell():
    """An IPython shell, as in a notebook: the not-done fallback writes into its namespace."""
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_cell("from vae_lesson import checks\nimport torch\nfrom torch import distributions as D\n")
    return sh


def _run(shell, code):
    from IPython.utils.capture import capture_output

    with capture_output() as out:
        result = shell.run_cell(code)
    return result, out.stdout


# --- the scaffold's marker ------------------------------------------------------------------------

def test_scaffold_raises_the_not_done_marker():
    src = student.scaffold('def kl(mean, std):\n    """KL."""\n    return mean\n')
    assert f'raise NotImplementedError("{checks.NOT_DONE}")' in src
    assert checks.NOT_DONE == "✏️ your code here"
    namespace = {}
    exec(compile(src, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError) as info:
        namespace["kl"](torch.zeros(1), torch.ones(1))
    assert info.value.args == (checks.NOT_DONE,)


def test_the_marker_means_not_done_wherever_it_is_raised(capsys):
    def helper():
        raise NotImplementedError(checks.NOT_DONE)

    def kl(mean, std):
        return helper()  # the marker, one frame down: still not done

    result = checks.kl_to_standard_normal(kl)
    assert not result and "not done yet" in capsys.readouterr().out


def test_a_bare_raise_in_the_students_own_function_is_not_done(capsys):
    def kl(mean, std):
        raise NotImplementedError  # an older student copy

    assert not checks.kl_to_standard_normal(kl)
    assert "not done yet" in capsys.readouterr().out


def test_a_students_own_message_is_an_error_not_not_done(capsys):
    def kl(mean, std):
        raise NotImplementedError("I will do this later")

    with pytest.raises(ExerciseError) as info:
        checks.kl_to_standard_normal(kl)
    msg = str(info.value)
    assert msg.startswith("❌") and "I will do this later" in msg and "Hint:" in msg
    assert "not done yet" not in capsys.readouterr().out


def kl_torch_pair(mean, std):
    """03.2 written with a KL pair torch has no formula for."""
    q = D.Independent(D.Normal(mean, std), 1)
    p = D.MultivariateNormal(torch.zeros_like(mean), torch.diag_embed(torch.ones_like(std)))
    return D.kl_divergence(q, p)


def test_torch_not_implemented_kl_is_an_error(capsys):
    with pytest.raises(NotImplementedError):  # the premise: torch really raises it
        kl_torch_pair(torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ExerciseError) as info:
        checks.kl_to_standard_normal(kl_torch_pair)
    msg = str(info.value)
    assert msg.startswith("❌ Exercise 03.2")
    assert "raised NotImplementedError inside torch" in msg and "kl_divergence" in msg
    assert "Hint:" in msg and "not done yet" not in msg
    assert "not done yet" not in capsys.readouterr().out
    assert not isinstance(info.value, ExerciseNotDone)


def test_categorical_rsample_is_an_error_naming_torchs_method():
    def sample(mean, std, eps):
        return torch.distributions.Categorical(logits=torch.zeros(3)).rsample((eps.shape[0],))

    with pytest.raises(ExerciseError) as info:
        checks.reparameterized_sample(sample)
    msg = str(info.value)
    assert "NotImplementedError inside torch (`Categorical.rsample`)" in msg
    assert "not done yet" not in msg


def test_torch_error_never_replaces_the_students_function(shell):
    shell.run_cell(
        "def kl_to_standard_normal(mean, std):\n"
        "    q = D.Independent(D.Normal(mean, std), 1)\n"
        "    p = D.MultivariateNormal(torch.zeros_like(mean), torch.diag_embed(torch.ones_like(std)))\n"
        "    return D.kl_divergence(q, p)\n"
        "mine = kl_to_standard_normal\n")
    _, out = _run(shell, "try:\n    checks.kl_to_standard_normal(kl_to_standard_normal)\n"
                         "except Exception as exc:\n    caught = exc\n")
    assert isinstance(shell.user_ns["caught"], ExerciseError)
    assert "inside torch" in str(shell.user_ns["caught"])
    assert "not done yet" not in out and "reference" not in out
    assert shell.user_ns["kl_to_standard_normal"] is shell.user_ns["mine"]


def test_the_scaffold_in_a_notebook_is_not_done_and_falls_back(shell):
    from vae_lesson.checks import reference

    shell.run_cell(student.scaffold('def kl_to_standard_normal(mean, std):\n    """KL."""\n    return 0\n'))
    result, out = _run(shell, "checks.kl_to_standard_normal(kl_to_standard_normal)")
    assert result.error_in_exec is None
    assert "not done yet" in out and "reference `kl_to_standard_normal`" in out
    assert shell.user_ns["kl_to_standard_normal"] is reference.kl_to_standard_normal


def test_a_bare_raise_in_a_notebook_helper_is_not_done(shell):
    shell.run_cell("def my_helper(m):\n    raise NotImplementedError\n"
                   "def kl_to_standard_normal(mean, std):\n    return my_helper(mean)\n")
    result, out = _run(shell, "checks.kl_to_standard_normal(kl_to_standard_normal)")
    assert result.error_in_exec is None and "not done yet" in out


# --- hints and solutions ----------------------------------------------------------------------------

SECRET = "return 0.5 * (std**2 + mean**2 - 1 - 2 * torch.log(std)).sum(-1)  # SECRET-LINE"


def _failing_check(solution=SECRET):
    def body():
        raise ExerciseError("your KL is off")

    return checks.run_check("Exercise 99.1 (a test exercise)", body, "the KL is a sum of 1-D terms.",
                            solution=solution)


def test_a_failing_check_gives_the_hint_never_the_solution(capsys):
    with pytest.raises(ExerciseError) as info:
        _failing_check()
    msg = str(info.value) + capsys.readouterr().out
    assert "Hint: the KL is a sum of 1-D terms." in msg
    assert "SECRET-LINE" not in msg and "torch.log(std)" not in msg
    assert 'checks.solution("99.1")' in msg  # where to find it


def test_solution_prints_and_returns_it(capsys):
    checks.register_solution("99.2", "return 42")
    assert checks.solution("99.2") == "return 42"
    assert "return 42" in capsys.readouterr().out
    assert checks.solution("Exercise 99.2 (long name)") == "return 42"


def test_every_exercise_has_a_solution_at_import():
    """Registered at import (not only once the check ran): checks.solution works right away for every
    exercise id that a check module names."""
    from pathlib import Path

    ids = set()
    for path in Path(checks.__file__).parent.glob("nb[0-9][0-9].py"):
        ids |= set(re.findall(r"Exercise (\d{2}\.\d+)", path.read_text()))
    assert len(ids) >= 20, sorted(ids)
    missing = sorted(ids - set(checks.SOLUTIONS))
    assert not missing, f"no registered solution for {missing}"


def test_unknown_exercise_lists_the_known_ones():
    checks.register_solution("99.3", "pass")
    with pytest.raises(ValueError, match=r"no exercise '42\.7'.*99\.3"):
        checks.solution("42.7")


def test_register_solution_validates():
    with pytest.raises(ValueError, match="exercise id"):
        checks.register_solution("three point one", "x")
    with pytest.raises(ValueError, match="non-empty"):
        checks.register_solution("99.4", "  ")


@pytest.mark.parametrize("how", ["env", "switch", "graded"])
def test_solutions_can_be_turned_off(how, monkeypatch, capsys):
    checks.register_solution("99.5", "return 42")
    if how == "env":
        monkeypatch.setenv("VAE_LESSON_NO_SOLUTIONS", "1")
    elif how == "switch":
        checks.solutions_enabled(False)
    else:
        monkeypatch.setenv("VAE_LESSON_GRADED", "1")
    assert not checks.solutions_enabled()
    with pytest.raises(PermissionError, match="not available"):
        checks.solution("99.5")
    with pytest.raises(ExerciseError) as info:
        _failing_check()
    assert "checks.solution" not in str(info.value)  # no pointer to what is refused
    assert "return 42" not in capsys.readouterr().out


# --- graded mode ---------------------------------------------------------------------------------------

def _not_done(mean, std):
    raise NotImplementedError(checks.NOT_DONE)


def _right_kl(mean, std):
    return 0.5 * (std**2 + mean**2 - 1 - 2 * torch.log(std)).sum(-1)


@pytest.mark.parametrize("how", ["env", "switch"])
def test_graded_not_done_scores_zero(how, monkeypatch, capsys):
    if how == "env":
        monkeypatch.setenv("VAE_LESSON_GRADED", "1")
    else:
        checks.graded(True)
    assert checks.graded()
    with pytest.raises(ExerciseNotDone, match="not done: 0 points"):
        checks.kl_to_standard_normal(_not_done)
    assert issubclass(ExerciseNotDone, ExerciseError)
    assert "not done yet" in capsys.readouterr().out
    assert checks.kl_to_standard_normal(_right_kl).passed  # a right answer passes
    with pytest.raises(ExerciseError):
        checks.kl_to_standard_normal(lambda m, s: _right_kl(m, s) * 2)  # a wrong one fails


def test_graded_not_done_still_installs_the_fallback(shell):
    from vae_lesson.checks import reference

    checks.graded(True)
    shell.run_cell(student.scaffold('def kl_to_standard_normal(mean, std):\n    """KL."""\n    return 0\n'))
    result, out = _run(shell, "checks.kl_to_standard_normal(kl_to_standard_normal)")
    assert isinstance(result.error_in_exec, ExerciseNotDone)
    assert shell.user_ns["kl_to_standard_normal"] is reference.kl_to_standard_normal  # later cells run


def test_graded_switch_off_and_env_values(monkeypatch):
    monkeypatch.setenv("VAE_LESSON_GRADED", "0")
    assert not checks.graded()
    monkeypatch.setenv("VAE_LESSON_GRADED", "1")
    assert checks.graded()
    checks.graded(False)  # the session switch wins over the environment
    assert not checks.graded()


# --- compare(): tolerance follows precision, messages -------------------------------------------

def _float32_route(expected64):
    """What a float32 computation of the same numbers returns: right up to float32 round-off."""
    return (expected64 * (1 + 5e-6)).float()  # a relative error of 40 float32 epsilons


def test_float32_answers_are_accepted():
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(50, generator=g, dtype=torch.float64) * 40
    answer = _float32_route(expected)
    assert not torch.allclose(answer.double(), expected, rtol=1e-6, atol=1e-8)  # the premise: round-off shows
    checks.compare(answer, expected, "v", rtol=1e-6, atol=1e-8)
    # a sum of float32 terms: scale says how large the terms were
    terms = torch.randn(64, 100, generator=g, dtype=torch.float64) * 5
    checks.compare(terms.float().sum(-1), terms.sum(-1), "log q", rtol=1e-9, atol=1e-12, scale=5 * 64)


def test_float64_round_off_passes_and_errors_beyond_tolerance_fail():
    expected = torch.tensor([1.03089, -40.25, 7.0], dtype=torch.float64)
    checks.compare(expected * (1 + 1e-12), expected, "v", rtol=1e-6, atol=1e-8)
    with pytest.raises(ExerciseError, match="values differ"):
        checks.compare(expected * (1 + 1e-5), expected, "v", rtol=1e-6, atol=1e-8)
    # the same 1e-5 error is float32-sized: accepted from a float32 result
    checks.compare((expected * (1 + 1e-5)).float(), expected, "v", rtol=1e-6, atol=1e-8)
    # but a float32 result that is really off is still rejected
    with pytest.raises(ExerciseError, match="float32 tolerance"):
        checks.compare((expected + 1e-2).float(), expected, "v", rtol=1e-6, atol=1e-8)


def test_float32_inputs_widen_the_tolerance():
    expected = torch.tensor([1.5, -2.25], dtype=torch.float64)
    near = expected * (1 + 1e-5)
    with pytest.raises(ExerciseError):
        checks.compare(near, expected, "v", rtol=1e-6, atol=1e-8)
    checks.compare(near, expected, "v", rtol=1e-6, atol=1e-8, inputs=(torch.zeros(2),))


@pytest.mark.parametrize("shift", [0.0, 1e-5, 1e-3])
def test_a_list_and_a_tensor_are_treated_alike(shift):
    expected = torch.tensor([0.1, 0.25, -3.0], dtype=torch.float64)
    values = (expected + shift).tolist()
    verdicts = []
    for answer in (values, tuple(values), torch.tensor(values), torch.tensor(values, dtype=torch.float32),
                   [torch.tensor(v) for v in values]):
        try:
            checks.compare(answer, expected, "b", rtol=1e-6, atol=1e-8)
            verdicts.append(True)
        except ExerciseError:
            verdicts.append(False)
    assert verdicts == [shift < 1e-4] * len(verdicts), verdicts


def _expected_and_got(msg):
    m = re.search(r"expected (\S+), got (\S+) ", msg)
    assert m, msg
    return m.group(1), m.group(2)


def test_differ_message_shows_the_element_that_breaks_the_tolerance():
    # the largest absolute error (index 0) is within rtol * 1000; index 1 breaks the tolerance
    expected = torch.tensor([1000.0, 1.03089, 2.0], dtype=torch.float64)
    answer = expected + torch.tensor([0.09, 5e-4, 0.0], dtype=torch.float64)
    with pytest.raises(ExerciseError) as info:
        checks.compare(answer, expected, "v", rtol=1e-4, atol=1e-5)
    msg = str(info.value)
    assert "index (1,)" in msg and "1 of 3" in msg
    e, a = _expected_and_got(msg)
    assert e != a and float(e) == pytest.approx(1.03089, abs=1e-9) and float(a) == pytest.approx(1.03139, abs=1e-9)
    assert "rtol=0.0001" in msg and "atol=1e-05" in msg and "float64 tolerance" in msg


@pytest.mark.parametrize("seed", range(20))
def test_differ_message_never_shows_equal_values(seed):
    g = torch.Generator().manual_seed(seed)
    expected = torch.randn(30, generator=g, dtype=torch.float64) * 10 ** torch.randint(-3, 4, (1,), generator=g)
    bad = torch.randint(0, 30, (1,), generator=g).item()
    answer = expected.clone()
    answer[bad] += 3e-5 * (1 + expected[bad].abs())  # just beyond rtol=1e-6, atol=1e-8, a tiny relative change
    with pytest.raises(ExerciseError) as info:
        checks.compare(answer, expected, "v", rtol=1e-6, atol=1e-8)
    e, a = _expected_and_got(str(info.value))
    assert e != a
    assert f"index ({bad},)" in str(info.value)


def test_float32_message_says_so():
    with pytest.raises(ExerciseError) as info:
        checks.compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5], dtype=torch.float64), "v")
    assert "float32 tolerance, as your result is torch.float32" in str(info.value)


def test_tolerances_function():
    e = torch.tensor([100.0, -3.0], dtype=torch.float64)
    assert _core.tolerances(False, e, 1e-6, 1e-8) == (1e-6, 1e-8)
    rt, at = _core.tolerances(True, e, 1e-6, 1e-8)
    assert rt == pytest.approx(_core.FLOAT32_RTOL) and at == pytest.approx(100 * _core.FLOAT32_RTOL)
    assert _core.tolerances(True, e, 1e-6, 1e-8, scale=1000)[1] == pytest.approx(1000 * _core.FLOAT32_RTOL)
    assert _core.tolerances(True, e, 1e-2, 1.0) == (1e-2, 1.0)  # never tighter than asked
    with pytest.raises(ValueError, match="rtol and atol"):
        _core.tolerances(True, e, -1e-6, 1e-8)
    with pytest.raises(ValueError, match="scale"):
        checks.compare(e, e, "v", scale=float("nan"))


def test_compare_keeps_its_shape_and_nan_diagnostics():
    with pytest.raises(ExerciseError, match="one axis too many"):
        checks.compare([[1.0, 2.0]], torch.tensor([1.0, 2.0]), "v")
    with pytest.raises(ExerciseError, match="NaN or infinite"):
        checks.compare([1.0, float("nan")], torch.tensor([1.0, 2.0]), "v")
    with pytest.raises(ExerciseError, match="expected a torch tensor"):
        checks.compare({"a": 1}, torch.tensor([1.0]), "v")


# --- copies ------------------------------------------------------------------------------------------

def test_in_place_edits_never_reach_the_callers_data():
    x = torch.arange(4.0)
    arr = np.arange(3.0)
    lst = [torch.ones(2)]

    def vandal(t, a, items):
        t.mul_(0)
        a *= 0
        items[0].add_(5)
        items.append(None)
        return t

    assert torch.equal(_core.call_student(vandal, x, arr, lst), torch.zeros(4))
    assert torch.equal(x, torch.arange(4.0)) and np.array_equal(arr, np.arange(3.0))
    assert len(lst) == 1 and torch.equal(lst[0], torch.ones(2))
    x2 = checks.copies(x)
    x2.mul_(0)
    assert torch.equal(x, torch.arange(4.0))


def test_copies_of_leaves_modules_and_non_tensors():
    leaf = torch.ones(3, requires_grad=True)
    c = checks.copies(leaf)
    assert c.is_leaf and c.requires_grad and c is not leaf
    (2 * c).sum().backward()
    assert leaf.grad is None and torch.equal(c.grad, torch.full((3,), 2.0))
    model = torch.nn.Linear(2, 1)
    m2, n, f = checks.copies(model, 3, len)
    with torch.no_grad():
        m2.weight.zero_()
    assert model.weight.abs().sum() > 0 and n == 3 and f is len
    nonleaf = leaf * 1
    assert checks.copies(nonleaf).grad_fn is not None  # a graph is kept
