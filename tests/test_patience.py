"""tests/patience.py: waits that last while the work makes progress and fail, naming the work, when
nothing moves (a hang); nbval's kernel (conftest.PatientKernel) waits that way for every cell."""
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

import patience

ROOT = Path(__file__).resolve().parents[1]


def test_wait_returns_when_done_and_fails_on_a_hang_naming_it():
    calls = iter(range(1000))
    assert patience.wait_with_progress(lambda: next(calls) >= 3, lambda: 0.0, "quick work", limit=5) < 5
    start = time.monotonic()
    with pytest.raises(patience.Hang, match="Run All of 07_vae.ipynb: no progress for"):
        patience.wait_with_progress(lambda: False, lambda: 0.0, "Run All of 07_vae.ipynb", limit=0.6, interval=0.05)
    assert time.monotonic() - start < 3


def test_slow_steady_progress_is_not_a_hang():
    """Work that takes far longer than the idle limit but keeps moving is waited for."""
    start = time.monotonic()
    clock = lambda: time.monotonic() - start  # noqa: E731  progress: one unit per second
    waited = patience.wait_with_progress(lambda: clock() > 1.5, clock, "slow work", limit=0.5, interval=0.05)
    assert waited > 1.4


def test_cpu_meter_counts_a_busy_child_and_not_a_sleeping_one():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.6: pass"])
    sleepy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    try:
        meters = [patience.CpuMeter(p.pid) for p in (busy, sleepy)]
        time.sleep(0.5)
        used = [m.read() for m in meters]
    finally:
        busy.wait(), sleepy.wait()
    assert used[0] > 0.2 and used[1] < 0.1, used


def test_slowness_is_at_least_one_and_scales_waits(monkeypatch):
    monkeypatch.setenv(patience.SLOWNESS_VARIABLE, "2.5")
    assert patience.patient(10) == 25 and patience.idle_limit() == pytest.approx(2.5 * patience.IDLE_LIMIT)
    monkeypatch.setenv(patience.SLOWNESS_VARIABLE, "0.3")
    assert patience.slowness() == 1.0
    assert patience.measure_slowness(repeats=1) >= 1.0


def _root_conftest():
    spec = importlib.util.spec_from_file_location("vae_lesson_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nbval_kernel_waits_for_a_busy_cell_and_names_a_hung_one(monkeypatch):
    """The kernel the notebook tests run on (conftest.PatientKernel): a cell that computes for longer than
    the idle limit without printing passes; a cell that sleeps forever fails after the limit, named."""
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME

    monkeypatch.setenv("VAE_LESSON_TEST_IDLE_LIMIT", "1.5")
    kernel = _root_conftest().PatientKernel(CURRENT_ENV_KERNEL_NAME)
    try:
        kernel.current = "busy.ipynb, Cell 1"
        msg_id = kernel.execute_cell_input("import time\nt = time.time()\nwhile time.time() - t < 2.5: pass", allow_stdin=False)
        kernel.await_reply(msg_id, timeout=2000)  # nbval's own wait; no output for 2.5 s, but CPU all along
        kernel.await_idle(msg_id, 5)
        kernel.current = "hang.ipynb, Cell 3"
        msg_id = kernel.execute_cell_input("import time\ntime.sleep(10**6)", allow_stdin=False)
        start = time.monotonic()
        with pytest.raises(patience.Hang, match="hang.ipynb, Cell 3: no output and no CPU"):
            kernel.await_reply(msg_id, timeout=2000)
        assert time.monotonic() - start < 10
    finally:
        kernel.stop()


def test_a_notebook_run_names_a_hung_cell(monkeypatch, tmp_path):
    """tests' notebook runs (patience.execute_notebook): a busy cell is waited for, a sleeping one fails
    after the idle limit with a Hang that names it."""
    import nbformat

    monkeypatch.setenv("VAE_LESSON_TEST_IDLE_LIMIT", "1.5")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nt = time.time()\nwhile time.time() - t < 2.5: pass\nprint('busy done')"),
                nbformat.v4.new_code_cell("# waits for nothing\ntime.sleep(10**6)"),
                nbformat.v4.new_code_cell("print('never')")]
    start = time.monotonic()
    with pytest.raises(patience.Hang, match=r"cell 1 \('# waits for nothing'\): no output and no CPU"):
        patience.execute_notebook(nb, tmp_path)
    assert time.monotonic() - start < 20
    assert "busy done" in nb.cells[0].outputs[0].text
