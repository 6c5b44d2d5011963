"""Build the course's static site from the stored notebooks (python3 dev.py site runs this with .venv's Python).

    .venv/bin/python site/build.py [OUT]     # default build/site/

What it does, all from what is in the repository (nothing is executed in a kernel, nothing downloaded):

1. writes the pages into build/site-src/: the home page (generated: the lecture's timestamps from the notebooks'
   section headings, the who's-who and the symbols from ``vae_lesson.notation``), one page per stored notebook
   (a header with each section's lecture time and the downloads), the instructor guide (notebooks/README.md)
   and the README's "For instructors" section;
2. replaces every widget output (a widget needs a live kernel) by one sentence saying what moving it does and
   that it runs in the notebook, with a picture of its first state: built here where the widget is cheap to
   build (the widget cell's own code, run in this process), else the picture the notebook's saved widget state
   holds (``stored_picture``); on notebook 07's page the latent explorer itself,
   exported by ``explorer.export_html`` (2-D and 20-D), runs live in an iframe;
3. writes the student versions (``python -m vae_lesson.student``) for download;
4. runs Sphinx (site/conf.py: myst-nb, the book theme, nb_execution_mode "off") and copies MathJax 3 from
   site/node_modules (npm ci --prefix site) into the site.
"""
from __future__ import annotations

import ast
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = ROOT / "notebooks"
SRC = ROOT / "build" / "site-src"
DOCTREES = ROOT / "build" / "site-doctrees"
MATHJAX = HERE / "node_modules" / "mathjax" / "es5"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# "## 4. Importance sampling (4:15–13:20) · core · 5 min": number, title, lecture times, core/optional, minutes
SECTION = re.compile(r"^## (\d+)\. (.*?)(?: \(([^()]*\d:\d\d[^()]*)\))? · (core|optional) · (\d+) min\s*$")
TIME = re.compile(r"(\d+):(\d\d)(?::(\d\d))?")
# The lecture on Stanford Online's YouTube channel ("Stanford CS236: Deep Generative Models I 2023 I Lecture 6 - VAEs");
# each time in a section heading links to that moment of the video (an ordinary link: nothing is loaded from it)
VIDEO = "https://www.youtube.com/watch?v=8cO61e_8oPY"


def video_links(times: str) -> str:
    """The times of a heading ("1:10:00, 1:17:35", "preview of 39:00") with each time a link into the video."""
    def link(m: re.Match) -> str:
        a, b, c = int(m[1]), int(m[2]), m[3]
        t = a * 3600 + b * 60 + int(c) if c is not None else a * 60 + b
        return f"[{m[0]}]({VIDEO}&t={t}s)"
    return TIME.sub(link, times)

sys.path.insert(0, str(HERE))
from site_slug import jupyter_slug  # noqa: E402

