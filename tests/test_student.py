"""Student versions: generated from the notebooks, scaffolds instead of solutions, no solution
text anywhere, and "Run All" goes through to the end with every check saying "not done yet"."""
import ast
from pathlib import Path

import nbformat
import patience
import pytest
from conftest import assert_student_run_went_through
from servers import browser_unavailable

from vae_lesson import student

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    assert student.main([str(ROOT / "notebooks"), str(out)]) == 0
    return out


def _solution_body_lines(source):
    """The lines of a solution that are the answer: function bodies without signature and docstring,
    and the right-hand sides of assignments."""
    tree, lines, answer = ast.parse(source), source.splitlines(), []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            for stmt in body:
                answer += [line.strip() for line in lines[stmt.lineno - 1:stmt.end_lineno] if line.strip()]
        elif isinstance(node, ast.Assign):
            answer.append(ast.unparse(node.value))
    return answer


def test_scaffold_keeps_signature_and_docstring():
    src = 'def f(x, y):\n    """Add."""\n    z = x + y\n    return z\n\nq_mean, q_std = 1.0, 2.0\n'
    out = student.scaffold(src)
    assert 'def f(x, y):\n    """Add."""\n    raise NotImplementedError' in out
    assert "q_mean, q_std = None, None" in out and "x + y" not in out and "1.0" not in out
    compile(out, "<scaffold>", "exec")


def test_scaffold_refuses_other_statements():
    with pytest.raises(ValueError, match="only functions and assignments"):
        student.scaffold("print('the answer is 42')\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_leaks(student_dir, path):
    original = nbformat.read(path, as_version=4)
    copy = nbformat.read(student_dir / path.name, as_version=4)
    text = "\n".join(c.source for c in copy.cells)
    solutions = [c for c in original.cells if "solution" in c.metadata.get("tags", [])]
    assert solutions, f"{path.name} has no exercises"
    for cell in solutions:
        for line in _solution_body_lines(cell.source):
            assert line not in text, f"{path.name}: solution line leaked: {line!r}"
    assert all(not c.get("outputs") for c in copy.cells if c.cell_type == "code")
    assert "widgets" not in copy.metadata
    assert not any("solution" in c.metadata.get("tags", []) for c in copy.cells)
    assert len(copy.cells) == len(original.cells)



@pytest.mark.skipif(browser_unavailable() is None,
                    reason="the browser tests run every student version in JupyterLab and check the same "
                           "(tests/test_browser.py): one run serves both")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_runs_to_the_end(student_dir, path):
    nb = nbformat.read(student_dir / path.name, as_version=4)
    patience.execute_notebook(nb, student_dir)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert_student_run_went_through(nb, "".join(o.get("text", "") for o in outputs if o.output_type == "stream"))


def test_not_done_puts_the_reference_in_the_notebook():
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from vae_lesson.checks import reference

    shell = InteractiveShell.instance()
    shell.run_cell("from vae_lesson import checks\n"
                   "def naive_log_marginal(log_likelihoods):\n    raise NotImplementedError\n")
    with capture_output() as out:
        shell.run_cell("checks.naive_log_marginal(naive_log_marginal)")
    assert "not done yet" in out.stdout and "reference `naive_log_marginal`" in out.stdout
    assert shell.user_ns["naive_log_marginal"] is reference.naive_log_marginal
    # once the student's own version is defined and passes, it is theirs that is used
    shell.run_cell("import math, torch\n"
                   "def naive_log_marginal(l):\n    return torch.logsumexp(l, 0) - math.log(l.shape[0])\n"
                   "checks.naive_log_marginal(naive_log_marginal)")
    assert shell.user_ns["naive_log_marginal"] is not reference.naive_log_marginal


def test_every_function_exercise_has_a_reference():
    from vae_lesson.checks import reference

    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if "solution" in cell.metadata.get("tags", []):
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.FunctionDef):
                        assert hasattr(reference, node.name), f"{path.name}: no reference for {node.name}"


REFERENCE_OF = {"bernoulli_log_q": "log_q", "linear_gaussian_elbo": "elbo_pca"}
FUNCTION_CHECKS = ["mixture_log_density", "responsibilities", "m_step_means", "naive_log_marginal",
                   "importance_log_marginal", "elbo_monte_carlo", "kl_to_standard_normal", "ppca_posterior",
                   "bernoulli_log_q", "missing_pixel_marginals", "linear_gaussian_elbo", "reparameterized_sample",
                   "score_function_surrogate", "leave_one_out_baseline"]


@pytest.mark.parametrize("name", FUNCTION_CHECKS)
def test_the_fallbacks_are_right(name, capsys):
    """A student who never finishes an exercise gets a correct function: the reference passes its check."""
    from vae_lesson import checks
    from vae_lesson.checks import reference

    assert getattr(checks, name)(getattr(reference, REFERENCE_OF.get(name, name))).passed
