"""The notebooks and the standalone app in a real browser: JupyterLab (and Voila) driven in
headless Chromium by Playwright.

For every notebook, in the student version a class opens (vae_lesson.student): open it in
JupyterLab, Run All, check that no cell shows an error, that every exercise says "not done yet"
and hands the cells below the reference (as tests/test_student.py checks without a browser: one
run serves both), and that widgets render; then change the widget the way a person would
(keyboard on a slider, a click on a toggle, typing into a box) and check that the picture and the
numbers change. Element screenshots before and after go to ``test-artifacts/browser/``.

Needs Debian's chromium at /usr/bin/chromium (``.ci/run`` installs it with apt-get when it can)
and the playwright package (requirements.txt); never downloads a browser. Without chromium the
tests skip with the reason, and the rest of the suite runs. Servers are started in their own
process group and stopped by their process ids, also when a test fails or is interrupted.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import patience
import pytest
from conftest import assert_student_run_went_through
from servers import CHROMIUM, browser_unavailable, free_port, jupyter_env, stop, wait_for

from vae_lesson import student

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
BIN = Path(sys.executable).parent
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-quic"]

if browser_unavailable():
    pytest.skip(browser_unavailable(), allow_module_level=True)
from playwright import sync_api  # noqa: E402

def ms(seconds: float) -> float:
    """A Playwright timeout (milliseconds) for a wait of ``seconds`` on an idle machine, scaled to this one's
    measured slowness (tests/patience.py): for the short waits, a widget redraw or a page's controls."""
    return 1000 * patience.patient(seconds)


BAD_TEXT = ("Traceback", "Error displaying widget", "model not found", "❌", "Exception")


def _on_sigterm(signum, frame):  # a killed test run still runs the fixtures' finalizers
    raise SystemExit(f"stopped by signal {signum}")


