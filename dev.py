#!/usr/bin/env python3
"""The course's two commands (see README):

    python3 dev.py lab     # set up .venv (first time only) and open JupyterLab on notebooks/
    python3 dev.py test    # set up .venv if needed, then run every test and every notebook
    python3 dev.py app     # the latent explorer (notebook 07) and ELBO playground (03) as a web app
    python3 dev.py grade-course COURSE_DIR  # an nbgrader course from notebooks/ (README: grading)
    python3 dev.py hub [--port 8000] [--state .hub]  # JupyterHub for a class on this machine (README:
                           # instructor section; needs node and npm for the proxy)
    python3 dev.py hub-link REPO_URL [--hub URL] [--branch main] [--path notebooks]
                           # the nbgitpuller link that brings the course into each student's home
    python3 dev.py site [--serve] [--port 8010]  # the course as a static website, into build/site/
                           # (README: the course as a website; needs node and npm for MathJax)

Needs only Python 3.10+ to start. The environment is rebuilt when requirements.txt or
pyproject.toml change; `hub` and `test` also install requirements-hub.txt (JupyterHub and
the idle culler; nbgitpuller is in requirements.txt) into it and configurable-http-proxy into hub/node_modules (npm ci), each once.
`site` and `test` install requirements-site.txt (Sphinx, myst-nb, the book theme, axe-playwright-python) into
it and MathJax 3 into site/node_modules (npm ci), each once.
Extra arguments go to JupyterLab or pytest, e.g. ``python3 dev.py test -k mixture``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
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
    try:
        ensure_hub_env()  # the hub tests (tests/test_hub*.py) drive a real JupyterHub and its proxy
    except SetupFailed as exc:
        if not isinstance(exc, NodeMissing):
            sys.exit(str(exc))
        print(f"{exc} The hub tests will be skipped.", flush=True)
    try:
        ensure_site_env()  # tests/test_site.py builds the site and opens it in Chromium
    except SetupFailed as exc:
        if not isinstance(exc, NodeMissing):
            sys.exit(str(exc))
        print(f"{exc} The site's tests will be skipped.", flush=True)
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


# ---- JupyterHub for a class (python3 dev.py hub) --------------------------------------------------------------
HUB = ROOT / "hub"
HUB_CONFIG = HUB / "jupyterhub_config.py"
HUB_STAMP = VENV / ".vae-lesson-hub-installed"
PROXY = HUB / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_MODULES = ("jupyterhub", "nbgitpuller")


class NodeMissing(SetupFailed):
    """node or npm is not installed (the proxy needs them)."""


def node_missing() -> str | None:
    """Why the hub's proxy cannot be installed or run here (no node or npm on PATH), or None."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if missing:
        return (f"{' and '.join(missing)} not found on PATH: JupyterHub's proxy (configurable-http-proxy, from npm) "
                "needs Node.js 20 or newer with npm; install them (e.g. `apt-get install nodejs npm`, or from "
                "nodejs.org) and run this again.")
    return None


def _file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def ensure_extras(requirements: str, pip_what: str, venv_stamp: Path, npm_dir: Path, npm_what: str,
                  installed: Path, node_needed) -> None:
    """On top of ensure_env: a requirements file of its own into .venv, and npm_dir's packages (`npm ci --prefix
    npm_dir`, the versions of its package-lock.json) into npm_dir/node_modules, each a stage that runs once (a
    stamp holds the hash of what it installed; ``installed`` is a file the npm stage leaves). Raises SetupFailed
    (NodeMissing, with node_needed()'s line, when npm is needed and missing) with one line."""
    npm_stamp = npm_dir / "node_modules" / ".vae-lesson-installed"
    stages = []
    if not (venv_stamp.exists() and venv_stamp.read_text() == _file_hash(ROOT / requirements) + _fingerprint()):
        stages.append("pip")
    if not (npm_stamp.exists() and npm_stamp.read_text() == _file_hash(npm_dir / "package-lock.json")
            and installed.exists()):
        stages.append("npm")
    if "npm" in stages and (why := node_needed()):
        raise NodeMissing(why)
    for n, stage in enumerate(stages, 1):
        if stage == "pip":
            with open(LOG, "a") as log:
                run_stage(n, len(stages), f"installing {pip_what} ({requirements}) into .venv",
                          [PYTHON, "-m", "pip", "--disable-pip-version-check", "install", "--progress-bar", "off",
                           "-r", requirements], log)
            venv_stamp.write_text(_file_hash(ROOT / requirements) + _fingerprint())
        else:
            run_stage(n, len(stages), f"installing {npm_what} (npm ci --prefix {npm_dir.name}) into "
                      f"{npm_dir.name}/node_modules", ["npm", "ci", "--prefix", str(npm_dir), "--no-audit", "--no-fund"])
            npm_stamp.write_text(_file_hash(npm_dir / "package-lock.json"))


