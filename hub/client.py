"""A small client for the course's JupyterHub (`python3 dev.py hub`), through its real interfaces only:
the hub's REST API, each user's server's REST API (contents, kernels) and the kernel websocket, all
through the hub's proxy, as a browser reaches them. The tests (tests/test_hub_nbgrader.py) and the
benchmark (benchmarks/run.py, section "hub") drive students and the instructor with it.

    from hub.client import Hub
    hub = Hub("http://127.0.0.1:8000", api_token=open(".hub/api_token").read().strip())
    hub.add_user("ada")
    ada = hub.start_server("ada")                    # a UserServer, with a token of ada's own
    ada.upload("course/03_elbo.ipynb", json.loads(Path("notebooks/03_elbo.ipynb").read_text()))
    with ada.start_kernel("course") as kernel:       # its working folder: ~/course
        print(kernel.run("import os; print(os.getcwd())"))
        run = kernel.run_notebook(ada.download_notebook("course/03_elbo.ipynb"))
    print(run.wall_s, run.error)                     # error: None when every cell ran

Waits: a kernel's cell has no fixed timeout (a cell that trains a model may take minutes); it fails with
``Hang`` when nothing moves for ``idle_limit`` seconds: no message from the kernel and no growth of an
optional ``progress()`` number (the CPU seconds of the user's server and kernel: ``TreeMeter`` on the
process that ``server_process`` finds, when the hub runs on this machine). Needs ``requests`` and
``websocket-client``; ``psutil`` for the local measurements. Imports nothing of the course or of JupyterHub.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

import requests
import websocket  # websocket-client

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HubError(RuntimeError):
    """The hub or a user's server answered something unexpected (the message says what and where)."""


class Hang(HubError):
    """The awaited work made no progress (no kernel message, no CPU used) for the idle limit."""


def _check(resp: requests.Response, what: str, ok=(200, 201, 202, 204)) -> requests.Response:
    if resp.status_code not in ok:
        raise HubError(f"{what}: HTTP {resp.status_code} from {resp.request.method} {resp.url}: {resp.text[:300]}")
    return resp


# ----------------------------------------------------------------------------------------------
# the hub


class Hub:
    """The hub's REST API (``/hub/api``) with a token that may manage users and servers (the
    "course-admin" service's token, in the state folder's ``api_token``)."""

    def __init__(self, url: str, api_token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {api_token}"
        self.timeout = timeout  # one HTTP request (not a spawn)

    def api(self, method: str, path: str, **kw) -> requests.Response:
        """``method`` on ``/hub/api`` + ``path`` (e.g. ``"/users/ada"``)."""
        kw.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.url}/hub/api{path}", **kw)

    def add_user(self, name: str, admin: bool = False) -> None:
        """Create the user (nothing happens when it exists)."""
        resp = self.api("POST", f"/users/{quote(name)}", json={"admin": admin})
        _check(resp, f"adding user {name!r}", ok=(201, 409))

    def user(self, name: str) -> dict:
        return _check(self.api("GET", f"/users/{quote(name)}"), f"reading user {name!r}").json()

    def user_token(self, name: str, note: str = "hub.client") -> str:
        """A new API token of the user's own (what the user's browser holds after login)."""
        resp = _check(self.api("POST", f"/users/{quote(name)}/tokens", json={"note": note}), f"a token for {name!r}")
        return resp.json()["token"]

    def start_server(self, name: str, timeout: float = 120.0, token: str | None = None) -> "UserServer":
        """Start the user's default server and wait until the hub says it is ready (at most ``timeout``
        seconds: a spawn is 8-12 s on an idle 2-core machine); returns it with a token of the user's
        own (``token``, or a new one)."""
        resp = self.api("POST", f"/users/{quote(name)}/server")
        if not (resp.status_code == 400 and "already running" in resp.text):
            _check(resp, f"starting {name!r}'s server", ok=(201, 202))
        start = time.monotonic()
        while True:
            server = self.user(name).get("servers", {}).get("")
            if server and server.get("ready"):
                break
            if not server:  # the entry lives from the request on while the spawn is pending
                raise HubError(f"{name!r}'s server stopped while starting: the spawn failed (see the hub's log)")
            if time.monotonic() - start > timeout:
                raise Hang(f"{name!r}'s server not ready after {timeout:.0f} s (pending: {server.get('pending')})")
            time.sleep(0.2)
        return UserServer(self.url, name, token or self.user_token(name))

    def stop_server(self, name: str, timeout: float = 60.0) -> None:
        _check(self.api("DELETE", f"/users/{quote(name)}/server"), f"stopping {name!r}'s server")
        start = time.monotonic()
        while self.user(name).get("servers", {}).get(""):
            if time.monotonic() - start > timeout:
                raise Hang(f"{name!r}'s server still there {timeout:.0f} s after the stop")
            time.sleep(0.2)


# ----------------------------------------------------------------------------------------------
# one user's server


