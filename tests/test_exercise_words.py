"""Words that fit the exercise (issue 23): every exercise states the shape of each argument and of the
result, as the check's own SIGNATURES entry (the same one that explains an error inside the student's
function); "not done yet" asks for what the scaffold holds; "the cells below use the reference" only
where a cell below calls the function; and no notebook asserts without saying what failed and what to do."""
import ast
import re
from pathlib import Path

import nbformat
import pytest
from test_exercise_routes import exercise_cells

from vae_lesson import checks, student
from vae_lesson.checks import _core

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
APPS = sorted((ROOT / "apps").glob("*.ipynb"))


def _exercises():
    """(notebook path, exercise id, index of the solution cell) for every exercise."""
    out = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        out += [(path, key, i) for i, key in exercise_cells(student.student_version(nb))]
    return out


EXERCISES = _exercises()


def test_there_are_21_exercises_each_with_a_signature():
    assert len(EXERCISES) == 21
    assert {key for _, key, _ in EXERCISES} == set(_core.SIGNATURES)


@pytest.mark.parametrize("path,key,i", EXERCISES, ids=[k for _, k, _ in EXERCISES])
def test_exercise_states_the_shapes_of_its_arguments_and_result(path, key, i):
    nb = nbformat.read(path, as_version=4)
    task = next(c for c in reversed(nb.cells[:i]) if c.cell_type == "markdown")
    assert f"Exercise {int(key.split('.')[1])}" in task.source
    assert _core.SIGNATURES[key].markdown() in task.source, (key, task.source[-400:])
    # every argument the solution's function takes is named in the signature, in order
    tree = ast.parse(nb.cells[i].source)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    named = [name for name, _, _ in _core.SIGNATURES[key].arguments]
    if fn is not None:
        assert [a.arg for a in fn.args.args] == named, (key, named)
    else:  # 02.3: values to choose
        assert [t.id for t in tree.body[0].targets[0].elts] == named


def test_signature_markdown_and_binding():
    sig = _core.Signature("x (N, D), resp (N, C) -> (C, D)")
    assert sig.markdown() == "**Shapes:** `x` (N, D), `resp` (N, C) → (C, D)"
    import torch
    text = sig.describe_call({"x": torch.zeros(9, 3), "resp": torch.zeros(9, 4)})
    assert text == "It was given x of shape (9, 3) = (N, D), resp of shape (9, 4) = (N, C); it must return (C, D) = (4, 3)."


def _later_uses(nb, i, name) -> bool:
    pattern = re.compile(rf"(?<![.\w]){re.escape(name)}\b")
    return any(c.cell_type == "code" and pattern.search(c.source) for c in nb.cells[i + 2:])


@pytest.mark.parametrize("path,key,i", [e for e in EXERCISES if e[1] != "02.3"], ids=lambda v: getattr(v, "name", v))
def test_used_later_says_whether_a_cell_below_calls_the_function(path, key, i):
    nb = nbformat.read(path, as_version=4)
    name = ast.parse(nb.cells[i].source).body[0].name
    assert _later_uses(nb, i, name) == (key in _core.USED_LATER), (key, name)


def test_not_done_words_fit_the_scaffold(capsys):
    """02.3's scaffold holds `q_mean, q_std = None, None`: its "not done yet" says to set them; a function's
    says to replace the raise line, and mentions the reference only where the notebook uses it below."""
    from IPython.core.interactiveshell import InteractiveShell  # a shell, so that use_reference has a namespace

    shell = InteractiveShell.instance()  # shared with other tests: the names below are removed at the end
    shell.run_cell("from vae_lesson import checks as _w_checks, models as _w_models\nimport torch as _w_torch\n"
                   "_w_model = _w_models.LinearGaussianModel.random(data_dim=1, latent_dim=1, sigma=0.5, seed=0)\n"
                   "_w_x = _w_torch.zeros(1, 1, dtype=_w_torch.float64)")
    capsys.readouterr()
    shell.run_cell("_w_checks.good_proposal(None, None, _w_model, _w_x)")
    out = capsys.readouterr().out
    assert "not done yet" in out and "q_mean" in out and "NotImplementedError" not in out
    for name, used in (("leave_one_out_baseline", False), ("reparameterized_sample", True)):
        shell.run_cell(f"def {name}(*args):\n    raise NotImplementedError('✏️ your code here')\n"
                       f"_w_checks.{name}({name})")
        out = capsys.readouterr().out
        assert "Replace the line `raise NotImplementedError(...)`" in out
        assert ("the cells below use the reference" in out) == used, out
        shell.user_ns.pop(name, None)
    for name in ("_w_checks", "_w_models", "_w_torch", "_w_model", "_w_x"):
        shell.user_ns.pop(name, None)


# --- no bare assert in a notebook --------------------------------------------------------------------

def bare_asserts(source: str) -> list[str]:
    """The assert statements of a code cell that carry no message (IPython magics and shell lines skipped)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    return [ast.unparse(node)[:80] for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Assert) and node.msg is None]


@pytest.mark.parametrize("path", NOTEBOOKS + APPS, ids=lambda p: p.name)
def test_no_assert_without_a_message(path):
    """A notebook cell that stops with a bare AssertionError tells a student nothing: every assert says what
    failed and what to do."""
    nb = nbformat.read(path, as_version=4)
    found = [(i, a) for i, c in enumerate(nb.cells) if c.cell_type == "code" for a in bare_asserts(c.source)]
    assert not found, f"{path.name}: asserts without a message: {found[:5]}"


def test_the_assert_lint_finds_a_bare_assert():
    assert bare_asserts("%matplotlib inline\nx = 1\nassert x == 1  # fine\n") == ["assert x == 1"]
    assert bare_asserts("assert x == 1, 'x changed: re-run the cell above'\n") == []
