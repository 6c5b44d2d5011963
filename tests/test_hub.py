"""The class hub (`python3 dev.py hub`, README's instructor section) as students meet it: one real JupyterHub
behind configurable-http-proxy for the whole module, two students ("ada", "bob") and the "instructor", driven
through HTTP only (the hub's REST API, the servers' Jupyter APIs, nbgitpuller's pull API, the login form).

- everything listens on 127.0.0.1 only; a request without a token, or with the other student's token, gets 403
  on a student's files and kernels;
- the course arrives by an nbgitpuller link from a git repository (a local clone of this one), and a second pull
  after an upstream change merges it without losing the student's edit;
- a student's server killed mid-notebook comes back with the notebook as last saved; a restarted hub keeps its
  users (its database is a file in the state folder);
- bad configuration (a port in use, no node, a configuration that does not load, an idle culler that cannot
  start) stops `dev.py hub` at once with one line.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import patience
import pytest
import requests
from hubs import hub  # noqa: F401  (the module's hub)
from hubs import hub_unavailable

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = ("ada", "bob")
GIT = {"GIT_AUTHOR_NAME": "Upstream", "GIT_AUTHOR_EMAIL": "upstream@example.org",
       "GIT_COMMITTER_NAME": "Upstream", "GIT_COMMITTER_EMAIL": "upstream@example.org"}


def auth(token: str | None) -> dict:
    return {"Authorization": f"token {token}"} if token else {}


@pytest.fixture(scope="module")
def tokens(hub):  # noqa: F811
    """The students' servers started (in parallel) and a token for each student."""
    for name in STUDENTS:
        hub.add_user(name)
    hub.add_user("instructor", admin=True)
    hub.start_servers(*STUDENTS)
    return {name: hub.user_token(name) for name in STUDENTS}


