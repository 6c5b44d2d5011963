"""Measure what each notebook needs to run for a class: wall time and the kernel's peak memory.

    .venv/bin/python tools/measure_notebooks.py                      # every notebook, table only
    .venv/bin/python tools/measure_notebooks.py --json measures.json # also write the numbers
    .venv/bin/python tools/measure_notebooks.py notebooks/03_*.ipynb --no-server
    .venv/bin/python tools/measure_notebooks.py --widgets         # peak memory with the widgets used
    .venv/bin/python tools/measure_notebooks.py --trace           # and which cells raise the peak

For each notebook: start a fresh kernel of the current Python (as nbval's
``--nbval-current-env`` does, so no installed kernelspec is needed), run the notebook top to
bottom with nbclient, then run one extra, injected cell in the same kernel that reports the
kernel's peak resident memory (``ru_maxrss``, or VmHWM / VmRSS from /proc/self/status when one
of those reads higher) and its current resident memory (``VmRSS``), and stop the kernel. The
notebook files are never written. With ``--widgets`` another injected cell first moves every
control of the notebook's widget through its values (ending with all of them at their
largest), so the peak memory includes what the widget needs when a student uses it.

Then, unless ``--no-server``, start a JupyterLab server (127.0.0.1, a free port, token auth,
a temporary root directory holding copies of the notebooks and temporary JUPYTER_* config,
data and runtime directories), wait until ``/api/status`` answers, read the server process's
own resident memory from /proc/PID/status after it starts and again after the lab page and
every notebook's contents have been requested (what a student's browser does when it opens
them), and stop it by its PID. Kernels started from the lab are not included; they are what the
notebook table measures.

Prints a Markdown table; ``--json PATH`` also writes the numbers. Linux only (``ru_maxrss`` is
in KiB there, and /proc is read for the server).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "python3-current-env"

# With --widgets, runs in the kernel after the notebook: moves every control of the notebook's
# widget (the variable `explorer`, a vae_lesson.widgets.WidgetParts) through its values, one
# control after another, each left at its last (largest) value, so the sweep ends with every
# control at its heaviest setting at once, as a student might leave it. Prints one JSON line.
SWEEP = """\
import json as _json, time as _time
import ipywidgets as _w
_ex, _n, _t0 = globals().get("explorer"), 0, _time.perf_counter()
for _c in (getattr(_ex, "controls", None) or {}).values():
    if isinstance(_c, _w.FloatLogSlider):
        _values = [_c.base ** _c.min, _c.base ** _c.max]
    elif isinstance(_c, (_w.IntSlider, _w.FloatSlider)):
        _values = [_c.min, _c.max]
    elif hasattr(_c, "options"):
        _values = [o[1] if isinstance(o, tuple) else o for o in _c.options]
    else:
        continue
    for _v in _values:
        _c.value = _v
        _n += 1
print("SWEEP " + _json.dumps({"settings": _n, "seconds": _time.perf_counter() - _t0}))
"""

# Runs in the kernel after the notebook; prints one JSON line. On Linux ru_maxrss is in KiB.
PROBE = """\
import json as _json, resource as _resource
_status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("MEASURE " + _json.dumps({
    "peak_rss_kib": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss,
    "rss_kib": int(_status["VmRSS"].split()[0]),
    "hwm_kib": int(_status["VmHWM"].split()[0]),
}))
"""


class CurrentEnvKernelSpecManager(KernelSpecManager):
    """Resolve KERNEL_NAME to a kernel of the Python running this script (as nbval does)."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == KERNEL_NAME:
            return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                          **ipykernel.kernelspec.get_kernel_dict())
        return super().get_kernel_spec(kernel_name)


def _run_injected(client: NotebookClient, nb, source: str, tag: str) -> dict:
    """Append a code cell to the in-memory notebook, run it in the client's kernel, parse its line."""
    cell = nbformat.v4.new_code_cell(source)  # in memory only: the file is never written
    nb.cells.append(cell)
    client.execute_cell(cell, len(nb.cells) - 1)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    line = next(s for s in text.splitlines() if s.startswith(tag + " "))
    return json.loads(line[len(tag) + 1:])


