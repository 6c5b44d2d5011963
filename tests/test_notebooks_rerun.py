"""Notebooks as students use them: every notebook runs top to bottom twice in ONE kernel, as
after "Run All" followed by another "Run All" (cells re-run on top of their own results)."""
from pathlib import Path

import nbformat
import pytest
from conftest import current_env_kernel_manager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_twice_in_one_kernel(path):
    nb = nbformat.read(path, as_version=4)
    km = current_env_kernel_manager()
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError if a cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
