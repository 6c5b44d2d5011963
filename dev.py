#!/usr/bin/env python3
"""The course's two commands (see README):

    python3 dev.py lab     # set up .venv (first time only) and open JupyterLab on notebooks/
    python3 dev.py test    # set up .venv if needed, then run every test and every notebook
    python3 dev.py app     # the latent explorer (notebook 07) and ELBO playground (03) as a web app
    python3 dev.py grade-course COURSE_DIR  # an nbgrader course from notebooks/ (README: grading)

Needs only Python 3.10+ to start. The environment is rebuilt when requirements.txt or
pyproject.toml change. Extra arguments go to JupyterLab or pytest, e.g.
``python3 dev.py test -k mixture``.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".vae-lesson-installed"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def ensure_env() -> None:
    """Create .venv and install the pinned requirements plus vae_lesson (editable)."""
    if sys.version_info < (3, 10):
        sys.exit(f"vae-lesson needs Python 3.10 or newer (3.11 is tested); this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _fingerprint() and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"Creating the environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PYTHON, "-m", "pip", "--disable-pip-version-check"]
    _run(pip + ["install", "--quiet", "--upgrade", "pip"])
    _run(pip + ["install", "--quiet", "-r", "requirements.txt"])  # includes vae_lesson itself (-e .)
    STAMP.write_text(_fingerprint())
    print("Environment ready.", flush=True)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(args: list[str]) -> list:
    """JupyterLab bound to this machine only (127.0.0.1), with Jupyter's token authentication on (the
    URL with the token is printed and opened in your browser). As root (a container, a fresh cloud
    machine) JupyterLab refuses to start without --allow-root: say so in one line and pass it;
    the server stays on 127.0.0.1 with its token."""
    cmd = [BIN / "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT / 'notebooks'}", *args]
    if running_as_root() and "--allow-root" not in args:
        print("Running as root (as in many containers): starting JupyterLab with --allow-root; "
              "it still listens on 127.0.0.1 only, with its token.", flush=True)
        cmd.append("--allow-root")
    return cmd


def lab(args: list[str]) -> int:
    ensure_env()
    return subprocess.call([str(c) for c in lab_command(args)], cwd=ROOT)


def app(args: list[str]) -> int:
    """Serve apps/latent_explorer.ipynb with Voila on 127.0.0.1, token required (printed below):
    the widgets only, no code, for a projector or a student without JupyterLab."""
    import secrets

    ensure_env()
    token = os.environ.get("VAE_LESSON_APP_TOKEN") or secrets.token_hex(16)
    port = os.environ.get("VAE_LESSON_APP_PORT", "8866")
    print(f"Open http://127.0.0.1:{port}/?token={token} (the first start trains the model: about 15 s)", flush=True)
    cmd = [BIN / "voila", ROOT / "apps" / "latent_explorer.ipynb", "--no-browser", "--Voila.ip=127.0.0.1",
           f"--port={port}", f"--Voila.token={token}", *args]
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def test(args: list[str]) -> int:
    ensure_env()
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    # the tests' start-up file (tests/offline/sitecustomize.py: the offline guard) from the first
    # import on; conftest.py adds it too, for a plain `pytest`, but only after pytest's plugins loaded
    offline = str(ROOT / "tests" / "offline")
    env["PYTHONPATH"] = os.pathsep.join([offline, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env)


def grade_course(args: list[str]) -> int:
    """Write an nbgrader course directory from notebooks/ (tools/nbgrader_course.py; README, "Grading
    a class with nbgrader"). Then run nbgrader with .venv/bin first on PATH (nbgrader runs `alembic`)."""
    ensure_env()
    return subprocess.call([str(PYTHON), str(ROOT / "tools" / "nbgrader_course.py"), *args])


def main(argv: list[str]) -> int:
    commands = {"lab": lab, "test": test, "app": app, "grade-course": grade_course}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
