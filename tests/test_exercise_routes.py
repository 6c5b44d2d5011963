"""What a check accepts, the notebook can use (issue 23): every right answer of tests/exercise_answers.py
(float32, loops, lists, torch.distributions, a harmless epsilon) is put into the generated student version
in place of the scaffold, and the notebook runs to its last cell with every check passing. A notebook's
routes run in rounds (round r takes each exercise's r-th route) in one kernel, as a student who re-runs
the notebook after rewriting the answers; models come from the run's shared cache (notebook 07 trains
them under nbval first)."""
import inspect
import re
import shutil
from pathlib import Path

import nbformat
import patience
import pytest
from exercise_answers import ROUTES

from vae_lesson import checks, student

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def exercise_of_check() -> dict[str, str]:
    """check function name -> exercise id ("mixture_log_density" -> "01.1"), read from the checks' sources."""
    out = {}
    for name in checks.__all__:
        fn = getattr(checks, name)
        if inspect.isfunction(fn) and fn.__module__.startswith("vae_lesson.checks.nb"):
            m = re.search(r'run_check\(\s*"Exercise (\d\d\.\d+)', inspect.getsource(fn))
            if m:
                out[name] = m.group(1)
    return out


def exercise_cells(nb) -> list[tuple[int, str]]:
    """(index of the exercise's code cell, exercise id), from the check call in the next code cell."""
    ids, found = exercise_of_check(), []
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            check = next(c for c in nb.cells[i + 1:] if c.cell_type == "code")
            m = re.search(r"checks\.(\w+)\(", check.source)
            assert m and m.group(1) in ids, f"no check call after exercise cell {i}: {check.source[:80]}"
            found.append((i, ids[m.group(1)]))
    return found


def test_every_exercise_has_routes_in_the_table():
    keys = {key for path in NOTEBOOKS for _, key in exercise_cells(student.student_version(
        nbformat.read(path, as_version=4)))}
    assert keys == set(ROUTES) and len(keys) == 21
    assert all(len(routes) >= 2 for routes in ROUTES.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_accepted_route_runs_the_notebook_to_the_end(path, tmp_path):
    base = student.student_version(nbformat.read(path, as_version=4))
    cells = exercise_cells(base)
    rounds = max(len(ROUTES[key]) for _, key in cells)
    nb = nbformat.v4.new_notebook(metadata=base.metadata)
    for r in range(rounds):
        for i, cell in enumerate(base.cells):
            cell = nbformat.from_dict(dict(cell))
            key = dict(cells).get(i)
            if key is not None:
                names = list(ROUTES[key])
                cell.source = ROUTES[key][names[r % len(names)]].strip() + "\n"
            nb.cells.append(cell)
    shutil.copy(path, tmp_path / path.name)  # the kernel's folder, as for a student who downloaded the notebook
    patience.execute_notebook(nb, tmp_path)  # raises at the first error; waits while the kernel works
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.output_type == "stream")
    assert printed.count("✅") == rounds * len(cells), printed[-3000:]
    assert "not done yet" not in printed and "❌" not in printed
