"""The notebook convention, checked for every notebook (nbval executes them separately)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMESTAMP = re.compile(r"\b\d{1,2}:\d{2}\b")


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_exist_and_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks found in notebooks/"
    for i, name in enumerate(names, start=1):
        assert re.fullmatch(rf"{i:02d}_[a-z0-9_]+\.ipynb", name), f"{name}: expected {i:02d}_<name>.ipynb"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def nb(request):
    return nbformat.read(request.param, as_version=4), request.param


def test_opens_with_lecture_timestamps_and_who_is_who(nb):
    nb, path = nb
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "Lecture" in first.source
    assert len(TIMESTAMP.findall(first.source)) >= 2, f"{path.name}: the first cell must list the lecture timestamps"
    assert any("who_is_who_markdown()" in c.source for c in _code_cells(nb)), "show the who's who table"


def test_stored_executed_without_errors(nb):
    nb, path = nb
    for i, cell in enumerate(_code_cells(nb)):
        assert cell.execution_count is not None, f"{path.name}: code cell {i} was never run; refresh the notebook"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: code cell {i} has a stored error: {errors[0].get('ename')}"
        streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "Traceback" not in streams and "Warning" not in streams, f"{path.name}: cell {i} printed {streams[:200]!r}"
    assert nb.metadata.kernelspec.name == "python3"


def test_exercises_follow_the_convention(nb):
    """Each solution cell is followed by a check cell that calls vae_lesson.checks; 2-4 exercises."""
    nb, path = nb
    cells = nb.cells
    solutions = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    assert 2 <= len(solutions) <= 4, f"{path.name}: expected 2-4 exercises, found {len(solutions)}"
    for i in solutions:
        assert cells[i].cell_type == "code"
        assert "Exercise" in cells[i - 1].source, f"{path.name}: the cell before solution {i} must state the exercise"
        nxt = next(c for c in cells[i + 1:] if c.cell_type == "code")
        assert "checks." in nxt.source, f"{path.name}: the code cell after solution {i} must call its check"
        assert "✅" in "".join(o.get("text", "") for o in nxt.outputs), f"{path.name}: the reference solution must pass"


def test_has_a_widget_and_short_cells(nb):
    nb, path = nb
    assert any("widgets." in c.source for c in _code_cells(nb)), f"{path.name}: needs an interactive widget"
    for c in _code_cells(nb):
        assert len(c.source.splitlines()) <= 25, f"{path.name}: a code cell of {len(c.source.splitlines())} lines"


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for p in NOTEBOOKS:
        assert f"notebooks/{p.name}" in readme, f"README.md does not link {p.name}"
