"""Write an nbgrader course directory from the course's notebooks (one source for lessons and grading).

    .venv/bin/python tools/nbgrader_course.py COURSE_DIR [--notebooks notebooks/] [--only 03_elbo ...]

COURSE_DIR gets
- ``source/<assignment>/<assignment>.ipynb``: one nbgrader assignment per notebook, named after it
  (``01_latent_variable_models`` ... ``07_vae``), so a class can release one lesson at a time;
- ``nbgrader_config.py``: the course root, a sqlite gradebook (``gradebook.db``) beside it, the code
  stub ``raise NotImplementedError("✏️ your code here")`` (the scaffold marker the checks read as
  "not done"), a generous execution timeout, and ``VAE_LESSON_GRADED=1`` for every kernel nbgrader
  starts (graded mode: an unfinished exercise raises ``ExerciseNotDone`` after installing the
  reference, a wrong answer raises ``ExerciseError``; solutions are off).

In each source notebook
- an exercise's ``solution`` cell becomes an autograded answer cell: the ``def`` line(s) and docstring
  stay, the body goes between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` (an assignment such as
  02.3's ``q_mean, q_std = ...`` goes there whole), so ``nbgrader generate_assignment`` leaves the stub;
- the check cell right after it (``checks.<name>(...)``) becomes an autograded test cell worth the
  exercise's points: easy 1, medium 2, hard 3, from the difficulty column of the exercise tables in
  notebooks/README.md (the instructor guide);
- every other cell is read-only.

Then, in COURSE_DIR: ``nbgrader generate_assignment 03_elbo``, ``nbgrader autograde 03_elbo``,
``nbgrader generate_feedback 03_elbo`` (see the README's instructor section).
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

from vae_lesson.checks import NOT_DONE

ROOT = Path(__file__).resolve().parents[1]
NOT_DONE_STUB = f'raise NotImplementedError("{NOT_DONE}")'  # what the checks read as "not done yet"
POINTS = {"easy": 1, "medium": 2, "hard": 3}
GRADED_ENV = "VAE_LESSON_GRADED"
_ROW = re.compile(r"^\|\s*(\d\d\.\d)\s+(.*?)\|\s*(easy|medium|hard)\s*\|", re.M)


def exercise_table(guide: Path = ROOT / "notebooks" / "README.md") -> dict[str, tuple[str, int]]:
    """{answer name: (exercise id, points)} from the instructor guide's exercise tables.

    The answer name is the first backticked name of a row's first column: a function
    (``mixture_log_density``) or the variables a student sets (``q_mean, q_std``)."""
    table = {}
    for ex_id, what, level in _ROW.findall(guide.read_text(encoding="utf-8")):
        names = re.findall(r"`([^`]+)`", what)
        if not names:
            raise ValueError(f"{guide}: exercise {ex_id} names no function in backticks")
        table[names[0].strip()] = (ex_id, POINTS[level])
    if not table:
        raise ValueError(f"{guide}: no exercise rows (| NN.n `name` | easy/medium/hard |) found")
    return table


def answer_name(source: str) -> str:
    """The name a solution cell defines: its function's name, or its assigned names joined by ', '."""
    node = ast.parse(source).body[0]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name
    if isinstance(node, ast.Assign):
        target = node.targets[0]
        return ", ".join(ast.unparse(e) for e in (target.elts if isinstance(target, ast.Tuple) else [target]))
    raise ValueError(f"a solution cell must start with a function or an assignment: {source[:60]!r}")


def with_delimiters(source: str) -> str:
    """The solution cell with each answer between nbgrader's solution delimiters: a function keeps
    its ``def`` line(s) and docstring outside, an assignment goes inside whole (after a comment
    line that says what to set)."""
    tree, lines, out = ast.parse(source), source.splitlines(), []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            body = node.body
            head_end = body[0].lineno - 1
            if ast.get_docstring(node, clean=False) is not None:
                head_end, body = body[0].end_lineno, body[1:]
            if not body:
                raise ValueError(f"function {node.name} has no body to grade")
            indent = " " * body[0].col_offset
            out += lines[first - 1:head_end]
            out += [f"{indent}### BEGIN SOLUTION", *lines[head_end:node.end_lineno], f"{indent}### END SOLUTION", ""]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            names = answer_name(ast.unparse(node))
            out += [f"# ✏️ set {names} here", "### BEGIN SOLUTION",
                    *lines[node.lineno - 1:node.end_lineno], "### END SOLUTION", ""]
        else:
            raise ValueError("a solution cell may hold only functions and assignments, "
                             f"found: {ast.unparse(node)[:60]}")
    return "\n".join(out).rstrip() + "\n"


