"""The course's static site (python3 dev.py site; site/build.py), built once and opened page by page from disk in
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) with every request that is not a file://
URL aborted and counted.

Every page: no request outside the site, no console error, every image loaded, with alt text that says what it
shows (not a file path or a hash), every internal link and anchor resolved, no TeX left unrendered in the
visible text, and no serious or critical axe-core violation (axe-playwright-python, offline). On notebook 07's
page the latent explorer runs in its iframe: the pointer decodes as ``model.decode`` does. Three pages are
photographed at phone width (390 px) and desktop width into test-artifacts/site/, and nothing may widen the
page at 390 px. Without chromium, playwright, the site's packages (requirements-site.txt) or MathJax
(npm ci --prefix site) the tests skip with the reason.
"""
from __future__ import annotations

import html
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import patience
import pytest
import torch
from servers import CHROMIUM, browser_unavailable, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "site"
MATHJAX = ROOT / "site" / "node_modules" / "mathjax" / "es5" / "tex-chtml.js"


def _unavailable() -> str | None:
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme", "axe_playwright_python")
               if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed: pip install -r requirements-site.txt (python3 dev.py test does)"
    if not MATHJAX.exists():
        return "MathJax is not installed: npm ci --prefix site (python3 dev.py test does, with npm)"
    return browser_unavailable()


if _unavailable():
    pytest.skip(_unavailable(), allow_module_level=True)

# the visible text of a page, without code (a code cell may hold TeX in a string) and without rendered math
VISIBLE_TEXT = """() => {
  const skip = 'pre, code, script, style, mjx-container, .highlight, textarea';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || el.closest(skip) || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    parts.push(node.textContent);
  }
  return parts.join(' ');
}"""
IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(r => { img.onload = img.onerror = r; })));
  return imgs.map(img => ({src: img.getAttribute('src'), alt: img.getAttribute('alt'), width: img.naturalWidth}));
}"""
UNRENDERED_TEX = ("$$", "\\frac", "\\mathbb", "\\mathcal", "\\mid", "\\theta", "\\(", "\\[")
FILE_LIKE = re.compile(r"\.(png|jpe?g|svg|gif|webp)\b|^[0-9a-f]{12,}|_images/|/", re.I)


@pytest.fixture(scope="module")
def site():
    """The site, built once into a temporary folder by the build `python3 dev.py site` runs."""
    out = Path(tempfile.mkdtemp(prefix="vae-lesson-site-")) / "site"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "site" / "build.py"), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=patience.patient(300))
    seconds = time.perf_counter() - start
    assert result.returncode == 0, f"the site's build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert warnings == [], "the site's build gave warnings:\n" + "\n".join(warnings[:20])
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"site built in {seconds:.1f} s, {size / 1e6:.1f} MB")
    assert size < 30e6, f"the site is {size / 1e6:.1f} MB (at most 30 MB)"
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def open_offline(browser, path: Path, width: int = 1280, height: int = 900):
    """The page at ``path`` from disk, everything that is not file:// aborted: (page, aborted urls, errors)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    aborted, errors = [], []

    def route(route, request):  # exactly (route, request): another signature fails silently and goto hangs
        if request.url.startswith("file://"):
            route.continue_()
        else:
            aborted.append(request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}") if r.url.startswith("file://") else None)
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=1000 * patience.patient(30))
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
                           timeout=1000 * patience.patient(20))
    page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
    return page, aborted, errors


_ids: dict[Path, set[str]] = {}


def ids_of(path: Path) -> set[str]:
    if path not in _ids:
        text = path.read_text(errors="replace")
        _ids[path] = {html.unescape(v) for v in re.findall(r'\b(?:id|name)="([^"]*)"', text)}
    return _ids[path]