def measure_notebook(path: Path, timeout: int = 600, sweep_widgets: bool = False) -> dict:
    """Run ``path`` in a fresh kernel; return seconds (kernel start + all cells) and memory.
    With ``sweep_widgets``, then drive the notebook's widget through its settings before the
    memory is read, so the peak includes what the widget needs."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=CurrentEnvKernelSpecManager())
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=False,
                            record_timing=False, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    km.start_kernel(cwd=str(path.parent))
    try:
        client.kc = km.client()
        client.kc.start_channels()
        client.kc.wait_for_ready(timeout=60)
        ready = time.perf_counter()
        client.execute()  # uses this kernel and client and leaves both up: the client does not own km
        seconds = time.perf_counter() - start
        sweep = _run_injected(client, nb, SWEEP, "SWEEP") if sweep_widgets else None
        mem = _run_injected(client, nb, PROBE, "MEASURE")
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        km.shutdown_kernel(now=True)
    row = {
        "notebook": path.name,
        "seconds": round(seconds, 2),
        "kernel_start_seconds": round(ready - start, 2),
        # ru_maxrss and VmHWM are high-water marks the kernel updates lazily: take the largest reading
        "peak_rss_mib": round(max(mem["peak_rss_kib"], mem["hwm_kib"], mem["rss_kib"]) / 1024, 1),
        "final_rss_mib": round(mem["rss_kib"] / 1024, 1),
    }
    if sweep is not None:
        row["widget_settings_swept"] = sweep["settings"]
        row["widget_sweep_seconds"] = round(sweep["seconds"], 2)
    return row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_status_mib(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


TRACE = "import resource as _r; print('TRACE', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)"


def trace_notebook(path: Path, timeout: int = 600, top: int = 3) -> dict:
    """Run ``path`` again in a fresh kernel with a peak-RSS probe after every code cell; return
    the peak after the first code cell (the imports) and the ``top`` cells that raised it most
    (by their index in the notebook). A separate run: the probes would add to the timed seconds."""
    nb = nbformat.read(path, as_version=4)
    original = list(nb.cells)
    cells, probes = [], []
    for i, cell in enumerate(original):
        cells.append(cell)
        if cell.cell_type == "code":
            probes.append((i, nbformat.v4.new_code_cell(TRACE)))
            cells.append(probes[-1][1])
    nb.cells = cells
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=CurrentEnvKernelSpecManager())
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL_NAME, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    km.start_kernel(cwd=str(path.parent))
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        km.shutdown_kernel(now=True)
    peaks = []  # (cell index, peak RSS in MiB after that cell)
    for i, probe in probes:
        text = "".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream")
        peaks.append((i, int(text.split()[1]) / 1024))
    rises = sorted(((b - a, i) for (_, a), (i, b) in zip(peaks, peaks[1:])), reverse=True)[:top]
    return {"after_imports_mib": round(peaks[0][1], 1),
            "largest_rises": [{"cell": i, "first_line": original[i].source.splitlines()[0][:70], "rise_mib": round(r, 1)}
                              for r, i in rises if r > 0]}


def measure_server(notebooks: list[Path], wait_s: float = 120.0) -> dict:
    """Start JupyterLab in a temporary root, return its RSS (MiB) idle and after serving the notebooks."""
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        return {"measured": False, "why": f"{jupyter} not found"}
    tmp = Path(tempfile.mkdtemp(prefix="measure-lab-"))
    root = tmp / "root"
    root.mkdir()
    for p in notebooks:
        shutil.copy(p, root / p.name)
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "RUNTIME"):
        (tmp / name.lower()).mkdir()
        env[f"JUPYTER_{name}_DIR"] = str(tmp / name.lower())
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp / "workspaces")
    port, token = _free_port(), "x"
    cmd = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           "--allow-root"]
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def get(url_path: str) -> bytes:
        req = urllib.request.Request(base + url_path, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                return {"measured": False, "why": f"the server exited with {proc.returncode}; see {tmp / 'server.log'}"}
            try:
                json.loads(get("/api/status"))
                break
            except OSError:
                if time.perf_counter() - t0 > wait_s:
                    return {"measured": False, "why": f"/api/status did not answer in {wait_s:.0f} s"}
                time.sleep(0.25)
        startup = time.perf_counter() - t0
        time.sleep(2.0)  # let start-up work settle
        idle = _proc_status_mib(proc.pid)
        get("/lab")
        for p in notebooks:
            get(f"/api/contents/{p.name}?content=1")
        get("/api/kernelspecs")
        time.sleep(1.0)
        served = _proc_status_mib(proc.pid)
        return {"measured": True, "startup_seconds": round(startup, 1),
                "rss_idle_mib": idle["VmRSS"], "rss_after_opening_notebooks_mib": served["VmRSS"],
                "peak_rss_mib": served["VmHWM"]}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--json", type=Path, help="write the numbers as JSON to this path")
    parser.add_argument("--no-server", action="store_true", help="skip the JupyterLab server measurement")
    parser.add_argument("--widgets", action="store_true",
                        help="after each notebook, sweep its widget's controls (ending at their largest values) "
                             "before reading the peak memory")
    parser.add_argument("--trace", action="store_true",
                        help="run each notebook once more with a probe after every cell, and report the memory "
                             "after the imports and the cells that raise the peak most")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        sys.exit("measure_notebooks.py reads ru_maxrss in KiB and /proc: Linux only")
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    rows = []
    for p in paths:
        rows.append(measure_notebook(p, sweep_widgets=args.widgets))
        r = rows[-1]
        print(f"{r['notebook']}: {r['seconds']:.1f} s, peak {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        if args.trace:
            r["trace"] = trace_notebook(p)
    server = {"measured": False, "why": "skipped (--no-server)"} if args.no_server else measure_server(paths)

    machine = {"cpu": _cpu_name(), "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
               "python": platform.python_version(), "platform": platform.platform()}
    print(f"Machine: {machine['cpu']}, {machine['cpus']} CPUs ({machine['cpus_usable']} usable by this process "
          f"and its kernels), Python {machine['python']}\n")
    peak = "peak kernel RSS after the widget sweep (MiB)" if args.widgets else "peak kernel RSS (MiB)"
    extra = " widget settings swept (s) |" if args.widgets else ""
    print(f"| notebook | seconds (fresh kernel, top to bottom) | of which kernel start | {peak} | "
          f"kernel RSS at the end (MiB) |{extra}")
    print("|---|---:|---:|---:|---:|" + ("---:|" if args.widgets else ""))
    for r in rows:
        sweep = f" {r['widget_settings_swept']} ({r['widget_sweep_seconds']:.1f}) |" if args.widgets else ""
        print(f"| {r['notebook']} | {r['seconds']:.1f} | {r['kernel_start_seconds']:.1f} | "
              f"{r['peak_rss_mib']:.0f} | {r['final_rss_mib']:.0f} |{sweep}")
    print()
    if args.trace:
        print("Where the memory goes (a separate run with a probe after every code cell; cells by index):\n")
        for r in rows:
            t = r["trace"]
            rises = "; ".join(f"cell {c['cell']} `{c['first_line']}` +{c['rise_mib']:.0f}" for c in t["largest_rises"])
            print(f"- {r['notebook']}: {t['after_imports_mib']:.0f} MiB after the first code cell (imports); "
                  f"largest rises: {rises}")
        print()
    if server["measured"]:
        print(f"JupyterLab server (no kernels): RSS {server['rss_idle_mib']:.0f} MiB idle after start-up "
              f"({server['startup_seconds']:.1f} s to answer /api/status), "
              f"{server['rss_after_opening_notebooks_mib']:.0f} MiB after serving the lab page and the notebooks "
              f"(peak {server['peak_rss_mib']:.0f} MiB).")
    else:
        print(f"JupyterLab server: not measured ({server['why']}).")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "notebooks": rows, "server": server}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