def _meta(grade_id: str, *, solution=False, grade=False, locked=True, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def nbgrader_source(nb, table: dict[str, tuple[str, int]], name: str = "notebook"):
    """The nbgrader source version of a course notebook (a copy): answer cells, test cells with
    points, everything else read-only; outputs and saved widget state cleared.
    Returns (notebook, [(exercise id, points), ...])."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    graded, cells = [], nb.cells
    check_cells = set()
    for i, cell in enumerate(cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        if "solution" not in tags:
            continue
        what = answer_name(cell.source)
        if what not in table:
            raise ValueError(f"{name}: the exercise defining {what!r} has no row in the instructor guide's tables")
        ex_id, points = table[what]
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or nxt.cell_type != "code" or "checks." not in nxt.source:
            raise ValueError(f"{name}: exercise {ex_id}: the cell after its solution cell must call its check")
        gid = "ex" + ex_id.replace(".", "-")
        cell.source = with_delimiters(cell.source)
        cell.metadata["tags"] = [t for t in tags if t != "solution"] + ["exercise"]
        cell.metadata["nbgrader"] = _meta(f"{gid}-answer", solution=True, locked=False)
        nxt.metadata["nbgrader"] = _meta(f"{gid}-check", grade=True, points=points)
        check_cells.add(i + 1)
        graded.append((ex_id, points))
    for i, cell in enumerate(cells):
        if "nbgrader" not in cell.metadata:
            cell.metadata["nbgrader"] = _meta(f"cell-{i:03d}")
    if not graded:
        raise ValueError(f"{name}: no exercises (cells tagged 'solution')")
    return nb, graded


CONFIG = '''\
# Written by tools/nbgrader_course.py. nbgrader reads this file for every command run in this folder.
import os

c = get_config()  # noqa: F821 (nbgrader defines it)
root = os.path.dirname(os.path.abspath(__file__))  # this folder, wherever it is moved
c.CourseDirectory.root = root
c.CourseDirectory.course_id = "vae-lesson"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(root, "gradebook.db")
# generate_assignment replaces each solution region with this line: the scaffold marker that the
# checks read as "not done yet" (vae_lesson.checks.NOT_DONE).
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
# a notebook that trains a VAE (06, 07) may need minutes on a slow machine
c.Execute.timeout = 1800
# Graded mode for every kernel nbgrader starts (they inherit this environment): an unfinished
# exercise installs the reference (the rest of the notebook still runs) and then fails its test
# cell (0 points); a wrong answer fails it too; checks.solution() is off.
os.environ[{env!r}] = "1"
'''


def write_course(out: Path, notebooks: Path = ROOT / "notebooks", only: list[str] | None = None,
                 guide: Path | None = None) -> dict[str, list[tuple[str, int]]]:
    """Write the course directory; returns {assignment: [(exercise id, points), ...]}."""
    table = exercise_table(guide or notebooks / "README.md")
    paths = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if p.stem in only or p.stem[:2] in only]
        missing = set(only) - {p.stem for p in paths} - {p.stem[:2] for p in paths}
        if missing:
            raise ValueError(f"no notebook {sorted(missing)} in {notebooks}")
    if not paths:
        raise ValueError(f"no notebooks (NN_name.ipynb) in {notebooks}")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(
        CONFIG.format(stub=NOT_DONE_STUB, env=GRADED_ENV), encoding="utf-8")
    result = {}
    for path in paths:
        nb, graded = nbgrader_source(nbformat.read(path, as_version=4), table, path.name)
        dest = out / "source" / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest / path.name)
        result[path.stem] = graded
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course_dir", type=Path)
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--only", nargs="+", help="assignments to write (e.g. 03_elbo, or 03)")
    args = parser.parse_args(argv)
    try:
        result = write_course(args.course_dir, args.notebooks, args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, graded in result.items():
        pts = ", ".join(f"{ex} ({p} pt{'s' if p > 1 else ''})" for ex, p in graded)
        print(f"source/{name}/{name}.ipynb: {pts}; {sum(p for _, p in graded)} points")
    print(f"Course directory: {args.course_dir.resolve()}. Next: cd there and run "
          f"`nbgrader generate_assignment <assignment>` (see README, 'Grading with nbgrader').")
    return 0


if __name__ == "__main__":
    sys.exit(main())