def ensure_hub_env() -> None:
    """requirements-hub.txt into .venv and configurable-http-proxy into hub/node_modules (ensure_extras)."""
    ensure_extras("requirements-hub.txt", "the hub's packages: JupyterHub and the idle culler", HUB_STAMP, HUB,
                  "JupyterHub's proxy, configurable-http-proxy", PROXY, node_missing)


# Loads a hub configuration file (argv[1]) as JupyterHub would (exit 2 and one line when it fails), then checks
# that every managed service (the idle culler) can start: its program exists and a `python -m MODULE` finds the
# module (exit 3 and one line when not).
_CONFIG_CHECK = """
import importlib.util, os, shutil, subprocess, sys, traceback
from traitlets.config.loader import PyFileConfigLoader
path = sys.argv[1]
try:
    config = PyFileConfigLoader(os.path.basename(path), os.path.dirname(path)).load_config()
except Exception as exc:
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    line = getattr(exc, 'lineno', None) or (where[-1].lineno if where else '?')
    print(f'line {line}: {type(exc).__name__}: {exc}')
    sys.exit(2)
for service in config.JupyterHub.get('services', []) or []:
    cmd = service.get('command')
    if not cmd:
        continue
    name = service.get('name', '?')
    program = cmd[0] if os.path.isabs(cmd[0]) else shutil.which(cmd[0])
    if not program or not os.access(program, os.X_OK):
        print(f"the hub service {name!r} cannot start: {cmd[0]} is not an executable program")
        sys.exit(3)
    if '-m' in cmd[1:-1]:
        module = cmd[cmd.index('-m', 1) + 1]
        find = 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1].split(".")[0]) is None)'
        if subprocess.run([program, '-c', find, module]).returncode != 0:
            print(f"the hub service {name!r} cannot start: {program} has no module {module} "
                  f"(pip install -r requirements-hub.txt installs jupyterhub-idle-culler)")
            sys.exit(3)
"""


def port_in_use(port: int) -> bool:
    """Something listens on 127.0.0.1:PORT (connections closing in TIME_WAIT do not count, as for the proxy)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_problem(port: int, config: Path, state: Path) -> str | None:
    """What stops the hub from starting, in one line, checked before starting it: a port in use, no node,
    JupyterHub missing from .venv, a configuration file that does not load, a hub service (the idle culler) that
    cannot start."""
    if not 0 < port < 65536:
        return f"--port {port} is not a port number (1-65535)"
    if port_in_use(port):
        return (f"port {port} on 127.0.0.1 is in use (another hub or server?): stop it, or choose another port "
                f"with --port")
    why = node_missing()
    if why:
        return why
    if not PROXY.exists():
        return f"JupyterHub's proxy is not installed ({PROXY} is missing): run `npm ci --prefix hub`"
    check = ("import importlib.util, sys; missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]; "
             "print(' '.join(missing))")
    missing = subprocess.run([str(PYTHON), "-c", check, *HUB_MODULES], capture_output=True, text=True).stdout.split()
    if missing:
        return (f"{', '.join(missing)} not installed in {VENV}: run "
                f"`{PYTHON} -m pip install -r requirements-hub.txt`")
    if not config.is_file():
        return f"the hub's configuration file {config} does not exist"
    result = subprocess.run([str(PYTHON), "-c", _CONFIG_CHECK, str(config)], capture_output=True, text=True,
                            env=_hub_env(port, state))
    said = (result.stdout.strip().splitlines() or result.stderr.strip().splitlines()[-1:] or ["?"])[-1]
    if result.returncode == 2:
        return f"the hub's configuration {config} does not load ({said[:300]}): fix it and run this again"
    if result.returncode != 0:
        return f"{said[:400]} (in {config})"
    return None


def _hub_env(port: int, state: Path) -> dict:
    """The variables hub/jupyterhub_config.py reads."""
    return dict(os.environ, VAE_LESSON_HUB_REPO=str(ROOT), VAE_LESSON_HUB_PORT=str(port), VAE_LESSON_HUB_STATE=str(state))


def hub_token(state: Path) -> str:
    """The admin service's token: $VAE_LESSON_HUB_API_TOKEN, else STATE/api_token (made on the first start, 0600)."""
    if os.environ.get("VAE_LESSON_HUB_API_TOKEN"):
        return os.environ["VAE_LESSON_HUB_API_TOKEN"]
    path = state / "api_token"
    if not path.exists():
        import secrets

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def prepare_models(state: Path) -> None:
    """Train every course model once into STATE/model-cache (the servers load them from there)."""
    code = ("from vae_lesson.vae import RECIPES, trained_vae\n"
            "for name in RECIPES:\n    print(f'      {name}', flush=True); trained_vae(name, progress=False)\n")
    print(f"The course's models in {state / 'model-cache'}: each trained there once (about a minute in all), "
          "then loaded by every student's notebooks 06 and 07 ...", flush=True)
    start = time.perf_counter()
    code_ = subprocess.call([str(PYTHON), "-c", code], cwd=ROOT,
                            env=dict(os.environ, VAE_LESSON_CACHE=str(state / "model-cache")))
    if code_ != 0:
        sys.exit(f"training the course's models failed (exit code {code_}); see above")
    print(f"      done in {time.perf_counter() - start:.0f} s", flush=True)


