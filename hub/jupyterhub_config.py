# JupyterHub for a class on one machine: the configuration `python3 dev.py hub` starts JupyterHub with.
#
# An instructor edits this file (README, instructor section): the authenticator (who may log in), the
# spawner (where each student's server runs), the idle culler and the limits. `dev.py hub` sets the
# variables read below (VAE_LESSON_HUB_STATE, VAE_LESSON_HUB_PORT, ...); started by hand, e.g.
#     .venv/bin/jupyterhub -f hub/jupyterhub_config.py
# it falls back to the defaults (state in .hub/ beside this folder, port 8000).
#
# Everything listens on 127.0.0.1 only: the hub's public port (the proxy), the proxy's REST API, the
# hub's own API and every student's server. To open the hub to a class, put it behind a TLS-terminating
# web server (nginx, Caddy) on the same machine, or change bind_url below to a public address AND
# configure a real authenticator first, never with the dummy one.
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub defines get_config when it loads this file)

REPO = Path(os.environ.get("VAE_LESSON_HUB_REPO") or Path(__file__).resolve().parent.parent)
STATE = Path(os.environ.get("VAE_LESSON_HUB_STATE") or REPO / ".hub").resolve()
PORT = int(os.environ.get("VAE_LESSON_HUB_PORT") or 8000)
VENV = REPO / ".venv"  # the course's environment (python3 dev.py sets it up): every server runs in it
for folder in ("homes", "exchange", "model-cache"):
    (STATE / folder).mkdir(parents=True, exist_ok=True)

# ---- Network: the public port (served by configurable-http-proxy), the hub's API, the proxy's API --------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
# the hub's own API and the proxy's API: free ports chosen by dev.py (so two hubs on one machine do not clash)
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('VAE_LESSON_HUB_API_PORT') or 8081}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('VAE_LESSON_HUB_PROXY_API_PORT') or 8001}"
# the proxy from npm, installed into hub/node_modules by `npm ci --prefix hub` (dev.py does it), never globally
c.ConfigurableHTTPProxy.command = [str(REPO / "hub" / "node_modules" / ".bin" / "configurable-http-proxy")]

# ---- State: the users' database, the cookie secret, pid file, all in the state folder ---------------------------
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"  # users and their servers survive a restart
c.JupyterHub.cookie_secret_file = str(STATE / "cookie_secret")  # created on first start, mode 0600
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")  # (by default in the current folder)

# ---- Authenticator: who may log in ------------------------------------------------------------------------------
# The built-in dummy authenticator lets ANY name log in with ANY password: fine on 127.0.0.1 for trying the
# hub and for the tests, never for a class. For a class, replace the two lines below with a real one, e.g.
#   c.JupyterHub.authenticator_class = "shared-password"         # one password for the class (built in)
#   c.SharedPasswordAuthenticator.user_password = "at least 8 characters"
#   c.SharedPasswordAuthenticator.admin_password = "at least 32 characters, for the admin users only"
#   c.Authenticator.allow_all = True
# or your university's login through OAuthenticator (pip install oauthenticator; e.g. "generic-oauth",
# "github", "azuread"), or "pam" (real system accounts, with the default LocalProcessSpawner).
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.admin_users = {"instructor"}  # may start, stop and open every student's server
# c.Authenticator.allowed_users = {"ada", "bob"}  # with a real authenticator: the class list

# ---- Spawner: one local process per student, in the course's environment ------------------------------------
# SimpleLocalProcessSpawner runs every student's server as the user running the hub, each in its own home
# folder STATE/homes/NAME. It isolates nothing (a student's code can read the others' folders, and runs as root
# when the hub does): good for one trusted machine and for testing. For separate system accounts use the default LocalProcessSpawner with the
# "pam" authenticator; for a class that outgrows one machine, Zero to JupyterHub (deploy/z2jh/).
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "homes" / "{username}")
c.Spawner.notebook_dir = str(STATE / "homes" / "{username}")
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
if hasattr(os, "geteuid") and os.geteuid() == 0:
    # as root (a container, a fresh cloud machine) Jupyter refuses to start without --allow-root; the
    # servers still listen on 127.0.0.1 only, behind the hub's tokens
    c.Spawner.args = ["--allow-root"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.environment = {
    # the course's environment first: kernels find its python, `nbgrader` and `alembic`
    "PATH": f"{VENV / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
    # the shared model cache: the models are trained once (by the instructor, or the first server that
    # needs one) and loaded by every student's notebooks 06 and 07
    "VAE_LESSON_CACHE": str(STATE / "model-cache"),
    # nbgrader's exchange, shared by the instructor and the students (hub/jupyter-config/nbgrader_config.py)
    "NBGRADER_EXCHANGE": str(STATE / "exchange"),
    # Jupyter configuration every server (and the nbgrader command line inside it) loads
    "JUPYTER_CONFIG_PATH": str(REPO / "hub" / "jupyter-config"),
}
# Memory. SimpleLocalProcessSpawner does NOT enforce mem_limit (nor cpu_limit): it only passes them to the
# server as MEM_LIMIT / CPU_LIMIT (shown by jupyter-resource-usage). Zero to JupyterHub (KubeSpawner) does enforce
# them (deploy/z2jh/config.yaml: singleuser.memory.limit / guarantee), as does DockerSpawner.
c.Spawner.mem_limit = "2G"
c.Spawner.start_timeout = 120  # seconds a server may take to start on a busy machine
c.Spawner.http_timeout = 120

# ---- Services: the idle culler and the course's admin token -----------------------------------------------------
# The idle culler stops servers idle for an hour (their kernels with them; notebooks are saved in the
# homes, so nothing is lost). Servers report activity every 300 s: a timeout under about 300 s can cull
# busy servers.
CULL_TIMEOUT = int(os.environ.get("VAE_LESSON_HUB_CULL_TIMEOUT") or 3600)
c.JupyterHub.services = [
    {"name": "idle-culler",
     "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_TIMEOUT}", "--cull-every=300"]},
]
c.JupyterHub.load_roles = [
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
]
# A token for scripts that run the class (adding students, starting servers, benchmarks, the tests): the
# service "course-admin", its token in STATE/api_token (mode 0600, created by dev.py hub) or in the
# variable VAE_LESSON_HUB_API_TOKEN.
_token_file = STATE / "api_token"
ADMIN_TOKEN = os.environ.get("VAE_LESSON_HUB_API_TOKEN") or (
    _token_file.read_text().strip() if _token_file.is_file() else "")
if ADMIN_TOKEN:
    c.JupyterHub.services.append({"name": "course-admin", "api_token": ADMIN_TOKEN})
    c.JupyterHub.load_roles.append(
        {"name": "course-admin", "services": ["course-admin"],
         "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users", "access:servers",
                    "read:users:activity"]})

# Stopping the hub (Ctrl-C) stops the proxy, the culler and every student's server too.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
