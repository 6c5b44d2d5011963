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
import time
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


LOG = ROOT / "install.log"  # pip's full output of the last setup (git ignores it)


class SetupFailed(Exception):
    """A setup stage failed; the message is the one line to show."""


class PipProgress:
    """Reads pip's output line by line and keeps a one-line account of where it is: packages collected
    (one "Collecting" or "Requirement already satisfied" line each), the file being downloaded, the
    packages being installed. ``line()`` is what the terminal shows."""

    def __init__(self):
        self.collected, self.downloading, self.installing, self.installed = 0, "", 0, 0

    def feed(self, text: str) -> bool:
        """Take one line of pip's output; True when the shown line changed."""
        t = text.strip()
        if t.startswith(("Collecting ", "Requirement already satisfied: ", "Obtaining ")):
            self.collected += 1
            self.downloading = ""
        elif t.startswith("Downloading "):
            self.downloading = t.split()[1].rsplit("/", 1)[-1] + (f" {t.split('(', 1)[1].rstrip(')')}" if "(" in t else "")
        elif t.startswith("Installing collected packages: "):
            self.installing = len(t.split(": ", 1)[1].split(", "))
        elif t.startswith("Successfully installed "):
            self.installed = len(t.split()) - 2
        else:
            return False
        return True

    def line(self) -> str:
        if self.installed:
            return f"installed {self.installed} packages"
        if self.installing:
            return f"collected {self.collected} requirements; installing {self.installing} packages (unpacking, the longest part)"
        return f"collected {self.collected} requirements" + (f"; downloading {self.downloading}" if self.downloading else "")


def run_stage(number: int, total: int, what: str, cmd: list, log=None) -> None:
    """One stage of the setup: show "[n/total] what", run ``cmd`` with its output going to ``log`` (pip's
    lines also drive a progress line), and on failure raise SetupFailed with one line that says what
    failed and where the log is."""
    interactive = sys.stdout.isatty()
    print(f"[{number}/{total}] {what} ...", flush=True)
    start, progress, shown = time.perf_counter(), PipProgress(), ""
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
    except OSError as exc:
        raise SetupFailed(f"[{number}/{total}] {what} failed: {exc}") from None
    tail: list[str] = []
    for raw in proc.stdout:
        if log is not None:
            log.write(raw)
        tail = (tail + [raw.rstrip()])[-20:]
        if progress.feed(raw) and progress.line() != shown:
            shown = progress.line()
            if interactive:
                print(f"\r      {shown[:100]:<100}", end="", flush=True)
            elif progress.collected % 25 == 0 or progress.installing or progress.installed:
                print(f"      {shown}", flush=True)
    code = proc.wait()
    if interactive and shown:
        print()
    if code != 0:
        reason = next((t for t in reversed(tail) if t.startswith(("ERROR", "error:"))),
                      next((t.strip() for t in reversed(tail) if t.strip()), f"exit code {code}"))
        where = f"; the full log is {LOG}" if log is not None else ""
        raise SetupFailed(f"[{number}/{total}] {what} failed: {reason}{where}")
    print(f"      done in {time.perf_counter() - start:.0f} s", flush=True)


def ensure_env() -> None:
    """Create .venv and install the pinned requirements plus vae_lesson (editable), saying what each stage
    does; pip's full output goes to install.log, and a failure ends with one line naming the stage and
    the log."""
    if sys.version_info < (3, 10):
        sys.exit(f"vae-lesson needs Python 3.10 or newer (3.11 is tested); this is {sys.version.split()[0]}")
    if STAMP.exists() and STAMP.read_text() == _fingerprint() and PYTHON.exists():
        return
    start = time.perf_counter()
    print(f"Setting up the course's environment in {VENV} (once; torch's CPU build and JupyterLab, about "
          "1.5 GB: a few minutes on a slow connection). pip's full output goes to install.log.", flush=True)
    pip = [PYTHON, "-m", "pip", "--disable-pip-version-check"]
    try:
        with open(LOG, "w") as log:
            if not PYTHON.exists():
                print("[1/3] creating the environment (python -m venv) ...", flush=True)
                try:
                    venv.EnvBuilder(with_pip=True).create(VENV)
                except Exception as exc:  # noqa: BLE001  (one line, not a traceback)
                    raise SetupFailed(f"[1/3] creating the environment in {VENV} failed: {exc}") from None
            else:
                print("[1/3] the environment exists; updating it", flush=True)
            run_stage(2, 3, "updating pip", pip + ["install", "--progress-bar", "off", "--upgrade", "pip"], log)
            run_stage(3, 3, "downloading and installing the packages of requirements.txt",
                      pip + ["install", "--progress-bar", "off", "-r", "requirements.txt"], log)  # and vae_lesson (-e .)
    except SetupFailed as exc:
        sys.exit(str(exc))
    STAMP.write_text(_fingerprint())
    print(f"Environment ready in {time.perf_counter() - start:.0f} s.", flush=True)


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
    print(f"Open http://127.0.0.1:{port}/?token={token} (the first start trains the model: 15-25 s)", flush=True)
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
    report = ROOT / "test-artifacts" / "test-run.xml"  # pytest's JUnit report: each item's time
    report.parent.mkdir(exist_ok=True)
    start, cpu_before = time.perf_counter(), _children_cpu()
    code = subprocess.call([str(PYTHON), "-m", "pytest", f"--junitxml={report}", *args], cwd=ROOT, env=env)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_before
    print(run_summary(report, wall, cpu, code), flush=True)
    return code


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs: pytest, its workers,
    the notebooks' kernels, the servers and browsers the tests start."""
    try:
        import resource
    except ImportError:  # Windows: no rusage
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_summary(report: Path, wall: float, cpu: float, code: int) -> str:
    """The run's last lines: wall time, CPU time and the ten slowest items (from the JUnit report), also
    written to test-artifacts/test-run.json for benchmarks/run.py (the README's Performance section)."""
    import json
    import xml.etree.ElementTree as ET

    items = []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            items.append((float(case.get("time") or 0), f"{case.get('classname', '')}::{case.get('name', '')}"))
    items.sort(reverse=True)
    summary = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "items": len(items), "exit_code": code,
               "cores": os.cpu_count(), "slowest": [{"seconds": round(t, 1), "item": name} for t, name in items[:10]]}
    (report.parent / "test-run.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Test run: {wall:.0f} s wall, {cpu:.0f} s CPU ({os.cpu_count()} cores), {len(items)} items, "
             f"{'passed' if code == 0 else f'exit code {code}'}. The ten slowest items:"]
    lines += [f"  {t:7.1f} s  {name}" for t, name in items[:10]]
    return "\n".join(lines)


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
