"""Student versions of the notebooks, generated from the instructor's (one source).

    python -m vae_lesson.student notebooks/ student/

For every notebook: each cell tagged ``solution`` becomes a scaffold (a function keeps its
signature and docstring, and its body becomes ``raise NotImplementedError("✏️ your code here")``; a variable the
student must choose becomes ``None``), every output is cleared, and the checks stay. An
unfinished exercise's check says "not done yet" and lets the rest of the notebook use the
reference implementation, so "Run All" reaches the end.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat

from .checks._core import NOT_DONE

SCAFFOLD_TAG = "exercise"


def scaffold(source: str) -> str:
    """The scaffold of a solution cell: functions keep their ``def`` line(s) and docstring with the
    body replaced by ``raise NotImplementedError(NOT_DONE)`` (the marker the checks read as "not done
    yet"); assignments become ``= None`` per name."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            body_start = node.body[0].lineno
            keep = lines[first - 1:body_start - 1]
            doc = ast.get_docstring(node, clean=False)
            indent = " " * node.body[0].col_offset
            if doc is not None:
                keep += lines[node.body[0].lineno - 1:node.body[0].end_lineno]
            keep.append(f'{indent}raise NotImplementedError("{NOT_DONE}")  # ✏️ replace this line with your code')
            out.extend(keep)
            out.append("")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            target = targets[0]
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            names, count = ", ".join(ast.unparse(e) for e in elts), len(elts)
            value = ", ".join(["None"] * count)
            out.append(f"{names} = {value}  # ✏️ your choice here")
        else:
            raise ValueError(f"a solution cell may hold only functions and assignments, found: {ast.unparse(node)[:60]}")
    return "\n".join(out).rstrip() + "\n"


def student_version(nb):
    """A copy of the notebook with scaffolds for solutions, no outputs and no saved widget state."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            cell.source = scaffold(cell.source)
            cell.metadata["tags"] = [t for t in tags if t != "solution"] + [SCAFFOLD_TAG]
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    notebooks = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print(f"no notebooks (NN_name.ipynb) found in {src}")
        return 1
    dst.mkdir(parents=True, exist_ok=True)
    for path in notebooks:
        nbformat.write(student_version(nbformat.read(path, as_version=4)), dst / path.name)
        print(f"{dst / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
