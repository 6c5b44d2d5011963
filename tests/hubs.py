"""A real JupyterHub for the tests, started the way an instructor starts it: `python3 dev.py hub --port P
--state S` (JupyterHub behind configurable-http-proxy from hub/node_modules, one local process per student),
driven through its REST API with the "course-admin" service's token (STATE/api_token).

    from hubs import hub            # a module-scoped fixture: one hub per test module
    hub.add_user("ada"); base = hub.start_server("ada")   # "http://127.0.0.1:PORT/user/ada/"
    token = hub.user_token("ada")   # for the student's own requests to their server

Every wait is derived from the work (tests/patience.py): a start waits as long as the hub's processes (the
hub, its proxy, the students' servers) use CPU, and fails as a hang, named, when they stop moving.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import patience
import pytest
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
PROXY = ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
READY_LINE = "JupyterHub for the course: "


def hub_unavailable() -> str | None:
    """Why a hub cannot run here (no node, no JupyterHub in .venv), or None."""
    import importlib.util

    if shutil.which("node") is None:
        return "node is not installed: the hub tests are skipped (JupyterHub's proxy needs Node.js 20 or newer)"
    if importlib.util.find_spec("jupyterhub") is None or not PROXY.exists():
        return ("JupyterHub or its proxy is not installed: `python3 dev.py test` installs them "
                "(requirements-hub.txt, npm ci --prefix hub)")
    return None


class Hub:
    """One running `python3 dev.py hub`: ``url`` ("http://127.0.0.1:PORT"), ``state`` (its folder), ``api_token``
    (the admin service's token)."""

    def __init__(self, state: Path, port: int):
        self.state, self.port = Path(state), port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.api_token = ""
        self._start()

    # ---- the process --------------------------------------------------------------------------------------------
    def _start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.log = self.state / "dev-hub.out"
        out = open(self.log, "a")
        started = self.log.stat().st_size
        env = dict(os.environ)
        env.pop("VAE_LESSON_HUB_API_TOKEN", None)  # the token file in the state folder, as on a first start
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "hub", "--port", str(self.port),
                                      "--state", str(self.state)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        out.close()
        meter = patience.CpuMeter(self.proc.pid)

        def ready() -> bool:
            said = self.log.read_text(errors="replace")[started:]
            if READY_LINE in said:
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"`dev.py hub` exited with code {self.proc.returncode}:\n{said[-3000:]}")
            return False

        patience.wait_with_progress(ready, meter.read, f"`dev.py hub --port {self.port}` (its output: {self.log})")
        self.api_token = (self.state / "api_token").read_text().strip()

    def pids(self) -> list[int]:
        """The processes of this hub: dev.py, JupyterHub, the proxy, the culler, the servers and their kernels."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """Ctrl-C's signal to `dev.py hub`: it stops the hub, which stops its proxy, culler and servers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        import psutil

        everything = [psutil.Process(pid) for pid in self.pids()]
        self.proc.send_signal(signal.SIGINT)
        meter = patience.CpuMeter(self.proc.pid)
        try:
            patience.wait_with_progress(lambda: self.proc.poll() is not None, meter.read,
                                        f"stopping the hub at {self.url}", limit=patience.patient(30))
        finally:
            for proc in everything:  # anything left behind (a hang above): end it, by its own pid
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass

    def restart(self) -> None:
        """Stop the hub and start it again on the same state folder and port."""
        self.stop()
        self._start()

    # ---- the REST API -------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kw):
        """The hub's REST API (path "/users/ada") with the admin service's token."""
        import requests

        headers = {"Authorization": f"token {self.api_token}", **kw.pop("headers", {})}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers,
                                timeout=kw.pop("timeout", patience.patient(30)), **kw)

    def add_user(self, name: str, admin: bool = False) -> None:
        r = self.api("POST", f"/users/{name}")
        assert r.status_code in (201, 409), r.text  # 409: there already
        if admin:  # the configuration's admin_users ("instructor") are admins from the start
            r = self.api("GET", f"/users/{name}")
            assert r.json().get("admin"), (f"{name} is not an admin: add them to c.Authenticator.admin_users in "
                                           "hub/jupyterhub_config.py (the admin service may not make admins)")

    def user_token(self, name: str) -> str:
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "tests", "expires_in": 3600})
        assert r.status_code in (200, 201), r.text
        return r.json()["token"]

    def login(self, name: str, password: str = "any password"):
        """A browser's session (requests.Session with the hub's cookies) after logging in as ``name`` through the
        hub's login form (the dummy authenticator takes any password; the form needs its _xsrf value)."""
        import re

        import requests

        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=patience.patient(30))
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text) or re.search(r'value="([^"]+)"\s+name="_xsrf"', page.text)
        form = {"username": name, "password": password, "_xsrf": xsrf.group(1) if xsrf else session.cookies.get("_xsrf", "")}
        r = session.post(f"{self.url}/hub/login", data=form, allow_redirects=False, timeout=patience.patient(30))
        assert r.status_code == 302, f"logging in as {name}: {r.status_code} {r.text[:300]}"
        return session

    def server(self, name: str) -> dict | None:
        """The hub's record of the user's default server (ready, pending, url, ...), or None."""
        r = self.api("GET", f"/users/{name}")
        assert r.status_code == 200, r.text
        return r.json().get("servers", {}).get("")

    def start_server(self, name: str) -> str:
        """Start the user's server (a no-op when it runs) and wait until the hub finds it ready; returns its
        base URL through the proxy."""
        self.start_servers(name)
        return f"{self.url}/user/{name}/"

    def start_servers(self, *names: str) -> None:
        """Start several users' servers at once and wait until all are ready (they start in parallel)."""
        for name in names:
            r = self.api("POST", f"/users/{name}/server")
            assert r.status_code in (201, 202) or (r.status_code == 400 and "already running" in r.text), r.text
        meter = patience.CpuMeter(self.proc.pid)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited; its log: {self.state / 'jupyterhub.log'}")
            return all((self.server(n) or {}).get("ready") for n in names)

        patience.wait_with_progress(ready, meter.read, f"starting the servers of {', '.join(names)} "
                                    f"(the hub's log: {self.state / 'jupyterhub.log'})")

    def stop_server(self, name: str) -> None:
        r = self.api("DELETE", f"/users/{name}/server")
        assert r.status_code in (202, 204, 400), r.text  # 400: not running
        meter = patience.CpuMeter(self.proc.pid)
        patience.wait_with_progress(lambda: self.server(name) is None, meter.read, f"stopping the server of {name}")

    def server_pid(self, name: str) -> int:
        """The pid of the user's single-user server process (found by its JUPYTERHUB_USER)."""
        import psutil

        for pid in self.pids():
            try:
                proc = psutil.Process(pid)
                if (any("jupyterhub-singleuser" in part for part in proc.cmdline())
                        and proc.environ().get("JUPYTERHUB_USER") == name):
                    return pid
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        raise LookupError(f"no server process of {name}")


def _copy_models(cache: Path) -> None:
    """The course's trained models into the hub's shared cache, from the developer's cache (so that no hub test
    trains one): vae_lesson.checkpoints.cache_dir(), then ~/.cache/vae-lesson for any model still missing (a
    model from another recipe is retrained over by vae.trained_vae, never loaded)."""
    from vae_lesson.checkpoints import cache_dir

    cache.mkdir(parents=True, exist_ok=True)
    for source in (cache_dir(), Path.home() / ".cache" / "vae-lesson"):
        if source.is_dir():
            for model in source.glob("vae-*.pt"):
                if not (cache / model.name).exists():
                    shutil.copy(model, cache / model.name)


def start_hub(state: Path, port: int | None = None) -> Hub:
    """`python3 dev.py hub --port PORT --state STATE` as a subprocess; returns once it printed its line."""
    return Hub(Path(state), port or free_port())


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub of the test module's own, on a free port, state in a fresh folder whose model-cache holds the
    developer's trained models (when there are any); stopped with its servers at the end of the module."""
    why = hub_unavailable()
    if why:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("hub")
    _copy_models(state / "model-cache")
    running = start_hub(state)
    yield running
    running.stop()
