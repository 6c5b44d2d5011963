"""Servers for the tests (JupyterLab, Voila, `python3 dev.py lab`): a free loopback port, waiting
until one answers, stopping one with its whole process group, and private Jupyter directories so
that a test never reads or writes the user's own configuration."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, token: str, proc: subprocess.Popen, log: Path) -> float:
    """Wait until ``url`` answers 200 (with the token), as long as the server's process tree keeps working
    (patience.wait_with_progress: it fails only when the server neither answers nor uses CPU for the idle
    limit, or exits). Returns the seconds waited."""
    import patience

    meter = patience.CpuMeter(proc.pid)

    def answered() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}; its log:\n{log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=patience.patient(5)) as response:
                return response.status == 200
        except Exception:  # noqa: BLE001 - not up yet
            return False

    return patience.wait_with_progress(answered, meter.read, f"the server at {url} (log: {log})")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it ends its kernels), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def jupyter_env(work: Path) -> dict:
    env = dict(os.environ)
    for name in ("config", "runtime", "settings", "workspaces", "data"):
        (work / name).mkdir(exist_ok=True)
    env.update(JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(work / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),
               JUPYTER_DATA_DIR=str(work / "data"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg")
    news = work / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return env


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here (no Debian chromium, no playwright), or None."""
    if not Path(CHROMIUM).exists():
        return ("no chromium at /usr/bin/chromium: browser tests skipped (on Debian: apt-get install chromium; "
                ".ci/run does this when it runs as root)")
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -r requirements.txt)"
    return None


def launch_chromium():
    """A module's headless Debian Chromium, driven by playwright (for a fixture: ``yield from launch_chromium()``);
    closed when the fixture ends."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()
