"""The standalone app (apps/latent_explorer.ipynb, served by `python3 dev.py app`) without a
browser: it runs top to bottom in a kernel of this Python, its widgets are built from the
trained 2-D model and respond when driven from Python; and `dev.py app` asks for loopback and a
token. The browser test (tests/test_browser.py) drives it through Voila in Chromium."""
import ast
from pathlib import Path

import nbformat
import patience

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "latent_explorer.ipynb"


def test_app_notebook_runs_and_its_widgets_respond():
    nb = nbformat.read(APP, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the app is stored without outputs"
    probe = nbformat.v4.new_code_cell(  # the explorer decodes in the browser; the kernel answers a picked digit
        "before = dict(map_explorer.overlay)\n"
        "map_explorer.digit = 3\n"
        "after = map_explorer.overlay\n"
        "text = playground.label.value\n"
        "playground.controls['std'].value = 1.5\n"
        "print(model_2d.latent_dim, before != after, f\"({after['q_mean'][0]:.1f},\", after['n'],"
        " text != playground.label.value)")
    nb.cells.append(probe)
    patience.execute_notebook(nb, APP.parent)  # waits while the kernel works (it may train the 2-D model)
    out = "".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream").split()
    assert out[:2] == ["2", "True"], out
    assert out[2].startswith("(") and int(out[3]) > 10 and out[-1] == "True", out


def test_dev_app_serves_on_loopback_with_a_token():
    """Read dev.py's app command: Voila bound to 127.0.0.1 with a --Voila.token (never without one)."""
    tree = ast.parse((ROOT / "dev.py").read_text())
    app = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "app")
    source = ast.get_source_segment((ROOT / "dev.py").read_text(), app)
    assert '"--Voila.ip=127.0.0.1"' in source and "--Voila.token={token}" in source
    assert "secrets.token_hex" in source
