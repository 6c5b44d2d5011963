"""Help for notebooks run out of order (screen side: imports IPython only when called)."""
from __future__ import annotations


def explain_missing(**where: str) -> None:
    """In a notebook: when a cell uses a name that another cell defines but that has not run yet,
    print which cell to run first, above the usual NameError.

    ``where`` maps a name to a description of the cell that defines it, e.g.
    ``explain_missing(model="the training cell of section 3")``. Outside IPython it does nothing.
    Calling it again replaces the previous mapping (re-running the cell is safe).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with Jupyter
        return
    shell = get_ipython()
    if shell is None:
        return
    hints = {name: str(cell) for name, cell in where.items()}

    def handler(shell, etype, evalue, tb, tb_offset=None):
        name = getattr(evalue, "name", None)
        if name in hints:
            print(f"⚠️ `{name}` is not defined yet: run {hints[name]} first (or use Run > Run All Cells).")
        shell.showtraceback((etype, evalue, tb), tb_offset=tb_offset)

    shell.set_custom_exc((NameError,), handler)
