"""Nothing downloads: the test suite, its notebook kernels included, runs behind an offline guard."""
import socket
import subprocess
import sys

import pytest


def test_this_process_cannot_reach_the_network():
    with pytest.raises(OSError, match="runs offline"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(OSError, match="runs offline"):
        socket.getaddrinfo("pypi.org", 443)


def test_child_processes_and_kernels_get_the_guard():
    """Notebook kernels are child processes started with this environment (PYTHONPATH)."""
    code = ("import socket\n"
            "try:\n    socket.create_connection(('1.1.1.1', 443), timeout=1)\n"
            "except OSError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "runs offline" in out


def test_loopback_still_works():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    client.sendall(b"ok")
    assert conn.recv(2) == b"ok"
    for s in (client, conn, server):
        s.close()
