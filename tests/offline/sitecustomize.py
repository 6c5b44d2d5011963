"""The offline guard of the test suite. Python imports this file at start-up in every process the
tests start (tests/conftest.py puts this folder on PYTHONPATH, so notebook kernels get it too):
any network connection to anything other than this machine fails at once, so a test or a
notebook that tries to download something fails loudly instead of quietly needing the internet."""
import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host is None or host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: resolving it would need the network


def _refuse(host):
    raise OSError(f"vae-lesson runs offline: blocked a network connection to {host!r}. "
                  "Nothing in the course may download at run time.")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0])
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0])
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
OFFLINE_GUARD = True

# Start-up time, not offline: jsonschema imports rfc3987_syntax, when it is installed (JupyterLab's
# dependencies bring it), only to check strings of the "iri" format, and that import builds its
# grammars: about 3 s in every process that imports nbformat (pytest and its workers, each Jupyter
# server the tests start). Nothing in the tests validates IRIs, so their processes skip it:
# jsonschema then leaves "iri" formats unchecked, as it does where the package is not installed.
import sys  # noqa: E402

sys.modules.setdefault("rfc3987_syntax", None)