signal.signal(signal.SIGTERM, _on_sigterm)


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="vae-lesson-browser-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(workdir):
    """JupyterLab on 127.0.0.1, a free port and a generated token, serving the student versions of the
    notebooks (what a class opens), written by vae_lesson.student from notebooks/."""
    notebooks = workdir / "notebooks"
    assert student.main([str(ROOT / "notebooks"), str(notebooks)]) == 0
    port, token = free_port(), secrets.token_hex(16)
    log = workdir / "jupyterlab.log"
    cmd = [BIN / "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}", "--allow-root",
           "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: open notebooks without reloading the page
    with open(log, "w") as out:
        proc = subprocess.Popen([str(c) for c in cmd], env=jupyter_env(workdir), stdout=out, stderr=subprocess.STDOUT,
                                cwd=notebooks, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/status", token, proc, log)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "root": notebooks, "pid": proc.pid}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def context(browser):
    """One browser context for the module: JupyterLab's scripts come from its cache after the first page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.set_default_timeout(ms(30))
    yield page
    page.close()


@pytest.fixture(scope="module")
def lab_page(lab, context):
    """One JupyterLab page for all the notebooks: loading JupyterLab costs Chromium about 8 s of CPU,
    so each notebook is opened in the running app (as from its file browser), not by a new page."""
    page = context.new_page()
    page.set_default_timeout(ms(30))
    page.goto(f"{lab['url']}/lab?reset&token={lab['token']}")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=ms(60))
    page.evaluate("async () => { await window.jupyterapp.restored; }")
    yield page
    page.close()


def _open_notebook(page, name: str) -> None:
    """Open ``name`` in the running JupyterLab, as the only notebook, and wait for its kernel to be idle."""
    page.evaluate("""async (path) => {
        const app = window.jupyterapp;
        await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
        const panel = app.shell.currentWidget;
        await panel.context.ready;
        await panel.sessionContext.ready; }""", name)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=ms(60))
    page.wait_for_function("() => (document.querySelector('#jp-main-statusbar') || {}).textContent?.includes('Idle')",
                           timeout=ms(60))


def _close_notebook(page) -> None:
    """Shut down the current notebook's kernel and close it, so the next notebook is alone on the page."""
    page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        if (panel && panel.sessionContext) { await panel.sessionContext.shutdown(); panel.dispose(); } }""")


def _shot(locator, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    path = ARTIFACTS / f"{name}.png"
    locator.screenshot(path=str(path))
    return path


def _wait_changed(page, handle, attribute: str | None, old: str, timeout: float | None = None) -> float:
    """Wait until the element's attribute (or its text) differs from ``old``; returns the seconds taken."""
    start = time.perf_counter()
    if attribute is None:
        page.wait_for_function("([el, s]) => el.innerText !== s", arg=[handle, old], timeout=timeout, polling=10)
    else:
        page.wait_for_function("([el, a, s]) => el.getAttribute(a) !== s", arg=[handle, attribute, old],
                               timeout=timeout, polling=10)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------------------
# JupyterLab: each notebook, Run All, then its widget


def _slider(area, name):
    return area.locator(".widget-slider", has=area.page.locator("label", has_text=name)).first


def _press(key: str, times: int = 1):
    def act(page, area, name):
        handle = _slider(area, name).locator(".noUi-handle")
        handle.focus()
        for _ in range(times):
            page.keyboard.press(key)
    return act


def _type_into(value: str):
    def act(page, area, name):
        box = area.locator(".widget-inline-hbox", has=page.locator("label", has_text=name)).first
        field = box.locator("input").first
        field.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
    return act


def _click_toggle(page, area, name):
    area.locator(".widget-toggle-button", has_text=name).first.click()


def _type_readout(value: str):
    def act(page, area, name):
        _slider(area, name).locator(".widget-readout").click()
        page.keyboard.press("Control+A")
        page.keyboard.type(value)
        page.keyboard.press("Enter")
    return act


# notebook -> (the widget cell's code, what a person does: (action, control), text the label must show after)
WIDGETS = {
    "01_latent_variable_models.ipynb": ("widgets.latent_samples_explorer(model, spiral", _press("End"), "K latents",
                                        r"K = 200"),
    "02_marginal_likelihood.ipynb": ("widgets.importance_sampling_explorer(", _press("ArrowRight", 3), "q mean", None),
    "03_elbo.ipynb": ("widgets.elbo_explorer(", _type_readout("2"), "q mean", r"q = N\(2\.00"),
    "04_variational_inference.ipynb": ("widgets.missing_half_explorer(", _click_toggle, "1 everywhere", None),
    "05_reparameterization.ipynb": ("widgets.gradient_estimator_explorer(", _click_toggle, "pathwise", None),
    "06_amortized_inference.ipynb": ("widgets.refinement_explorer(", _press("End"), "steps", r"after 200 steps"),
    "07_vae.ipynb": ("widgets.interpolation_explorer(", _type_into("12"), "to digit #", r"#12"),
}


def _output_area(page, needle: str):
    cell = page.locator(".jp-Notebook .jp-CodeCell", has=page.locator(".jp-InputArea-editor", has_text=needle)).first
    return cell.locator(".jp-OutputArea").first


def _run_all(page, lab, name: str) -> float:
    """Run All, then wait as long as the notebook makes progress: its kernel (in JupyterLab's process tree)
    uses CPU or another cell finishes. A cell that hangs fails after the idle limit, named."""
    start = time.perf_counter()
    page.locator("#jp-menu-panel .lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    page.wait_for_function("""() => { const cs = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
        const p = cs[cs.length - 1].querySelector('.jp-InputPrompt'); return p && p.textContent.includes('*'); }""",
                           timeout=ms(30), polling=50)
    meter = patience.CpuMeter(lab["pid"])
    prompts = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"

    def finished() -> bool:
        texts = page.evaluate(prompts)
        return bool(texts) and not any("*" in t for t in texts) and bool(re.search(r"\d", texts[-1]))

    def progress() -> float:
        done_cells = sum(1 for t in page.evaluate(prompts) if re.search(r"\d", t) and "*" not in t)
        return meter.read() + done_cells

    patience.wait_with_progress(finished, progress, f"Run All of {name} in JupyterLab")
    return time.perf_counter() - start


def _problems(page) -> list[str]:
    texts = page.evaluate("""() => [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')].map(o =>
        (o.getAttribute('data-mime-type') || '') + ' | ' + o.textContent)""")
    return [t[:300] for t in texts if any(bad in t for bad in BAD_TEXT) or t.startswith("application/vnd.jupyter.error")]


@pytest.mark.parametrize("name", sorted(WIDGETS))
def test_notebook_runs_and_its_widget_responds_in_jupyterlab(name, lab, lab_page):
    needle, act, control, expect = WIDGETS[name]
    page = lab_page
    _open_notebook(page, name)
    try:
        _run_and_use_the_widget(page, lab, name, needle, act, control, expect)
    finally:
        _close_notebook(page)


def _run_and_use_the_widget(page, lab, name, needle, act, control, expect):
    seconds = _run_all(page, lab, name)
    problems = _problems(page)
    assert not problems, f"{name}: outputs show errors after Run All: {problems}"
    printed = "".join(page.evaluate("""() => [...document.querySelectorAll(
        '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]')].map(o => o.textContent)"""))
    assert_student_run_went_through(nbformat.read(lab["root"] / name, as_version=4), printed)
    area = _output_area(page, needle)
    image = area.locator("img.widget-image").first
    image.wait_for(state="visible", timeout=ms(30))
    label = area.locator(".widget-html").last
    _shot(area, f"{name[:2]}_before")
    src, text = image.get_attribute("src"), label.inner_text()
    assert src and src.startswith("blob:"), f"{name}: the widget's image did not render ({src!r})"
    act(page, area, control)
    waited = _wait_changed(page, image.element_handle(), "src", src)
    page.wait_for_function("([el, s]) => el.innerText !== s", arg=[label.element_handle(), text], timeout=ms(10))
    after = label.inner_text()
    _shot(area, f"{name[:2]}_after")
    if expect:
        assert re.search(expect, after), f"{name}: after the change the label reads {after!r}"
    assert not _problems(page), f"{name}: errors after using the widget: {_problems(page)}"
    print(f"{name}: Run All {seconds:.1f} s; the image changed {waited * 1000:.0f} ms after the action")
    if name == "07_vae.ipynb":  # the same page and kernel: no second Run All
        _latent_explorer_follows_the_pointer_and_the_kernel_overlay(page)


EXPLORER = '[data-testid="vae-explorer"]'
_CANVAS_URL = "el => el.toDataURL()"


def _explorer_follows_the_pointer(page, root, name: str) -> list[float]:
    """The anywidget latent explorer (vae_lesson.explorer) under ``root``: it rendered (map, digit, readout),
    and moving the pointer over the map redraws the digit in the browser; returns the ms from each
    pointer move to the changed digit canvas (Playwright round trip included)."""
    latent_map, digit, readout = (root.locator(f'[data-testid="{t}"]') for t in ("latent-map", "digit", "readout"))
    latent_map.wait_for(state="visible", timeout=ms(60))
    assert latent_map.get_attribute("aria-label") and readout.get_attribute("aria-live") == "polite"
    latent_map.scroll_into_view_if_needed()  # the pointer must reach it: in a notebook it may lie below the view
    box = latent_map.bounding_box()
    latencies = []
    for k in range(8):
        old, text = digit.evaluate(_CANVAS_URL), readout.inner_text()
        start = time.perf_counter()
        page.mouse.move(round(box["x"] + box["width"] * (0.2 + 0.08 * k)), round(box["y"] + box["height"] * (0.3 + 0.05 * k)))
        page.wait_for_function("([el, s]) => el.toDataURL() !== s", arg=[digit.element_handle(), old],
                               timeout=ms(10), polling="raf")
        latencies.append(time.perf_counter() - start)
        page.wait_for_function("([el, s]) => el.innerText !== s", arg=[readout.element_handle(), text], timeout=ms(10))
    _shot(root, f"{name}_explorer_after_pointer")
    return sorted(latencies)


def _latent_explorer_follows_the_pointer_and_the_kernel_overlay(page):
    """Notebook 07, after its first widget check: the explorer renders from the kernel's state, decodes under
    the pointer in the browser, and a test digit typed into its box comes back from the kernel as the
    q_phi(z|x) overlay (the map redraws and z jumps to the encoder's mean)."""
    area = _output_area(page, "explorer.latent_explorer(")
    root = area.locator(EXPLORER).last
    _explorer_follows_the_pointer(page, root, "07")
    latent_map, readout = root.locator('[data-testid="latent-map"]'), root.locator('[data-testid="readout"]')
    page.mouse.move(0, 0)  # off the map: the overlay, not the pointer, moves z now
    old_map, old_text = latent_map.evaluate(_CANVAS_URL), readout.inner_text()
    box = root.locator('input[type="number"]')
    box.fill("5")
    box.press("Enter")
    box.dispatch_event("change")
    page.wait_for_function("([el, s]) => el.toDataURL() !== s", arg=[latent_map.element_handle(), old_map], timeout=ms(30))
    page.wait_for_function("([el, s]) => el.innerText !== s", arg=[readout.element_handle(), old_text], timeout=ms(10))
    assert re.search(r"#5\b", readout.inner_text()), readout.inner_text()  # z is now test digit #5's encoder mean
    assert not _problems(page), f"errors after picking a digit: {_problems(page)}"
    _shot(root, "07_explorer_overlay")


# ----------------------------------------------------------------------------------------------
# The standalone app (Voila)


@pytest.fixture(scope="module")
def app(workdir):
    """``voila apps/latent_explorer.ipynb`` as `python3 dev.py app` runs it: loopback, a token."""
    port, token = free_port(), secrets.token_hex(16)
    log = workdir / "voila.log"
    cmd = [BIN / "voila", ROOT / "apps" / "latent_explorer.ipynb", "--no-browser", "--Voila.ip=127.0.0.1",
           f"--port={port}", f"--Voila.token={token}"]
    with open(log, "w") as out:
        proc = subprocess.Popen([str(c) for c in cmd], env=jupyter_env(workdir), stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/voila/static/voila.js", token, proc, log)  # static: starts no kernel
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "log": log, "pid": proc.pid}
    finally:
        stop(proc)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_app_needs_the_token(app):
    """Without the token the app page is not served: it redirects to the login page."""
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{app['url']}/", timeout=10)
    assert info.value.code in (302, 401, 403)
    if info.value.code == 302:
        assert "login" in info.value.headers["Location"]


def _first_page_rendered(app) -> None:
    """Request the app's page once, outside the browser, and wait for it as long as Voila's process tree
    works (it runs the app's notebook before answering: on a first start that trains the 2-D model, on a
    busy machine for minutes). The model is then in the cache and the browser's own request is quick."""
    import threading

    result = {}

    def fetch():
        try:
            req = urllib.request.Request(f"{app['url']}/?token={app['token']}")
            with urllib.request.urlopen(req) as response:
                result["status"] = response.status
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    meter = patience.CpuMeter(app["pid"])
    patience.wait_with_progress(lambda: not thread.is_alive(), meter.read, f"Voila's first page (log: {app['log']})")
    assert result.get("status") == 200, f"Voila's first page: {result} (log: {app['log']})"


def test_app_latent_explorer_responds_to_the_pointer(app, page):
    _first_page_rendered(app)  # Voila runs the app before it answers; the first start may train the model
    page.goto(f"{app['url']}/?token={app['token']}", timeout=ms(60))
    page.wait_for_selector(EXPLORER, timeout=ms(60))
    page.wait_for_selector("img.widget-image", timeout=ms(60))  # the playground
    assert not any(bad in page.inner_text("body") for bad in BAD_TEXT)
    latencies = _explorer_follows_the_pointer(page, page.locator(EXPLORER).first, "app")
    # playground: the ELBO explorer below it
    playground = page.locator(".widget-vbox", has=page.locator(".widget-slider", has_text="q std")).first
    label = playground.locator(".widget-html").last
    text = label.inner_text()
    _type_readout("1.5")(page, playground, "q std")
    page.wait_for_function("([el, s]) => el.innerText !== s", arg=[label.element_handle(), text], timeout=ms(10))
    assert "1.50" in label.inner_text()
    _shot(playground, "app_playground_after")
    latencies.sort()
    (ARTIFACTS / "app_latency.json").write_text(json.dumps({"pointer_to_new_digit_ms": [round(1000 * t, 1) for t in latencies]}))
    print(f"app: pointer move to a new digit canvas (Playwright round trip included), median {1000 * latencies[len(latencies) // 2]:.0f} ms, "
          f"max {1000 * latencies[-1]:.0f} ms")