def listening_sockets(pids: list[int]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of these processes."""
    import psutil

    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found += [(proc.name(), conn.laddr.ip, conn.laddr.port) for conn in proc.net_connections(kind="inet")
                      if conn.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found


def test_hub_proxy_servers_and_kernels_listen_on_loopback_only(hub, tokens):  # noqa: F811
    base = f"{hub.url}/user/ada/"
    r = requests.post(f"{base}api/kernels", headers=auth(tokens["ada"]), json={}, timeout=patience.patient(60))
    assert r.status_code == 201, r.text
    kernel = f"{base}api/kernels/{r.json()['id']}"
    state = {"listening": []}

    def kernel_bound() -> bool:  # a kernel binds its five ports a moment after it starts
        state["listening"] = listening_sockets(hub.pids())
        return sum(1 for name, _, _ in state["listening"] if name == "python") >= 5

    patience.wait_with_progress(kernel_bound, patience.CpuMeter(hub.proc.pid).read, "ada's kernel binding its ports")
    listening = state["listening"]
    names = {name for name, _, _ in listening}
    assert {"node", "jupyterhub", "jupyterhub-sing", "python"} <= names, listening  # (names cut at 15 characters)
    assert hub.port in {port for _, _, port in listening}
    assert len(listening) >= 1 + 2 + 2 + 5, f"the hub, the proxy (2), two servers, a kernel (5 ports): {listening}"
    elsewhere = [entry for entry in listening if entry[1] != "127.0.0.1"]
    assert not elsewhere, f"listening beyond 127.0.0.1: {elsewhere}"
    requests.delete(kernel, headers=auth(tokens["ada"]), timeout=patience.patient(30))


def test_every_server_runs_in_the_course_environment_with_the_shared_model_cache(hub, tokens):  # noqa: F811
    import psutil

    for name in STUDENTS:
        env = psutil.Process(hub.server_pid(name)).environ()
        assert env["JUPYTERHUB_USER"] == name and env["HOME"] == str(hub.state / "homes" / name)
        assert env["VAE_LESSON_CACHE"] == str(hub.state / "model-cache")  # notebooks 06 and 07 load the models there
        assert env["NBGRADER_EXCHANGE"] == str(hub.state / "exchange")
        assert env["JUPYTER_CONFIG_PATH"] == str(ROOT / "hub" / "jupyter-config")
        assert env["PATH"].split(os.pathsep)[0] == str(ROOT / ".venv" / "bin")


@pytest.mark.parametrize("api", ["api/contents", "api/kernels"])
def test_a_students_files_and_kernels_need_their_own_token(hub, tokens, api):  # noqa: F811
    for owner, other in (("bob", "ada"), ("ada", "bob")):
        url = f"{hub.url}/user/{owner}/{api}"
        for token, expected in ((None, 403), (tokens[other], 403), (tokens[owner], 200)):
            r = requests.get(url, headers=auth(token), allow_redirects=False, timeout=patience.patient(30))
            who = "no token" if token is None else f"{'the owner' if token == tokens[owner] else other}'s token"
            assert r.status_code == expected, f"{url} with {who}: {r.status_code}, expected {expected}"


def pull(hub, token: str, name: str, repo: str, branch: str) -> list[dict]:  # noqa: F811
    """What a student's browser does on nbgitpuller's page: its pull API, an event stream ending in "finished"."""
    url = f"{hub.url}/user/{name}/git-pull/api?" + urlencode({"repo": repo, "branch": branch})
    events = []
    with requests.get(url, headers=auth(token), stream=True, timeout=patience.patient(60)) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("phase") in ("finished", "error"):
                    break
    assert events and events[-1].get("phase") == "finished", f"nbgitpuller did not finish: {events[-5:]}"
    return events


def test_the_course_arrives_by_an_nbgitpuller_link_and_a_second_pull_keeps_the_students_edit(hub, tokens, tmp_path):  # noqa: F811
    import importlib.util

    upstream = tmp_path / "vae-lesson"
    env = dict(os.environ, **GIT)
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(upstream)], check=True, env=env)
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=upstream, capture_output=True, text=True,
                            check=True).stdout.strip()
    repo = f"file://{upstream}"

    # the link the README tells an instructor to make (python3 dev.py hub-link), followed as ada's browser does
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    link = dev.nbgitpuller_link(repo, hub=hub.url, branch=branch)
    printed = subprocess.run([sys.executable, str(ROOT / "dev.py"), "hub-link", repo, "--hub", hub.url, "--branch",
                              branch], capture_output=True, text=True, check=True).stdout.strip()
    assert printed == link
    session = hub.login("ada")
    page = session.get(link, timeout=patience.patient(60))  # the hub, ada's server, the hub's OAuth, the page
    assert page.status_code == 200 and page.url.startswith(f"{hub.url}/user/ada/git-pull?"), (page.status_code, page.url)
    assert "nbgitpuller" in page.text.lower() or "git-pull" in page.text, page.text[:300]

    token = tokens["ada"]
    files = f"{hub.url}/user/ada/api/contents/vae-lesson/notebooks"
    pull(hub, token, "ada", repo, branch)
    listing = requests.get(files, headers=auth(token), timeout=patience.patient(30)).json()
    notebooks = sorted(item["name"] for item in listing["content"] if item["name"].endswith(".ipynb"))
    assert notebooks == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")), notebooks

    # ada edits notebook 01 and saves it; upstream changes another file; a second click merges both
    first = f"{files}/{notebooks[0]}"
    model = requests.get(first, headers=auth(token), timeout=patience.patient(30)).json()
    model["content"]["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "Ada's own note"})
    r = requests.put(first, headers=auth(token), timeout=patience.patient(30),
                     json={"type": "notebook", "format": "json", "content": model["content"]})
    assert r.status_code == 200, r.text
    readme = upstream / "notebooks" / "README.md"
    readme.write_text(readme.read_text() + "\nAn upstream correction.\n")
    subprocess.run(["git", "commit", "-q", "-am", "An upstream correction"], cwd=upstream, check=True, env=env)
    pull(hub, token, "ada", repo, branch)
    cells = requests.get(first, headers=auth(token), timeout=patience.patient(30)).json()["content"]["cells"]
    assert cells[-1]["source"] == "Ada's own note", "the second pull lost the student's edit"
    merged = requests.get(f"{files}/README.md", headers=auth(token), timeout=patience.patient(30)).json()
    assert "An upstream correction." in merged["content"], "the second pull did not bring the upstream change"


def test_a_server_killed_mid_notebook_comes_back_with_the_notebook_as_saved(hub, tokens):  # noqa: F811
    import psutil

    token, base = tokens["bob"], f"{hub.url}/user/bob/"
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
                           "source": "x = 6 * 7  # bob's work, saved"}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    r = requests.put(f"{base}api/contents/work.ipynb", headers=auth(token), timeout=patience.patient(30),
                     json={"type": "notebook", "format": "json", "content": notebook})
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{base}api/sessions", headers=auth(token), timeout=patience.patient(60),
                      json={"path": "work.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text  # a kernel runs the notebook
    server = psutil.Process(hub.server_pid("bob"))
    server.kill()

    def started_again() -> bool:  # the hub polls bob's server on this request, finds it dead and starts a new one
        r = hub.api("POST", "/users/bob/server")
        assert r.status_code in (201, 202, 400), r.text
        return r.status_code != 400  # 400: "already running", the killed process not yet reaped

    patience.wait_with_progress(started_again, lambda: 0.0, "the hub noticing that bob's server died",
                                limit=patience.patient(10))
    hub.start_server("bob")  # waits until it is ready
    assert hub.server_pid("bob") != server.pid
    r = requests.get(f"{base}api/contents/work.ipynb", headers=auth(token), timeout=patience.patient(30))
    assert r.status_code == 200, r.text
    assert r.json()["content"]["cells"][0]["source"] == "x = 6 * 7  # bob's work, saved"


def test_a_restarted_hub_keeps_its_users(hub, tokens):  # noqa: F811
    before = {u["name"] for u in hub.api("GET", "/users").json()}
    assert {"ada", "bob", "instructor"} <= before
    hub.restart()
    assert (hub.state / "jupyterhub.sqlite").is_file()
    after = {u["name"]: u for u in hub.api("GET", "/users").json()}
    assert before <= set(after), f"lost in the restart: {before - set(after)}"
    assert after["instructor"]["admin"]
    # ada's token is in the database too: she starts her server again with it
    r = requests.post(f"{hub.url}/hub/api/users/ada/server", headers=auth(tokens["ada"]), timeout=patience.patient(30))
    assert r.status_code in (201, 202), r.text


# ---- bad configuration: one line, at once, before anything starts -----------------------------------------------
def dev_hub(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "dev.py"), "hub", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=patience.patient(60))


def assert_one_line(result: subprocess.CompletedProcess, *words: str) -> str:
    said = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    for word in words:
        assert word in said, said
    return said


def test_a_port_in_use_stops_the_hub_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line(dev_hub("--port", str(port), "--state", str(tmp_path)), str(port), "in use", "--port")


@pytest.mark.skipif(hub_unavailable() is not None, reason=str(hub_unavailable()))
def test_a_missing_node_a_broken_config_and_a_culler_that_cannot_start_each_stop_the_hub_with_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    state = str(tmp_path / "state")
    no_node = dict(os.environ, PATH=str(tmp_path / "empty"))
    assert_one_line(dev_hub("--port", port, "--state", state, env=no_node), "node", "install")

    broken = tmp_path / "broken_config.py"
    broken.write_text("c = get_config()\nc.JupyterHub.bind_url = undefined_name\n")
    assert_one_line(dev_hub("--port", port, "--state", state, "--config", str(broken)), str(broken), "line 2",
                    "NameError")
    assert_one_line(dev_hub("--port", port, "--state", state, "--config", str(tmp_path / "missing.py")), "does not exist")

    no_culler = tmp_path / "no_culler_config.py"
    no_culler.write_text("import sys\nc = get_config()\n"
                         f"load_subconfig({str(ROOT / 'hub' / 'jupyterhub_config.py')!r})\n"
                         "c.JupyterHub.services[0]['command'] = [sys.executable, '-m', 'jupyterhub_idle_culler_gone']\n")
    assert_one_line(dev_hub("--port", port, "--state", state, "--config", str(no_culler)), "idle-culler",
                    "cannot start", "requirements-hub.txt")
