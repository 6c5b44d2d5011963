"""The README's first command, `python3 dev.py lab`, as a newcomer runs it: JupyterLab on 127.0.0.1
with a token, also as root (containers, fresh cloud machines), where JupyterLab itself would refuse
to start without --allow-root."""
from __future__ import annotations

import importlib.util
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import patience
import pytest
from servers import free_port, jupyter_env, stop, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dev():
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("euid", [0, 1000])
def test_lab_passes_allow_root_only_as_root(dev, monkeypatch, capsys, euid):
    monkeypatch.setattr(dev.os, "geteuid", lambda: euid, raising=False)
    cmd = [str(c) for c in dev.lab_command(["--no-browser"])]
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--no-browser" in cmd
    said = capsys.readouterr().out
    if euid == 0:
        assert cmd.count("--allow-root") == 1
        assert len(said.strip().splitlines()) == 1 and "root" in said and "127.0.0.1" in said and "token" in said
        assert dev.lab_command(["--allow-root"]).count("--allow-root") == 1  # not passed twice
    else:
        assert "--allow-root" not in cmd and said == ""


def _listening_addresses(port: int) -> set[str]:
    """The local addresses that listen on ``port`` (IPv4 and IPv6), read from /proc/net."""
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_the_first_command_starts_jupyterlab_on_loopback_with_a_token(dev):
    """`python3 dev.py lab` exactly as the README says (plus a port, a known token and no browser):
    it starts, answers with the token, refuses without it, and listens on 127.0.0.1 only. The
    tests run as root in CI, so there this is the root path: the one-line notice, then JupyterLab."""
    if not (dev.STAMP.exists() and dev.STAMP.read_text() == dev._fingerprint()):
        pytest.skip("the environment was not made by dev.py (no matching .venv stamp): the command would install")
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="vae-lesson-devlab-") as work:
        log = Path(work) / "lab.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "lab", "--no-browser",
                                     f"--ServerApp.port={port}", f"--IdentityProvider.token={token}"],
                                    env=jupyter_env(Path(work)), stdout=out, stderr=subprocess.STDOUT,
                                    cwd=ROOT, start_new_session=True)
        try:
            wait_for(f"http://127.0.0.1:{port}/api/status", token, proc, log)
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=patience.patient(10))
            assert info.value.code == 403
            if Path("/proc/net/tcp").exists():
                assert _listening_addresses(port) <= {"0100007F", "00000000000000000000000001000000"}, \
                    "JupyterLab listens beyond 127.0.0.1"
        finally:
            stop(proc)
        text = log.read_text()
    if dev.running_as_root():
        assert "Running as root" in text and "--allow-root" in text, text[-2000:]
    assert "Running as root is not recommended" not in text
    assert f"127.0.0.1:{port}" in text


# --- the first setup says what it does, keeps pip's log, and fails in one line -------------------------

PIP_LINES = """\
Collecting torch==2.13.0 (from -r requirements.txt (line 3))
  Downloading torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (180.2 MB)
Collecting numpy==2.4.6 (from -r requirements.txt (line 4))
  Using cached numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl (16.9 MB)
Requirement already satisfied: packaging in ./.venv/lib/python3.11/site-packages (from jupyterlab==4.6.6)
Installing collected packages: numpy, torch
Successfully installed numpy-2.4.6 torch-2.13.0
"""


def test_pip_progress_follows_pips_lines(dev):
    progress, shown = dev.PipProgress(), []
    for line in PIP_LINES.splitlines():
        if progress.feed(line):
            shown.append(progress.line())
    assert shown[0] == "collected 1 requirements"
    assert shown[1] == "collected 1 requirements; downloading torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl 180.2 MB"
    assert "collected 3 requirements; installing 2 packages" in shown[-2]
    assert shown[-1] == "installed 2 packages"


def _fake_pip(tmp_path, text: str, code: int) -> list:
    script = tmp_path / "fake_pip.py"
    script.write_text(f"import sys\nsys.stdout.write({text!r})\nsys.exit({code})\n")
    return [sys.executable, str(script)]


def test_a_stage_shows_progress_and_keeps_the_whole_log(dev, tmp_path, capsys):
    log_path = tmp_path / "install.log"
    with open(log_path, "w") as log:
        dev.run_stage(3, 3, "downloading and installing", _fake_pip(tmp_path, PIP_LINES, 0), log)
    out = capsys.readouterr().out
    assert out.startswith("[3/3] downloading and installing ...") and "installed 2 packages" in out and "done in" in out
    assert log_path.read_text() == PIP_LINES


def test_a_failed_stage_says_in_one_line_what_failed_and_where_the_log_is(dev, tmp_path, capsys):
    failing = PIP_LINES.splitlines()[0] + "\nERROR: Could not find a version that satisfies the requirement torch==9.9\n"
    with open(tmp_path / "install.log", "w") as log:
        with pytest.raises(dev.SetupFailed) as info:
            dev.run_stage(3, 3, "downloading and installing", _fake_pip(tmp_path, failing, 1), log)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("[3/3] downloading and installing failed: ERROR: Could not find a version")
    assert str(dev.LOG) in message
    with pytest.raises(dev.SetupFailed, match=r"\[2/3\] updating pip failed: .*No such file"):
        dev.run_stage(2, 3, "updating pip", [str(tmp_path / "no-such-program")], None)