def hub(args: list[str]) -> int:
    """JupyterHub for the course on http://127.0.0.1:PORT/ with hub/jupyterhub_config.py, in the foreground;
    Ctrl-C (or SIGTERM) stops it with its proxy, idle culler and the students' servers."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 dev.py hub", description=hub.__doc__)
    parser.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (default 8000)")
    parser.add_argument("--state", type=Path, default=ROOT / ".hub",
                        help="the hub's state folder: database, homes, exchange, model cache (default .hub/)")
    parser.add_argument("--config", type=Path, default=HUB_CONFIG, help="JupyterHub's configuration file")
    parser.add_argument("--prepare-models", action="store_true",
                        help="train the course's models into STATE/model-cache before starting (once, about a minute)")
    opts = parser.parse_args(args)
    state, config = opts.state.resolve(), opts.config.resolve()
    if port_in_use(opts.port):  # before any setup: the commonest mistake, said at once
        sys.exit(hub_problem(opts.port, config, state))
    ensure_env()
    try:
        ensure_hub_env()
    except SetupFailed as exc:
        sys.exit(str(exc))
    state.mkdir(parents=True, exist_ok=True)
    problem = hub_problem(opts.port, config, state)
    if problem:
        sys.exit(problem)
    token = hub_token(state)
    if opts.prepare_models:
        prepare_models(state)
    env = _hub_env(opts.port, state)
    env.update(VAE_LESSON_HUB_API_PORT=str(_free_port()), VAE_LESSON_HUB_PROXY_API_PORT=str(_free_port()),
               VAE_LESSON_HUB_API_TOKEN=token, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return run_hub([str(BIN / "jupyterhub"), "-f", str(config)], env, opts.port, state)


def run_hub(cmd: list[str], env: dict, port: int, state: Path) -> int:
    """Start the hub in a session of its own (SIGINT reset to the default, so that it and its services stop in
    seconds), keep its log in STATE/jupyterhub.log, say where it is once it answers and show its log from then
    on; a hub that stops while starting gives one line and the log's path. SIGINT and SIGTERM to this process
    are passed on to the hub, which stops its proxy, culler and servers."""
    import urllib.request

    log_path = state / "jupyterhub.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def forward(signum, frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    ready = threading.Event()
    tail: list[str] = []

    def pump():
        with open(log_path, "a") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if ready.is_set():
                    print(line, end="", flush=True)
                else:
                    tail[:] = (tail + [line.rstrip()])[-40:]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/"
    while proc.poll() is None and not ready.is_set():
        try:
            with urllib.request.urlopen(f"{url}hub/api/", timeout=5) as response:
                if response.status == 200:
                    ready.set()
        except Exception:  # noqa: BLE001 - not answering yet
            time.sleep(0.2)
    if ready.is_set():
        print(f"JupyterHub for the course: {url}  (state in {state}; stop with Ctrl-C)", flush=True)
    code = proc.wait()
    reader.join(5)
    if not ready.is_set():
        errors = [t for t in tail if " E " in t[:30] or t.startswith(("[E", "ERROR")) or "Error" in t]
        said = (errors or [t for t in tail if t.strip()] or [f"exit code {code}"])[-1].strip()
        print(f"JupyterHub stopped while starting (exit code {code}): {said[:300]}; its full log: {log_path}",
              file=sys.stderr, flush=True)
        return code or 1
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code


def nbgitpuller_link(repo: str, hub: str = "http://127.0.0.1:8000", branch: str = "main",
                     path: str = "notebooks", app: str = "lab") -> str:
    """The nbgitpuller link for a hub: a student who opens it logs in, gets a server, and finds the repository
    cloned (or merged with their own edits) in their home, JupyterLab open on ``path`` inside it."""
    from urllib.parse import urlencode

    folder = repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    urlpath = f"{app}/tree/{folder}/{path}".rstrip("/")
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?" + urlencode({"repo": repo, "branch": branch, "urlpath": urlpath})


def hub_link(args: list[str]) -> int:
    """Print the nbgitpuller link that brings the course (REPO_URL) into each student's home on the hub."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 dev.py hub-link", description=hub_link.__doc__)
    parser.add_argument("repo", help="the course's git repository, e.g. https://github.com/OWNER/vae-lesson")
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's address (default: the local hub)")
    parser.add_argument("--branch", default="main")
    parser.add_argument("--path", default="notebooks", help="the folder (or notebook) to open, inside the repository")
    opts = parser.parse_args(args)
    print(nbgitpuller_link(opts.repo, opts.hub, opts.branch, opts.path))
    return 0