# What moving each widget does, by the function that builds it (the notebooks' widget cells call these).
WIDGET_WORDS = {
    "latent_samples_explorer": "the slider sets $K$, the number of latent values $z_1, \\dots, z_K$, and a toggle "
                               "chooses random draws or evenly spaced quantiles of $p(z)$; the plot redraws "
                               "$p_K(x)$, the mixture of $K$ Gaussians they make, over the spiral data, with its "
                               "average log-likelihood",
    "importance_sampling_explorer": "the sliders set the proposal $q(z)$'s mean and standard deviation and the "
                                    "sample count $K$; the histogram of many independent estimates "
                                    "$\\log \\hat p(x)$ redraws against the exact $\\log p(x)$ (mean 0 and std 1 "
                                    "make $q$ the prior: naive Monte Carlo)",
    "elbo_explorer": "the sliders move $q(z) = \\mathcal{N}(\\text{mean}, \\text{std}^2)$ against the posterior "
                     "$p(z \\mid x)$; the bars show $\\mathrm{ELBO}(q)$ and $\\mathrm{KL}(q \\,\\|\\, p(z \\mid x))$, "
                     "which always add up to $\\log p(x)$",
    "missing_half_explorer": "pick a digit whose top half is hidden and a preset for $\\phi$ (or click the 32 "
                             "hidden pixels to paint $\\phi$): it shows $q$'s image, the exact posterior "
                             "marginals, samples from $q$, and the ELBO, the KL and $\\log p(x_{\\text{bottom}})$",
    "gradient_estimator_explorer": "choose the estimator (score function, with or without a baseline, or "
                                   "reparameterization), the dimension $d$, $\\sigma$ and $K$: the histogram of "
                                   "400 gradient estimates redraws around the true value 1",
    "refinement_explorer": "type a test digit's number and slide the number of refinement steps: its ELBO "
                           "climbs from the encoder's $q_\\phi(z \\mid x)$ towards $\\log p(x)$",
    "latent_explorer": "the pointer on the map decodes the latent point under it, a click pins a point, arrow "
                       "keys move a pin and two pins draw the interpolation strip; typing a test digit's number "
                       "draws its $q_\\phi(z \\mid x)$ and true posterior on the map",
    "interpolation_explorer": "type the numbers of two test digits: the strip redraws the decoded points on the "
                              "straight line between their encodings $\\mu_\\phi(x)$",
    "posterior_explorer": "type a test digit's number: its true posterior $p(z \\mid x)$ is computed on a grid "
                          "beside the encoder's $q_\\phi(z \\mid x)$ and a refined $q$, each with its KL",
    "training.fit": "a progress bar: when the cell runs it counts the training steps, then the cell's figures "
                    "show the result",
}
# Widgets cheap enough to build here for a picture of their first state: the cell's own code runs after this
# set-up (the notebook's earlier cells that it needs, written out). Keyed by (notebook stem, widget function).
PICTURE_SETUP = {
    ("03_elbo", "elbo_explorer"): "from vae_lesson import models, widgets\n"
                                  "toy, x_obs = models.Latent1DModel(prior_std=3.0, a=2.0, c=2.0, noise_std=0.6), 1.2\n",
    ("05_reparameterization", "gradient_estimator_explorer"): "from vae_lesson import widgets\n",
    ("07_vae", "interpolation_explorer"): "from vae_lesson import data, vae, widgets\n"
                                          "digits = data.load_digits(binarized=True)\n"
                                          "x_test, y_test = digits.x_test, digits.y_test\n"
                                          "model_2d = vae.trained_vae('2d', progress=False)\n",
}
# the exported explorers shown on notebook 07's page (their frames' heights: site/static/site.css)
EXPLORERS = {"2d": "the 2-D VAE", "course": "the course's 20-D VAE (sliders for the dims with the most KL)"}


def say(text: str) -> None:
    print(f"      {text}", flush=True)


def sections(nb: dict) -> list[dict]:
    """The notebook's numbered sections: number, title, lecture times (text), core/optional, minutes, anchor."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            m = SECTION.match(line)
            if m:
                found.append({"number": int(m[1]), "title": m[2], "times": m[3] or "", "kind": m[4],
                              "minutes": int(m[5]), "anchor": anchor(line[3:])})
    return found


def anchor(heading: str) -> str:
    """The id myst gives a heading: Jupyter's slug of its text without the math (myst drops $...$ there)."""
    return jupyter_slug(re.sub(r"\$[^$]*\$", "", heading))


def seconds(text: str) -> int | None:
    m = TIME.search(text)
    if not m:
        return None
    a, b, c = int(m[1]), int(m[2]), m[3]
    return a * 3600 + b * 60 + int(c) if c is not None else a * 60 + b


def title(nb: dict) -> str:
    first = "".join(nb["cells"][0]["source"]).splitlines()[0]
    return first.lstrip("# ").strip()


def widget_function(source: str) -> str | None:
    for name in WIDGET_WORDS:
        if re.search(rf"\b{re.escape(name)}\(", source):
            return name
    return None


def widget_picture(stem: str, name: str, source: str) -> bytes | None:
    """The PNG of the widget's first state, or None where building it here would need the notebook's kernel."""
    setup = PICTURE_SETUP.get((stem, name))
    if setup is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(setup, f"<{stem} set-up>", "exec"), namespace)  # noqa: S102 - the repository's own code
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, f"<{stem} widget cell>", "exec"), namespace)  # noqa: S102
    built = eval(compile(ast.Expression(last.value), f"<{stem}>", "eval"), namespace) if last else None  # noqa: S307
    image = getattr(built, "image", None)
    value = getattr(image, "value", b"")
    return bytes(value) or None


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def stored_picture(state: dict, model_id: str) -> bytes | None:
    """The picture a widget showed when the notebook was last run (tools/refresh_notebooks.py saves the widgets'
    state with the notebook): the PNG of the first Image model inside the widget ``model_id``, found by walking
    the saved state's ``IPY_MODEL_`` references; None if the state holds none."""
    seen, todo = set(), [model_id]
    while todo:
        mid = todo.pop(0)
        if mid in seen or mid not in state:
            continue
        seen.add(mid)
        model = state[mid]
        if model.get("model_name") == "ImageModel":
            for buffer in model.get("buffers", []):
                if buffer.get("path") == ["value"] and buffer.get("data"):
                    data = base64.b64decode(buffer["data"])
                    if data.startswith(b"\x89PNG"):
                        return data
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(model.get("state", {})))
    return None


