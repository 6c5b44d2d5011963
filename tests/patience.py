"""Waits that catch a hang, not a slow or busy machine.

Students run the tests on laptops with a browser and a video call open, and CI machines are shared:
a fixed timeout that fits an idle machine trips on a loaded one. Every wait in the tests is derived
from the work it waits for, one of two ways:

- ``slowness()``: how much slower this machine is than an idle one of this project's CI machines,
  measured once at the start of the run (``measure_slowness``, a fixed piece of the course's own
  kind of work: small float32 matrix products, as its MLPs do) and passed to every process the run
  starts (the variable ``VAE_LESSON_TEST_SLOWNESS``). ``patient(seconds)`` scales a wait by it, for
  waits with a known size (a widget redraw, a server start).
- ``wait_with_progress``: for long waits (a notebook's Run All, a cell that trains a model, an app's
  first page), wait as long as the work makes progress (its processes use CPU, cells finish) and
  fail only when nothing has moved for ``idle_limit`` seconds, with a message that names the work.
  A cell that sleeps forever uses no CPU: it fails after the idle limit, named.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Callable

SLOWNESS_VARIABLE = "VAE_LESSON_TEST_SLOWNESS"
REFERENCE_SECONDS = 0.040  # measure_slowness's work (one repeat) on an idle 2-core AMD EPYC, this project's CI machine
IDLE_LIMIT = 60.0  # seconds without any progress that make a hang, on an idle machine (scaled by slowness)


def measure_slowness(repeats: int = 5) -> float:
    """This machine's time for a fixed piece of work over the reference machine's (at least 1): the mean
    of ``repeats`` runs of 300 products of (256 x 200) @ (200 x 200) float32 matrices, one thread (the
    mean, not the best: on a shared machine the work waits for its share of the cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(256, 200), torch.randn(200, 200)
        start = time.perf_counter()
        for _ in range(repeats):
            for _ in range(300):
                a @ b
        mean = (time.perf_counter() - start) / repeats
    finally:
        torch.set_num_threads(before)
    return max(1.0, mean / REFERENCE_SECONDS)


def slowness() -> float:
    """The factor measured at the start of the run (1.0 when none was: a test run on its own)."""
    try:
        return max(1.0, float(os.environ.get(SLOWNESS_VARIABLE, "1")))
    except ValueError:
        return 1.0


def patient(seconds: float) -> float:
    """A wait of ``seconds`` on the reference machine, on this one."""
    return seconds * slowness()


def idle_limit() -> float:
    """Seconds without progress after which a wait fails as a hang (``VAE_LESSON_TEST_IDLE_LIMIT``, if set,
    replaces the scaled default: the tests of this module set a short one)."""
    value = os.environ.get("VAE_LESSON_TEST_IDLE_LIMIT")
    return float(value) if value else patient(IDLE_LIMIT)


class CpuMeter:
    """CPU seconds used by a process and all its descendants since the meter was made, counting the
    increments of every process seen (a child that exits keeps what it used)."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.last: dict[int, float] = {}
        self.total = 0.0
        for proc, used in self._used():  # the starting point: nothing counted yet
            self.last[proc.pid] = used

    def _used(self):
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        out = []
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            out.append((proc, t.user + t.system))
        return out

    def read(self) -> float:
        for proc, used in self._used():
            self.total += max(0.0, used - self.last.get(proc.pid, 0.0))  # a new process: all it used
            self.last[proc.pid] = used
        return self.total


class Hang(AssertionError):
    """The work waited for made no progress for the idle limit."""


def wait_with_progress(done: Callable[[], bool], progress: Callable[[], float], what: str,
                       limit: float | None = None, interval: float = 0.25, min_step: float = 0.05) -> float:
    """Poll ``done()`` until it is true; fail with ``Hang`` (naming ``what``) when ``progress()`` (a
    number that grows while the work advances: CPU seconds, finished cells) has not grown by
    ``min_step`` for ``limit`` seconds (default ``idle_limit()``). Returns the seconds waited."""
    limit = idle_limit() if limit is None else limit
    start = last_move = time.monotonic()
    level = progress()
    while not done():
        time.sleep(interval)
        now, value = time.monotonic(), progress()
        if value >= level + min_step:
            level, last_move = value, now
        elif now - last_move > limit:
            raise Hang(f"{what}: no progress for {now - last_move:.0f} s (the limit on this machine: {limit:.0f} s, "
                       f"slowness {slowness():.1f}); after {now - start:.0f} s in all, it looks hung")
    return time.monotonic() - start


def execute_notebook(nb, cwd, allow_errors: bool = False, km=None):
    """Run a notebook with nbclient (in place, as nbconvert does) in a kernel of this Python, waiting for
    each cell as long as its kernel makes progress: a cell that makes none for ``idle_limit()`` seconds
    is interrupted and the run fails with ``Hang``, naming the cell. Output is never dropped for being
    late (nbclient's own iopub wait would give up after 4 s and carry on without it)."""
    import threading

    from conftest import current_env_kernel_manager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    km = km or current_env_kernel_manager()
    state = {"cell": None, "hang": None, "stop": False}

    def watch():
        pid = km.provisioner.pid
        meter, limit = CpuMeter(pid), idle_limit()
        level, last_move, cell = meter.read(), time.monotonic(), None
        while not state["stop"]:
            time.sleep(0.5)
            value = meter.read()
            if state["cell"] != cell or value >= level + 0.05:
                cell, level, last_move = state["cell"], value, time.monotonic()
            elif cell is not None and time.monotonic() - last_move > limit:
                state["hang"] = (f"cell {cell[0]} ({cell[1][:60]!r}): no output and no CPU used by the kernel for "
                                 f"{limit:.0f} s (slowness {slowness():.1f}): it looks hung")
                os.kill(pid, signal.SIGINT)  # as JupyterLab's interrupt does; the KernelManager is not thread-safe
                return

    def on_cell_execute(cell, cell_index):
        state["cell"] = (cell_index, cell.source.splitlines()[0] if cell.source else "")

    def on_cell_executed(cell, cell_index, execute_reply):  # nbclient's on_cell_complete runs on sending, not on the reply
        state["cell"] = None

    def on_notebook_start(notebook):
        threading.Thread(target=watch, daemon=True).start()

    client = NotebookClient(nb, km=km, timeout=None, allow_errors=allow_errors, iopub_timeout=int(patient(60)),
                            raise_on_iopub_timeout=True, resources={"metadata": {"path": str(cwd)}},
                            on_cell_execute=on_cell_execute, on_cell_executed=on_cell_executed,
                            on_notebook_start=on_notebook_start)
    try:
        client.execute()
    except CellExecutionError:
        if state["hang"]:
            raise Hang(state["hang"]) from None
        raise
    finally:
        state["stop"] = True
    if state["hang"]:
        raise Hang(state["hang"])
    return nb
