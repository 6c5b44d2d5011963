"""Execute notebooks in place so that the stored outputs are fresh, and keep the diffs small.

    .venv/bin/python tools/refresh_notebooks.py                 # every notebook
    .venv/bin/python tools/refresh_notebooks.py notebooks/01_*.ipynb

Runs each notebook top to bottom in a fresh kernel (as "Restart and run all" does), stores
its outputs with the widgets' saved state (so JupyterLab shows the finished progress bars and
the widgets' last pictures before anything is run), drops timings, and prints the wall time.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive outputs of the same stream: how a print is split into chunks depends
    on timing, and the stored notebook should not."""
    merged: list = []
    for out in outputs:
        if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == out.name):
            merged[-1].text += out.text
        else:
            merged.append(out)
    return merged


def stable_widget_ids(nb):
    """Replace the random model ids of saved widgets by 0000...0001, 0000...0002, ... in order of
    first appearance, so re-running a notebook does not rewrite every widget reference."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    if not state:
        return nb
    text = json.dumps(nb)
    ids = sorted(state, key=lambda i: text.find(i))
    for n, old in enumerate(ids, start=1):
        text = text.replace(old, f"{n:032x}")
    return nbformat.from_dict(json.loads(text))


def refresh(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                   record_timing=False).execute()
    seconds = time.perf_counter() - start
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
        cell.id = f"cell-{i:02d}"  # stable ids: diffs show content changes only
    nbformat.write(stable_widget_ids(nb), path)
    return seconds


def main(argv: list[str]) -> None:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        print(f"{p.name}: {refresh(p):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