TEX_WORDS = {r"\theta": "θ", r"\phi": "φ", r"\mu": "μ", r"\sigma": "σ", r"\lambda": "λ", r"\eta": "η",
             r"\log": "log", r"\mid": "|", r"\mathrm": "", r"\mathcal": "", r"\text": "", r"\,": " ",
             r"\|": "‖", r"\to": "→", r"\approx": "≈", r"\le": "≤", r"\ge": "≥", r"\dots": "…"}


def plain(text: str) -> str:
    """Inline TeX as plain words for alt text ($\\theta$ -> θ)."""
    for tex, word in TEX_WORDS.items():
        text = text.replace(tex, word)
    return re.sub(r"\s+", " ", text.replace("$", "").replace("{", "").replace("}", "").replace("\\", "")).strip()


def alt_text(source: str, section: str, n: int) -> str:
    """What a figure shows, from its cell: the cell's first full-line comment, else the plotting functions it
    calls, else its first trailing comment; with the section it is in."""
    lines = source.splitlines()
    full = [line.strip()[1:].strip() for line in lines if line.strip().startswith("#") and line.strip()[1:].strip()]
    calls = [c.replace("_", " ") for c in re.findall(r"\b(?:plots|latent_grid|diagrams|em_bound|kl_direction)\.(\w+)\(",
                                                     source) if not c.startswith("_")]
    trailing = [line.split("  # ", 1)[1].strip() for line in lines if "  # " in line and not line.strip().startswith("#")]
    if full:
        what = full[0]
    elif calls:
        what = ", ".join(dict.fromkeys(calls))
    elif trailing:
        what = trailing[0]
    else:
        what = "the figure the code cell above draws"
    what = re.sub(r"\s+", " ", what).strip().rstrip(".:;,")
    return f"Figure {n} of the notebook, in section “{plain(section)}”: {plain(what)}"[:300]


def md(text: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def notebook_header(stem: str, nb: dict) -> dict:
    rows = ["| section | lecture video | |", "|---|---|---|"]
    for s in sections(nb):
        link = f"[{s['number']}. {s['title']}](#{s['anchor']})"
        rows.append(f"| {link} | {video_links(s['times']) or '(no lecture time)'} | {s['kind']}, {s['minutes']} min |")
    return md(
        f"**Lecture video times** ([Stanford CS236, 2023, lecture 6 “VAEs”, Stefano Ermon]({VIDEO}); each time "
        "opens the video there):\n\n" + "\n".join(rows) + "\n\n"
        f"**Download:** {{download}}`the notebook with its outputs <../_files/notebooks/{stem}.ipynb>` · "
        f"{{download}}`the student version <../_files/student/{stem}.ipynb>` (exercises as scaffolds, no "
        "outputs). Open either in JupyterLab (`python3 dev.py lab`) to run the code and move the widgets.",
        "site-header")


def stage_notebook(path: Path, out: Path) -> dict:
    """A copy of the stored notebook for the site: a header, widget outputs replaced, alt text for figures."""
    nb = json.loads(path.read_text())
    stem = path.stem
    state = nb["metadata"].pop("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})  # about 830 KB
    section = title(nb)
    cells = []
    figure = 0
    for i, cell in enumerate(nb["cells"]):
        cells.append(cell)
        if i == 0:
            cells.append(notebook_header(stem, nb))
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("## "):
                    section = re.sub(r" · (core|optional) · \d+ min$", "", line[3:]).strip()
            continue
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        outputs = []
        alts = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIME not in data:
                if "image/png" in data:
                    figure += 1
                    alts.append(alt_text(source, section, figure))
                outputs.append(output)
                continue
            name = widget_function(source)
            words = WIDGET_WORDS.get(name) or "a widget whose controls redraw the picture"
            if name == "latent_explorer" and stem == "07_vae":
                outputs += explorer_outputs(words)
                continue
            picture = (widget_picture(stem, name, source) if name else None) or stored_picture(
                state, data[WIDGET_MIME].get("model_id", ""))
            kind = "A progress bar" if name == "training.fit" else "An interactive widget"
            sentence = (f"{kind}: {words[0].upper() + words[1:] if name == 'training.fit' else words}. "
                        if name == "training.fit" else f"{kind}: {words}. ")
            sentence += ("It runs in the notebook, with a live Python kernel: download the notebook (top of this "
                         "page) and run its cells in JupyterLab.")
            if picture:
                sentence = "The widget as it first appears (a picture). " + sentence
                figure += 1
                alts.append(f"The widget's first state, in section “{plain(section)}”: {plain(words.split(';')[0])}")
                outputs.append({"output_type": "display_data", "metadata": {},
                                "data": {"image/png": base64.b64encode(picture).decode(), "text/plain": "widget"}})
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"text/markdown": f"<div class=\"widget-note\">\n\n{sentence}\n\n</div>",
                                     "text/plain": sentence}})
        cell["outputs"] = outputs
        if alts:
            # myst-nb gives a figure its file path as alt text; this says what it shows (one per cell: the first)
            cell.setdefault("metadata", {}).setdefault("mystnb", {})["image"] = {"alt": alts[0]}
    nb["cells"] = cells
    out.write_text(json.dumps(nb, ensure_ascii=False))
    return nb


