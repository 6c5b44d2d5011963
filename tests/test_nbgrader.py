"""Autograding with nbgrader, end to end: tools/nbgrader_course.py writes the course directory, and
nbgrader's own command line generates the assignment, autogrades three submissions of one whole
notebook (03, about 10 s a run) and generates their feedback. The scores are read from nbgrader's
gradebook:
- the reference solutions: full marks;
- the untouched student version: 0 for every exercise, and the notebook still runs to the end
  (graded mode installs the reference, then fails the test cell);
- one typical wrong answer (03.2 with the std where the variance belongs): 0 for that exercise,
  full marks for the others.
Slow (about a minute on two busy cores) but part of every run: conftest.py starts it early."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import patience
import pytest
from nbgrader.api import Gradebook  # pinned in requirements.txt: `python3 dev.py test` installs it

from vae_lesson.checks import NOT_DONE

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "03_elbo"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
BIN = Path(sys.executable).parent
EXPECTED_POINTS = {"03.1": 1, "03.3": 2, "03.2": 1}  # easy 1, medium 2, hard 3 (notebooks/README.md)

sys.path.insert(0, str(ROOT / "tools"))
import nbgrader_course  # noqa: E402


def _env():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # nbgrader runs `alembic` from PATH
    env.pop("VAE_LESSON_GRADED", None)  # the course's nbgrader_config.py must switch graded mode on
    return env


def nbgrader(course: Path, *args: str) -> str:
    """Run nbgrader in the course folder as the README says (its nbgrader_config.py sets the rest)."""
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course,
                          env=_env(), capture_output=True, text=True,
                          timeout=patience.patient(600))  # a hang, not a slow machine (three autograded runs)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout + proc.stderr


def _solutions() -> dict[str, str]:
    """{function name: the reference solution cell} from the course notebook."""
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    return {nbgrader_course.answer_name(c.source): c.source for c in nb.cells
            if "solution" in c.metadata.get("tags", [])}


def _submit(course: Path, student: str, answers: dict[str, str]) -> None:
    """Copy the released notebook into submitted/<student>/<assignment>/, with the given answer cells."""
    nb = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            name = nbgrader_course.answer_name(cell.source)
            cell.source = answers.get(name, cell.source)
    dest = course / "submitted" / student / ASSIGNMENT
    dest.mkdir(parents=True)
    nbformat.write(nb, dest / NOTEBOOK)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "nbgrader_course.py"), str(course),
                           "--only", ASSIGNMENT], capture_output=True, text=True, env=_env(),
                          timeout=patience.patient(120))
    assert proc.returncode == 0, proc.stderr
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    solutions = _solutions()
    wrong_kl = solutions["kl_to_standard_normal"].replace("std**2", "std")
    assert wrong_kl != solutions["kl_to_standard_normal"]
    _submit(course, "reference", solutions)
    _submit(course, "untouched", {})
    _submit(course, "wrong_kl", {**solutions, "kl_to_standard_normal": wrong_kl})
    nbgrader(course, "autograde", ASSIGNMENT)
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    return course


def test_course_source_cells():
    """Answer cells keep the signature and docstring outside the solution region; check cells are
    graded with the guide's points; every other cell is read-only."""
    nb, graded = nbgrader_course.nbgrader_source(nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4),
                                                 nbgrader_course.exercise_table(), NOTEBOOK)
    assert dict(graded) == EXPECTED_POINTS
    kinds = [(c.metadata.nbgrader["solution"], c.metadata.nbgrader["grade"], c.metadata.nbgrader["locked"])
             for c in nb.cells]
    assert kinds.count((True, False, False)) == kinds.count((False, True, True)) == 3
    assert kinds.count((False, False, True)) == len(nb.cells) - 6
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.nbgrader
        if meta["solution"]:
            assert cell.source.startswith("def ") and '"""' in cell.source.split("### BEGIN SOLUTION")[0]
            assert nb.cells[i + 1].metadata.nbgrader["grade"] and "checks." in nb.cells[i + 1].source
        assert not cell.get("outputs")


def test_guide_points_table_matches_the_course(tmp_path):
    """The points table in the instructor guide's "Grading with nbgrader" is what the tool writes."""
    section = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8").split("## Grading with nbgrader")[1]
    quoted = {name: ([(ex, int(p)) for ex, p in re.findall(r"(\d\d\.\d) \((\d)\)", exercises)], int(total))
              for name, exercises, total in re.findall(r"^\| (\d\d_\w+) \| (.*?) \| (\d+) \|$", section, re.M)}
    written = nbgrader_course.write_course(tmp_path / "course")
    assert quoted == {name: (graded, sum(p for _, p in graded)) for name, graded in written.items()}
    assert len(written) == 7 and (tmp_path / "course" / "nbgrader_config.py").exists()


def test_assignment_stub_is_the_scaffold_marker():
    src = 'def f(x):\n    """Doc."""\n    y = x + 1\n    return y\n\nq_mean, q_std = 1.0, 2.0\n'
    out = nbgrader_course.with_delimiters(src)
    assert out.startswith('def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    y = x + 1\n')
    assert "### BEGIN SOLUTION\nq_mean, q_std = 1.0, 2.0\n### END SOLUTION" in out
    compile(out, "<answer>", "exec")
    stub = ast.parse(nbgrader_course.NOT_DONE_STUB).body[0]
    assert isinstance(stub, ast.Raise) and ast.literal_eval(stub.exc.args[0]) == NOT_DONE
    with pytest.raises(ValueError, match="only functions and assignments"):
        nbgrader_course.with_delimiters("print(42)\n")