def broken_links(hrefs: list[str]) -> list[str]:
    """The links (absolute URLs) into the site whose file, or whose anchor in it, does not exist."""
    broken = []
    for href in sorted(set(hrefs)):
        parts = urlsplit(href)
        if parts.scheme != "file":
            continue
        target = Path(unquote(parts.path))
        if not target.exists():
            broken.append(f"{href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_of(target):
            broken.append(f"{href} (no such anchor)")
    return broken


async def _visit(browser, axe, path: Path, site: Path, gate) -> tuple[str, dict]:
    async with gate:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        aborted, errors = [], []

        async def route(route, request):  # exactly (route, request): another signature fails silently
            if request.url.startswith("file://"):
                await route.continue_()
            else:
                aborted.append(request.url)
                await route.abort()

        await context.route("**/*", route)
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}") if r.url.startswith("file://") else None)
        await page.goto(path.resolve().as_uri(), wait_until="load", timeout=1000 * patience.patient(30))
        await page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
        images = await page.evaluate(IMAGES)
        text = await page.evaluate(VISIBLE_TEXT)
        links = broken_links(await page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"))
        # preload off: axe would fetch the style sheets with XMLHttpRequest, which file:// refuses
        # code cells' colours (the theme's accessible Pygments style) are checked in full on notebook 07's page
        # only: colour contrast over thousands of highlighted spans is most of axe's time on a notebook page
        context = None if path.name in ("07_vae.html", "index.html") else {"exclude": [[".highlight"]]}
        results = await axe.run(page, context=context,
                                options={"iframes": False, "preload": False, "resultTypes": ["violations"]})
        serious = [f"{v['id']} ({v['impact']}): {v['help']}; e.g. {v['nodes'][0]['html'][:160]}"
                   for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        await page.context.close()
        return str(path.relative_to(site)), {"aborted": aborted, "errors": errors, "images": images, "text": text,
                                             "links": links, "axe": serious}


async def _visit_all(site: Path, pages: list[Path]) -> dict:
    import asyncio

    from axe_playwright_python.async_playwright import Axe
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        gate = asyncio.Semaphore(3)  # a few pages at a time: axe on a long notebook page takes seconds
        try:
            found = await asyncio.gather(*(_visit(browser, Axe(), path, site, gate) for path in pages))
        finally:
            await browser.close()
    return dict(found)


@pytest.fixture(scope="module")
def visits(site):
    """Every page of the site visited once (a few at a time): what each check needs, by the page's path."""
    import asyncio

    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    assert len(pages) >= 13, f"only {len(pages)} pages: {pages}"
    start = time.perf_counter()
    found = asyncio.run(_visit_all(site, pages))
    print(f"{len(pages)} pages visited in {time.perf_counter() - start:.1f} s")
    return found


def _failures(visits, key, pick=lambda v: v):
    return {name: pick(v[key]) for name, v in visits.items() if pick(v[key])}


def test_every_page_loads_nothing_from_outside_and_has_no_console_error(visits):
    assert _failures(visits, "aborted") == {}, "pages asked the network for these (aborted)"
    assert _failures(visits, "errors") == {}, "console errors"


def test_every_image_loads_and_says_what_it_shows(visits):
    assert sum(len(v["images"]) for v in visits.values()) >= 35  # the stored figures and widget pictures
    assert _failures(visits, "images", lambda imgs: [i["src"] for i in imgs if not i["width"]]) == {}, \
        "images that did not load"
    bad_alt = _failures(visits, "images", lambda imgs: [f"{i['src']}: alt={i['alt']!r}" for i in imgs
                                                       if not (i["alt"] or "").strip() or len(i["alt"]) < 12
                                                       or FILE_LIKE.search(i["alt"].split(":")[0])])
    assert bad_alt == {}, "images without alt text that says what they show"


def test_internal_links_and_anchors_resolve(visits):
    assert _failures(visits, "links") == {}


def test_no_unrendered_tex_in_the_visible_text(visits):
    left = _failures(visits, "text", lambda t: [m for m in UNRENDERED_TEX if m in t])
    assert left == {}, "TeX left unrendered in the visible text"


def test_no_serious_or_critical_accessibility_violation(visits):
    assert _failures(visits, "axe") == {}


def test_home_page_has_the_lecture_table_and_the_whos_who(site, visits):
    text = visits["index.html"]["text"]
    for words in ("The lecture, section by section", "Who’s who", "How to run it", "1:21:40", "0:00"):  # smart quotes
        assert words in text, f"the home page lacks {words!r}"
    home = (site / "index.html").read_text()
    assert re.search(r"dev\.py(<[^>]*>\s*)*\s*(<[^>]*>)*lab", home), "the home page does not say how to run it"
    assert home.count('href="notebooks/') >= 40, "the lecture table does not link into the notebooks' sections"


def test_notebook_pages_have_lecture_times_downloads_and_no_bare_widget_fallback(site, visits):
    notebooks = sorted((site / "notebooks").glob("0*.html"))
    assert len(notebooks) == 7
    for path in notebooks:
        text = visits[str(path.relative_to(site))]["text"]
        source = path.read_text()
        assert "Lecture video times" in text, path.name
        assert not re.search("run the notebook.s cells to use it", text), f"{path.name} shows a widget's bare text fallback"
        downloads = re.findall(r'href="(\.\./_downloads/[^"]+\.ipynb)"', source)
        assert len(downloads) == 2 and all((path.parent / d).resolve().exists() for d in downloads), path.name
        for widget in re.findall(r'<div class="widget-note">(.*?)</div>', source, re.S):
            assert "runs in the notebook" in widget or "does the same" in widget


def _wait_frame(frame, frames_before):
    frame.wait_for_function("(n) => window.__vaeExplorers[0].frames > n", arg=frames_before, polling="raf",
                            timeout=1000 * patience.patient(10))


def test_notebook_07_explorer_decodes_under_the_pointer(site, browser):
    from vae_lesson import vae

    model = vae.trained_vae("2d", progress=False)
    page, aborted, errors = open_offline(browser, site / "notebooks" / "07_vae.html")
    iframe = page.locator('iframe[src$="explorer_2d.html"]')
    iframe.scroll_into_view_if_needed()
    frame = iframe.element_handle().content_frame()
    frame.wait_for_function("() => (window.__vaeExplorers || []).length > 0", timeout=1000 * patience.patient(20))
    latent_map = frame.locator('[data-testid="latent-map"]')
    latent_map.scroll_into_view_if_needed()
    box, inner = latent_map.bounding_box(), latent_map.evaluate("e => { const r = e.getBoundingClientRect(); "
                                                                  "return [r.left, r.top]; }")
    drawn = []
    for fx, fy in [(0.3, 0.3), (0.7, 0.6)]:
        x, y = round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"])
        frames = frame.evaluate("() => window.__vaeExplorers[0].frames")
        page.mouse.move(x, y)
        _wait_frame(frame, frames)
        z = frame.evaluate("([x, y]) => window.__vaeExplorers[0].zAt(x, y)",
                           [x - box["x"] + inner[0], y - box["y"] + inner[1]])
        with torch.no_grad():
            expected = model.decode(torch.tensor([z], dtype=torch.float32))[0].double().numpy()
        in_page = np.array(frame.evaluate("(z) => Array.from(window.__vaeExplorers[0].decode(z))", z))
        assert np.abs(in_page - expected).max() <= 1e-5, f"the page's decoder differs from model.decode at z = {z}"
        drawn.append(frame.evaluate("() => Array.from(document.querySelector('[data-testid=\"digit\"]')"
                                    ".getContext('2d').getImageData(0, 0, 40, 40).data)"))
    assert np.abs(np.array(drawn[0]) - np.array(drawn[1])).max() > 10, "the digit did not change as the pointer moved"
    assert page.locator('iframe[src$="explorer_course.html"]').count() == 1
    assert aborted == [] and errors == []
    page.context.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_screenshots_and_nothing_overflows(site, browser, width):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "notebooks/03_elbo.html", "notebooks/07_vae.html"):
        page, aborted, errors = open_offline(browser, site / name, width=width, height=844 if width < 500 else 900)
        wide = page.evaluate("() => document.documentElement.scrollWidth") - width
        stem = name.replace("notebooks/", "").replace(".html", "")
        page.screenshot(path=str(ARTIFACTS / f"{stem}_{width}.png"), full_page=False)
        if stem == "07_vae":
            frame = page.locator("iframe.vae-explorer-frame").first
            frame.scroll_into_view_if_needed()
            frame.element_handle().content_frame().wait_for_function(
                "() => (window.__vaeExplorers || []).length > 0 && window.__vaeExplorers[0].frames > 0",
                timeout=1000 * patience.patient(20))
            page.screenshot(path=str(ARTIFACTS / f"{stem}_explorer_{width}.png"))
            for element in page.locator("iframe.vae-explorer-frame").element_handles():
                inner = element.content_frame()
                inner.wait_for_function("() => (window.__vaeExplorers || []).length > 0",
                                        timeout=1000 * patience.patient(20))
                needed = inner.evaluate("() => document.documentElement.scrollHeight")
                shown = element.evaluate("e => e.clientHeight")
                assert needed <= shown + 2, f"the explorer {element.get_attribute('src')} needs {needed} px, its " \
                                            f"frame is {shown} px at {width} px wide (site/static/site.css)"
        page.context.close()
        assert wide <= 0, f"{name} at {width} px is {wide} px wider than the screen (scrolls sideways)"


def test_every_widget_but_the_progress_bar_and_the_live_explorer_gets_a_picture_of_its_first_state():
    """On the site a widget is a picture and a sentence: built where cheap, else the picture the stored
    notebook's saved widget state holds (site/build.py, stored_picture); never the sentence alone."""
    import json

    spec = importlib.util.spec_from_file_location("site_build", ROOT / "site" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    missing, found = [], 0
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        state = nb["metadata"].get("widgets", {}).get(build.WIDGET_STATE_MIME, {}).get("state", {})
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                view = output.get("data", {}).get(build.WIDGET_MIME)
                name = build.widget_function("".join(cell["source"])) if view else None
                if not view or name in ("training.fit", "latent_explorer"):
                    continue
                picture = build.stored_picture(state, view["model_id"])
                if picture is None and (path.stem, name) not in build.PICTURE_SETUP:
                    missing.append(f"{path.stem}: {name}")
                found += picture is not None
    assert not missing, f"widgets with neither a stored picture nor a build-time one: {missing}"
    assert found >= 7
    assert build.stored_picture({}, "nothing") is None


def test_each_lecture_time_links_to_that_moment_of_the_video():
    spec = importlib.util.spec_from_file_location("site_build_links", ROOT / "site" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.video_links("preview of 39:00, 1:10:00") == (
        f"preview of [39:00]({build.VIDEO}&t=2340s), [1:10:00]({build.VIDEO}&t=4200s)")
    assert build.video_links("") == "" and "youtube.com/watch?v=" in build.VIDEO