def explorer_outputs(words: str) -> list[dict]:
    parts = []
    for name, what in EXPLORERS.items():
        parts.append(
            f'<p><strong>Live in this page: the latent explorer of {what}.</strong> Move the pointer over the map: '
            f'the digit is decoded in your browser from the model\'s weights (no kernel, no server).</p>\n'
            f'<iframe class="vae-explorer-frame vae-explorer-{name}" src="../explorer/explorer_{name}.html" '
            f'title="Latent explorer of {what}: the pointer decodes the latent point under it"></iframe>\n'
            f'<p><a href="../explorer/explorer_{name}.html">Open this explorer on a page of its own</a>.</p>')
    note = (f"In the notebook the widget does the same ({words}); here the test-digit box does nothing, since "
            "that needs the kernel.")
    return [{"output_type": "display_data", "metadata": {},
             "data": {"text/html": "\n".join(parts), "text/plain": "the latent explorer"}},
            {"output_type": "display_data", "metadata": {},
             "data": {"text/markdown": f"<div class=\"widget-note\">\n\n{note}\n\n</div>", "text/plain": note}}]


def home_page(notebooks: list[tuple[str, dict]]) -> str:
    from vae_lesson import notation

    rows = []
    for stem, nb in notebooks:
        for s in sections(nb):
            for part in [p.strip() for p in s["times"].split(",") if p.strip()]:
                rows.append((seconds(part), part, stem, s))
    rows.sort(key=lambda r: (r[0] if r[0] is not None else 10 ** 6, r[2], r[3]["number"]))
    table = ["| lecture video | notebook section | |", "|---|---|---|"]
    for _, part, stem, s in rows:
        table.append(f"| {video_links(part)} | [{stem[:2]} § {s['number']}. {s['title']}](<notebooks/{stem}.ipynb#{s['anchor']}>) "
                     f"| {s['kind']}, {s['minutes']} min |")
    listing = "\n".join(f"- [{title(nb)}](notebooks/{stem}.ipynb): "
                        f"{sum(s['minutes'] for s in sections(nb) if s['kind'] == 'core')} min core, "
                        f"{sum(s['minutes'] for s in sections(nb) if s['kind'] == 'optional')} min optional"
                        for stem, nb in notebooks)
    toc = "\n".join(f"notebooks/{stem}" for stem, _ in notebooks)
    return f"""# Variational autoencoders, step by step

Jupyter notebooks that teach variational autoencoders (VAEs) by following **Stanford CS236 (Deep Generative
Models, 2023), lecture 6 “VAEs”** (Stefano Ermon) in the lecture's own order: latent variable models, why
$p(x)$ is hard, the ELBO, variational inference one data point at a time, the reparameterization trick,
amortized inference and the VAE. Every identity is checked numerically, every concept has a widget, and
every exercise gives instant feedback; the whole course runs offline on a laptop CPU.

This site shows each notebook as it is stored, with its outputs and figures: read it before or after the
lab, on any device, without installing anything. The code runs, and the widgets move, in JupyterLab
(below); the latent explorer of notebook 07 runs right here in the page.

## The notebooks

{listing}

## The lecture, section by section

Each row is a moment of the lecture video and the notebook section that works it through (times as given in
the notebooks' headings).

{chr(10).join(table)}

## How to run it

With Python 3.10 or newer (3.11 is tested), in a clone of the repository:

```bash
python3 dev.py lab     # create .venv, install everything (once), open JupyterLab on notebooks/
python3 dev.py test    # run every test and every notebook
python3 dev.py site    # this site, into build/site/
```

Or download a notebook (each page offers the notebook with its outputs and its student version, whose
exercises are scaffolds to fill in) and open it in a JupyterLab that has the course's `vae_lesson` package.

## Who's who, and the symbols

The same symbols and names are used everywhere in the course (`vae_lesson.notation`, shown at the top of every
notebook):

{notation.who_is_who_markdown()}

```{{toctree}}
:maxdepth: 1
:caption: Notebooks
:hidden:

{toc}
```

```{{toctree}}
:maxdepth: 1
:caption: For instructors
:hidden:

notebooks/README
for-instructors
```
"""