def test_refuses_notebooks_it_cannot_grade(tmp_path):
    """An exercise missing from the guide's tables, or without its check cell right after it, and an
    unknown notebook are refused with a message that says what to fix."""
    table = {"f": ("09.1", 1)}
    sol = nbformat.v4.new_code_cell('def f(x):\n    """Doc."""\n    return x\n', metadata={"tags": ["solution"]})
    check = nbformat.v4.new_code_cell("checks.f(f)")
    with pytest.raises(ValueError, match="no row in the instructor guide"):
        nbgrader_course.nbgrader_source(nbformat.v4.new_notebook(cells=[sol, check]), {}, "x.ipynb")
    with pytest.raises(ValueError, match="must call its check"):
        nbgrader_course.nbgrader_source(nbformat.v4.new_notebook(cells=[sol]), table, "x.ipynb")
    nb, graded = nbgrader_course.nbgrader_source(nbformat.v4.new_notebook(cells=[sol, check]), table, "x.ipynb")
    assert graded == [("09.1", 1)] and nb.cells[1].metadata.nbgrader["points"] == 1
    with pytest.raises(ValueError, match=r"no notebook \['99'\]"):
        nbgrader_course.write_course(tmp_path / "course", only=["99"])


def test_released_notebook_has_stubs_and_no_solutions(course):
    nb = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "std**2 + mean**2" not in text
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(answers) == 3 and all(nbgrader_course.NOT_DONE_STUB in c.source for c in answers)


def _scores(course: Path, student: str) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {ex: (g.score, g.max_score) for ex in EXPECTED_POINTS
                for g in [gb.find_grade(f"ex{ex.replace('.', '-')}-check", ASSIGNMENT, ASSIGNMENT, student)]}


def _autograded(course: Path, student: str):
    return nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)


def _errors(nb) -> dict[str, str]:
    """{grade_id: error name} for every code cell with an error output."""
    return {c.metadata.nbgrader["grade_id"]: o.ename for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"}


def _ran_to_the_end(nb) -> bool:
    return all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")


def test_reference_solutions_get_full_marks(course):
    assert _scores(course, "reference") == {ex: (p, p) for ex, p in EXPECTED_POINTS.items()}
    nb = _autograded(course, "reference")
    assert _errors(nb) == {} and _ran_to_the_end(nb)


def test_untouched_student_version_scores_zero_and_runs_to_the_end(course):
    assert _scores(course, "untouched") == {ex: (0, p) for ex, p in EXPECTED_POINTS.items()}
    nb = _autograded(course, "untouched")
    assert _errors(nb) == {f"ex{ex.replace('.', '-')}-check": "ExerciseNotDone" for ex in EXPECTED_POINTS}
    assert _ran_to_the_end(nb)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.outputs, "the last code cell printed nothing: did the notebook stop early?"


def test_wrong_answer_scores_zero_for_that_exercise_only(course):
    expected = {ex: (p, p) for ex, p in EXPECTED_POINTS.items()}
    expected["03.2"] = (0, 1)
    assert _scores(course, "wrong_kl") == expected
    nb = _autograded(course, "wrong_kl")
    errors = _errors(nb)
    graded_errors = {gid: e for gid, e in errors.items() if gid.startswith("ex")}
    assert graded_errors == {"ex03-2-check": "ExerciseError"} and _ran_to_the_end(nb)
    # The student's own (wrong) function stays in use below its check, so a read-only cell that
    # asserts with it may fail too (no points ride on those cells); nothing fails above the check.
    ids = [c.metadata.nbgrader["grade_id"] for c in nb.cells]
    assert all(ids.index(gid) >= ids.index("ex03-2-check") for gid in errors)


def test_feedback_for_every_student(course):
    """generate_feedback writes each student's page with the total from the gradebook."""
    for student, total in (("reference", "4.0"), ("untouched", "0.0"), ("wrong_kl", "3.0")):
        html = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8")
        assert f"Score: {total} / 4.0" in html, student


def _page_text(html: str) -> str:
    """The text of a feedback page as a reader sees it (tags dropped, entities decoded)."""
    import html as html_lib

    html = re.sub(r"<(style|script)\b.*?</\1>", "", html, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


def test_feedback_shows_the_message_once_and_no_check_source(course):
    """A failed check reaches the feedback page as its message alone: once, with no path of the grading
    machine and no line of the checks' code (graded mode turns checks.solution off, and a traceback
    must not give the reference formula or the known-mistake table away instead)."""
    from conftest import assert_no_check_source

    for student, marker, count in (("wrong_kl", "❌ Exercise 03.2", 1), ("untouched", "not done: 0 points", 3)):
        text = _page_text((course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8"))
        assert text.count(marker) == count, (student, text.count(marker))
        assert_no_check_source(text, traceback_allowed=True)  # a notebook cell's own assert may show its cell
        assert str(ROOT) not in text and "site-packages" not in text