# ---- The course as a static website (python3 dev.py site) ------------------------------------------------------
SITE = ROOT / "site"
SITE_OUT = ROOT / "build" / "site"
SITE_STAMP = VENV / ".vae-lesson-site-installed"
MATHJAX = SITE / "node_modules" / "mathjax" / "es5" / "tex-chtml.js"


def _npm_missing() -> str | None:
    if shutil.which("npm") is None:
        return ("npm not found on PATH: the site's MathJax comes from npm (site/package.json); install Node.js 20 "
                "or newer with npm (e.g. `apt-get install nodejs npm`) and run this again.")
    return None


def ensure_site_env() -> None:
    """requirements-site.txt into .venv and MathJax 3 into site/node_modules (ensure_extras)."""
    ensure_extras("requirements-site.txt", "the site's packages: Sphinx, myst-nb, the book theme, "
                  "axe-playwright-python", SITE_STAMP, SITE, "MathJax 3", MATHJAX, _npm_missing)


def build_site(out: Path = SITE_OUT) -> int:
    """Build the static site into ``out`` with .venv's Python (site/build.py: Sphinx and myst-nb on the stored
    notebooks, never executed). The exit code of the build."""
    return subprocess.call([str(PYTHON), str(SITE / "build.py"), str(out)], cwd=ROOT,
                           env=dict(os.environ, MPLBACKEND="Agg"))


def site(args: list[str]) -> int:
    """The course as a static website in build/site/ (any static host serves the folder); --serve serves it on
    127.0.0.1 with Python's http.server and prints the link (stop with Ctrl-C)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 dev.py site", description=site.__doc__)
    parser.add_argument("--serve", action="store_true", help="serve the built site on 127.0.0.1 after building it")
    parser.add_argument("--port", type=int, default=8010, help="the port for --serve (default 8010)")
    opts = parser.parse_args(args)
    if opts.serve and port_in_use(opts.port):
        sys.exit(f"port {opts.port} on 127.0.0.1 is in use: choose another with --port")
    ensure_env()
    try:
        ensure_site_env()
    except SetupFailed as exc:
        sys.exit(str(exc))
    print(f"Building the course's site into {SITE_OUT} (the stored notebooks, not executed) ...", flush=True)
    code = build_site(SITE_OUT)
    if code != 0:
        return code
    print(f"The site is in {SITE_OUT}: open {SITE_OUT / 'index.html'}, or publish the folder on any static host.",
          flush=True)
    if not opts.serve:
        return 0
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE_OUT))
    with http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), handler) as server:
        print(f"Serving the site on http://127.0.0.1:{opts.port}/  (stop with Ctrl-C)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str]) -> int:
    commands = {"lab": lab, "test": test, "app": app, "grade-course": grade_course, "hub": hub, "hub-link": hub_link,
                "site": site}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
