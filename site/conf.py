"""Sphinx configuration of the course's static site (python3 dev.py site; site/build.py writes the pages into
build/site-src/ and runs Sphinx on them with this file). Nothing is loaded from outside the site: MathJax 3
ships in _static/mathjax (from npm, site/package.json), and the Jupyter widget scripts' CDNs are off."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # site_slug (the Jupyter-style heading anchors)

project = "VAEs, step by step (CS236 lecture 6)"
author = "vae-lesson"
copyright = "the vae-lesson authors"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "VAEs, step by step"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "light"}  # the theme's console message otherwise
html_static_path = [str(HERE / "static")]
html_css_files = ["site.css"]
html_js_files = ["site.js"]
html_extra_path = []  # build.py adds the exported explorers and the downloads folder
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None

# the notebooks are shown as stored: never executed here
nb_execution_mode = "off"
nb_render_markdown_format = "myst"  # math in the notebooks' Markdown outputs
nb_ipywidgets_js = {}  # no require.js or @jupyter-widgets/html-manager from a CDN
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_heading_slug_func = "site_slug.jupyter_slug"  # the notebooks' own links: #2.-Slide-11:-...
suppress_warnings = ["myst.header"]

# MathJax 3 inside the site (copied by build.py into _static/mathjax/)
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"options": {"enableMenu": False}}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "_files", "_extra", "static"]


def setup(app):
    app.set_html_assets_policy("always")  # MathJax on every page (search, index) too
