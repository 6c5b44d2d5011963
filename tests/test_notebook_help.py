"""explain_missing: a cell run before the cell that defines its inputs says which cell to run."""
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from vae_lesson.notebook import explain_missing


def test_names_the_cell_to_run_first():
    shell = InteractiveShell.instance()
    explain_missing(model="the training cell of section 3")
    with capture_output() as out:
        result = shell.run_cell("model.sample(3)")
    assert result.error_in_exec is not None  # still an error...
    assert "run the training cell of section 3 first" in out.stdout  # ...that says what to do
    with capture_output() as out:
        shell.run_cell("some_other_name")
    assert "first" not in out.stdout  # unknown names keep the plain NameError
    explain_missing(model="section 3")  # calling it again replaces the hints
    with capture_output() as out:
        shell.run_cell("model")
    assert "run section 3 first" in out.stdout


def test_outside_ipython_does_nothing(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    explain_missing(model="anything")  # no error