class UserServer:
    """One user's single-user server, reached through the hub's proxy at ``/user/NAME/`` with a token."""

    def __init__(self, hub_url: str, name: str, token: str, timeout: float = 30.0):
        self.hub_url, self.name, self.token = hub_url.rstrip("/"), name, token
        self.url = f"{self.hub_url}/user/{quote(name)}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.timeout = timeout

    def api(self, method: str, path: str, **kw) -> requests.Response:
        """``method`` on the server's ``/api`` + ``path`` (e.g. ``"/status"``)."""
        kw.setdefault("timeout", self.timeout)
        return self.session.request(method, f"{self.url}/api{path}", **kw)

    # files, with the contents API (paths relative to the user's home, "/"-separated)

    def _contents(self, path: str) -> str:
        return "/contents/" + quote(path.strip("/"))

    def mkdir(self, path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if self.api("GET", self._contents(sub), params={"content": 0}).status_code == 404:
                _check(self.api("PUT", self._contents(sub), json={"type": "directory"}), f"making {sub}/ for {self.name}")

    def upload(self, path: str, data: bytes | str | dict) -> None:
        """Write a file: bytes or text as a file, a dict (a notebook, nbformat 4) as a notebook; makes
        its folders."""
        if "/" in path.strip("/"):
            self.mkdir(path.strip("/").rsplit("/", 1)[0])
        if isinstance(data, dict):
            model = {"type": "notebook", "format": "json", "content": data}
        else:
            raw = data.encode() if isinstance(data, str) else data
            model = {"type": "file", "format": "base64", "content": base64.b64encode(raw).decode()}
        _check(self.api("PUT", self._contents(path), json=model), f"uploading {path} for {self.name}")

    def download(self, path: str) -> bytes:
        resp = _check(self.api("GET", self._contents(path), params={"type": "file", "format": "base64", "content": 1}),
                      f"downloading {path} from {self.name}")
        return base64.b64decode(resp.json()["content"])

    def download_notebook(self, path: str) -> dict:
        resp = _check(self.api("GET", self._contents(path), params={"type": "notebook", "content": 1}),
                      f"downloading notebook {path} from {self.name}")
        return resp.json()["content"]

    def listdir(self, path: str = "") -> list[dict]:
        """The entries of a folder (name, path, type, ...), or [] when it does not exist."""
        resp = self.api("GET", self._contents(path), params={"content": 1})
        if resp.status_code == 404:
            return []
        return _check(resp, f"listing {path or '~'} of {self.name}").json()["content"]

    def walk(self, path: str = "") -> list[str]:
        """Every file's path under ``path``, recursively."""
        out = []
        for entry in self.listdir(path):
            out += self.walk(entry["path"]) if entry["type"] == "directory" else [entry["path"]]
        return out

    # kernels

    def start_kernel(self, path: str = "", name: str = "python3") -> "Kernel":
        """Start a kernel whose working folder is ``path`` (relative to the home folder)."""
        resp = _check(self.api("POST", "/kernels", json={"name": name, "path": path}), f"starting a kernel for {self.name}")
        return Kernel(self, resp.json()["id"])


# ----------------------------------------------------------------------------------------------
# a kernel, over its websocket


@dataclass
class CellResult:
    index: int  # the cell's index in the notebook (0 for a single execute)
    seconds: float
    text: str = ""  # stream output and text/plain results, in order
    error: str | None = None  # "ename: evalue" (with the last traceback lines) when the cell raised


@dataclass
class RunResult:
    """A notebook run: wall seconds from the first request to the last cell's idle status."""
    wall_s: float = 0.0
    cells: list[CellResult] = field(default_factory=list)
    error: str | None = None  # the first failing cell, "cell N (first line): ename: evalue"

    @property
    def ok(self) -> bool:
        return self.error is None


class Kernel:
    """A kernel of a user's server, driven over ``/user/NAME/api/kernels/ID/channels`` (Jupyter's
    JSON websocket protocol), one execute request at a time."""

    def __init__(self, server: UserServer, kernel_id: str):
        self.server, self.id = server, kernel_id
        self.session_id = uuid.uuid4().hex
        ws_url = server.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?session_id={self.session_id}"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {server.token}"],
                                              timeout=server.timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def shutdown(self) -> None:
        try:
            self.ws.close()
        finally:
            self.server.api("DELETE", f"/kernels/{self.id}")

    def interrupt(self) -> None:
        self.server.api("POST", f"/kernels/{self.id}/interrupt")

    def _send(self, code: str) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.server.name,
                       "session": self.session_id, "date": dt.datetime.now(dt.timezone.utc).isoformat(),
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        return msg_id

    def execute(self, code: str, idle_limit: float = 120.0, progress: Callable[[], float] | None = None,
                index: int = 0) -> CellResult:
        """Run ``code``; return when the kernel has sent both the execute_reply and the idle status of
        this request (either order). Fails with ``Hang`` when, for ``idle_limit`` seconds, no message
        of this request arrived and ``progress()`` (if given) did not grow by 0.05; the kernel is then
        interrupted."""
        start = time.monotonic()
        msg_id = self._send(code)
        reply = idle = False
        text, error = [], None
        last_move, level = start, progress() if progress else 0.0
        self.ws.settimeout(1.0)
        while not (reply and idle):
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                if progress is not None:
                    value = progress()
                    if value >= level + 0.05:
                        level, last_move = value, now
                if now - last_move > idle_limit:
                    self.interrupt()
                    raise Hang(f"{self.server.name}'s kernel: no message and no progress for {now - last_move:.0f} s "
                               f"(idle limit {idle_limit:.0f} s) while running {code.splitlines()[0][:60]!r}") from None
                continue
            if not raw:
                raise HubError(f"{self.server.name}'s kernel websocket closed while running a cell")
            msg = self._decode(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            last_move = time.monotonic()
            kind, content = msg["msg_type"], msg.get("content", {})
            if kind == "execute_reply":
                reply = True
                if content.get("status") == "error" and error is None:
                    error = self._error_text(content)
                elif content.get("status") == "aborted" and error is None:
                    error = "aborted"
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "stream":
                text.append(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                text.append(content.get("data", {}).get("text/plain", ""))
            elif kind == "error":
                error = self._error_text(content)
        return CellResult(index, time.monotonic() - start, "".join(text), error)

    @staticmethod
    def _decode(raw: str | bytes) -> dict:
        """A message from the websocket: JSON text, or a binary frame (a message with buffers, such as a
        widget's): a count n, n offsets (big-endian uint32), then the JSON part and the buffers."""
        if isinstance(raw, str):
            return json.loads(raw)
        n = int.from_bytes(raw[:4], "big")
        offsets = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(n)] + [len(raw)]
        return json.loads(raw[offsets[0]:offsets[1]].decode("utf-8"))

    @staticmethod
    def _error_text(content: dict) -> str:
        tb = [ANSI.sub("", line) for line in content.get("traceback", [])]
        tail = "\n".join(tb[-3:]) if tb else ""
        return f"{content.get('ename')}: {content.get('evalue')}" + (f"\n{tail}" if tail else "")

    def run(self, code: str, **kw) -> str:
        """``execute`` that raises ``HubError`` with the kernel's error; returns the cell's text output."""
        result = self.execute(code, **kw)
        if result.error:
            raise HubError(f"{self.server.name}'s kernel: {code.splitlines()[0][:80]!r} raised {result.error}")
        return result.text

    def run_notebook(self, nb: dict, idle_limit: float = 120.0, progress: Callable[[], float] | None = None) -> RunResult:
        """Run a notebook's code cells (nbformat 4 as a dict) one by one, as "Run All" does, and stop
        at the first cell that raises (reported in ``RunResult.error``)."""
        run, start = RunResult(), time.monotonic()
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if not source.strip():
                continue
            result = self.execute(source, idle_limit=idle_limit, progress=progress, index=i)
            run.cells.append(result)
            if result.error:
                first = source.strip().splitlines()[0][:60]
                run.error = f"cell {i} ({first!r}): {result.error}"
                break
        run.wall_s = time.monotonic() - start
        return run


# ----------------------------------------------------------------------------------------------
# measurements of a hub on this machine (psutil)


def server_process(user: str):
    """The psutil process of ``user``'s single-user server on this machine (found by the
    JUPYTERHUB_USER in its environment), or None."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "jupyterhub-singleuser" in cmd and proc.environ().get("JUPYTERHUB_USER") == user:
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


class TreeMeter:
    """Samples a process and its descendants (a user's server and its kernels) in a thread while a
    block runs: CPU seconds used since the meter started (a process that exits keeps what it used),
    and peak memory: ``peak_mib``, the sum of each process's own peak resident memory (Linux's VmHWM,
    so a short peak between two samples is not missed; the resident memory sampled on other systems)
    over every process seen, and ``sampled_peak_mib``, the largest sum of resident memory at one sample."""

    def __init__(self, proc, interval: float = 0.5):
        self.root, self.interval = proc, interval
        self.sampled_peak_mib, self.cpu_s = 0.0, 0.0
        self._last: dict[int, float] = {}
        self._hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()
        self._sample(count_cpu=False)  # the starting point

    @property
    def peak_mib(self) -> float:
        return sum(self._hwm.values()) / 2**20

    @staticmethod
    def _high_water(proc, rss: int) -> int:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return rss

    def _sample(self, count_cpu: bool = True) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        with self._lock:
            for proc in procs:
                try:
                    with proc.oneshot():
                        mem = proc.memory_info().rss
                        t = proc.cpu_times()
                    hwm = self._high_water(proc, mem)
                except psutil.NoSuchProcess:
                    continue
                rss += mem
                self._hwm[proc.pid] = max(self._hwm.get(proc.pid, 0), hwm)
                used = t.user + t.system
                if count_cpu:
                    self.cpu_s += max(0.0, used - self._last.get(proc.pid, 0.0))
                self._last[proc.pid] = used
            self.sampled_peak_mib = max(self.sampled_peak_mib, rss / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def progress(self) -> float:
        """CPU seconds so far (for ``Kernel.execute``'s ``progress``)."""
        self._sample()
        return self.cpu_s

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