def instructor_section() -> str:
    """The README's "For instructors" section (with "A class on JupyterHub"), one heading level up."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## For instructors")
    end = text.index("\n## ", start + 5)
    out, fenced = [], False
    for line in text[start:end].strip().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("##"):
            line = line[1:]
        out.append(line)
    return "\n".join(out) + "\n"


def stage() -> None:
    if SRC.exists():
        shutil.rmtree(SRC)
    (SRC / "notebooks").mkdir(parents=True)
    for name in ("conf.py", "site_slug.py"):
        shutil.copy(HERE / name, SRC / name)
    shutil.copytree(HERE / "static", SRC / "static")
    files = SRC / "_files"
    (files / "notebooks").mkdir(parents=True)
    notebooks = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(path, files / "notebooks" / path.name)
        notebooks.append((path.stem, stage_notebook(path, SRC / "notebooks" / path.name)))
    say(f"{len(notebooks)} notebook pages staged")
    made = subprocess.run([sys.executable, "-m", "vae_lesson.student", str(NOTEBOOKS), str(files / "student")],
                          cwd=ROOT, capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"the student versions failed (python -m vae_lesson.student): {made.stderr.strip()[-800:]}")
    say("student versions written (python -m vae_lesson.student)")
    guide = (NOTEBOOKS / "README.md").read_text()
    (SRC / "notebooks" / "README.md").write_text(guide)
    (SRC / "for-instructors.md").write_text(instructor_section())
    (SRC / "index.md").write_text(home_page(notebooks))
    extra = SRC / "_extra" / "explorer"
    extra.mkdir(parents=True)
    from vae_lesson import data, explorer, vae

    digits = data.load_digits(binarized=True)
    for name, what in EXPLORERS.items():
        explorer.export_html(vae.trained_vae(name, progress=False), digits.x_test, digits.y_test,
                             extra / f"explorer_{name}.html", title=f"VAE latent explorer: {what}")
    say("latent explorers exported (explorer.export_html: 2-D and 20-D)")


def build(out: Path) -> Path:
    start = time.perf_counter()
    if not (MATHJAX / "tex-chtml.js").exists():
        raise SystemExit(f"MathJax is not installed ({MATHJAX / 'tex-chtml.js'} is missing): run "
                         "`npm ci --prefix site`")
    stage()
    if out.exists():
        shutil.rmtree(out)
    conf = (SRC / "conf.py").read_text().replace("html_extra_path = []", 'html_extra_path = ["_extra"]')
    (SRC / "conf.py").write_text(conf)
    result = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(DOCTREES), str(SRC),
                             str(out)], cwd=ROOT, env=dict(os.environ, MPLBACKEND="Agg"))
    if result.returncode != 0:
        raise SystemExit(f"sphinx-build failed (exit code {result.returncode}); its messages are above")
    target = out / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(MATHJAX / "tex-chtml.js", target / "tex-chtml.js")
    for folder in ("input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre"):
        if (MATHJAX / folder).exists():
            shutil.copytree(MATHJAX / folder, target / folder, dirs_exist_ok=True)
    for junk in [out / ".buildinfo", *(out / "_static").glob("*macros.html")]:  # the theme's templates, not pages
        if junk.is_file():
            junk.unlink()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    say(f"built in {time.perf_counter() - start:.0f} s: {out} ({size / 1e6:.1f} MB)")
    return out


if __name__ == "__main__":
    build(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "build" / "site")
