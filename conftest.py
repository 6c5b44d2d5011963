"""Set up for the whole test run (unit tests in tests/ and notebooks under nbval).

Offline guard: every process the tests start, notebook kernels included, imports
tests/offline/sitecustomize.py (it is put first on PYTHONPATH here), which refuses network
connections beyond this machine; this process loads the same guard now.

Trained models: the run gets its own empty cache ($VAE_LESSON_CACHE, inherited by the kernels and
by pytest-xdist's workers, which the main process starts after this file ran), so notebooks train
their VAEs from scratch by the current recipe instead of loading whatever a developer's ~/.cache
holds, each model once for the whole run (``vae.trained_vae`` trains under a file lock), and
nothing is written there. It is deleted when the run ends.

Notebooks (nbval): each notebook runs twice in one kernel, as after "Run All" and another "Run
All", and both passes must reproduce the checked outputs; the kernel runs in a temporary folder
holding only a copy of the notebook, with an empty model cache of its own, as for a student who
downloaded that one notebook, and a last item checks that the notebook wrote nothing beside
itself. Notebooks 01-05, whose checked outputs print floating-point results, run on another
floating-point path (MKL's compatible code path, ATen without SIMD kernels), as another CPU
would: a checked output that prints round-off fails here, not on a student's laptop.

Parallel runs (pytest-xdist, `-n auto --dist loadfile` in pyproject.toml, and pytest_xdist_make_scheduler
below: the items of a SPLIT file are units of their own): the items of one file go to one worker, in order: a notebook's cells share one kernel; the browser tests share one
JupyterLab server and one browser (two at once would cost more than they save on two cores); a
test module's module-scoped fixtures (a briefly trained VAE, a loaded data set) are built once,
not once per worker. The files are handed out in the order FIRST gives them.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/patience.py, for the waits below and in the tests
import patience  # noqa: E402

if "PYTEST_XDIST_WORKER" not in os.environ:  # the main process: workers inherit what it sets here
    os.environ["VAE_LESSON_CACHE"] = _CACHE = tempfile.mkdtemp(prefix="vae-lesson-test-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    if patience.SLOWNESS_VARIABLE not in os.environ:  # once per run, before the workers load the machine
        os.environ[patience.SLOWNESS_VARIABLE] = f"{patience.measure_slowness():.2f}"


def pytest_report_header(config):
    return (f"machine slowness {patience.slowness():.2f} (measured at the start; fixed waits are scaled by it, "
            f"long waits last while the work makes progress, a hang fails after {patience.idle_limit():.0f} s "
            "without any)")

_OFFLINE = ROOT / "tests" / "offline"
if str(_OFFLINE) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_OFFLINE), *filter(None, [os.environ.get("PYTHONPATH")])])
_spec = importlib.util.spec_from_file_location("vae_lesson_offline_guard", _OFFLINE / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))

# Another CPU's floating-point path, for the kernels of the notebooks whose checked outputs print
# floats (06 and 07 print counts and closed forms; on this path they would take 40% longer).
OTHER_CPU = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}
OTHER_CPU_NOTEBOOKS = ("01", "02", "03", "04", "05")

# The longest work first, so that no worker is left with a long item at the end (pytest-xdist
# hands out the files in collection order): notebook 07 (which trains both of the course's
# models and shares each as soon as it is trained, see share_trained_models, so that the browser
# tests load them), the browser tests, notebook 06, every student version run with the right answers
# of tests/exercise_answers.py (two or three rounds per notebook), the nbgrader round trip (three
# autograded runs of notebook 03), the other notebooks, then the unit-test modules that take longest (8-20 s
# each); the many short modules come last and even out the end.
FIRST = ("notebooks/07", "tests/test_hub_nbgrader.py", "tests/test_hub.py", "tests/test_browser.py", "tests/test_explorer_browser.py", "notebooks/06",
         "tests/test_exercise_routes.py", "tests/test_nbgrader.py", "tests/test_app.py",
         "tests/test_student.py", "notebooks/", "tests/test_vae.py", "tests/test_widgets_nb06_nb07.py",
         "tests/test_missing_half.py", "tests/test_gradients.py", "tests/test_latent1d.py")


def _rank(item) -> int:
    nodeid = item.nodeid
    return next((i for i, prefix in enumerate(FIRST) if nodeid.startswith(prefix)), len(FIRST))


# Files whose items are independent of each other and long (a whole notebook run each): each item is its
# own unit for pytest-xdist (pytest_xdist_make_scheduler), so that two workers share them instead of one
# worker taking them all.
SPLIT = ("tests/test_exercise_routes.py",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: the order inside a unit (a notebook's cells) is kept


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduling by file (`--dist loadfile`: a notebook's cells share a kernel, a module its
    fixtures), except that each item of a SPLIT file is a unit of its own."""
    from xdist.scheduler import LoadScopeScheduling

    class FileOrSplitItem(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPLIT else path

    return FileOrSplitItem(config, log)


try:
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, RunningKernel
    from nbval.plugin import IPyNbCell, IPyNbFile
except ImportError:  # nbval missing: requirements.txt installs it; the unit tests still run
    IPyNbFile = None


if IPyNbFile is not None:

    class PatientKernel(RunningKernel):
        """nbval's kernel, waiting for a cell's reply and outputs as long as the kernel makes progress
        (its process tree uses CPU, or a message arrives), instead of nbval's fixed waits (5 s for the
        outputs after the reply: a loaded machine trips it). A cell that makes no progress for
        ``patience.idle_limit()`` seconds fails as a hang, naming the cell."""

        current = "a cell"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)  # nbval's start-up waits rely on short timeouts: patience after it
            self.meter = patience.CpuMeter(self.km.provisioner.pid)
            self.patient = True

        def get_message(self, stream, timeout=None):
            if not getattr(self, "patient", False):
                return super().get_message(stream, timeout=timeout)
            from queue import Empty

            limit, level, last_move = patience.idle_limit(), self.meter.read(), time.monotonic()
            while True:
                try:
                    return super().get_message(stream, timeout=1)
                except Empty:
                    if not self.is_alive():
                        raise RuntimeError(f"{self.current}: the kernel died (out of memory?)") from None
                    value = self.meter.read()
                    if value >= level + 0.05:
                        level, last_move = value, time.monotonic()
                    elif time.monotonic() - last_move > limit:
                        raise patience.Hang(
                            f"{self.current}: no output and no CPU used by the kernel for {limit:.0f} s (the limit "
                            f"on this machine, slowness {patience.slowness():.1f}): the cell looks hung") from None

    class PatientCell(IPyNbCell):
        """nbval's cell, telling the kernel which cell it runs (for a hang's message)."""

        def runtest(self):
            self.parent.kernel.current = f"{self.parent.path.name}, {self.name}"
            return super().runtest()

    class FolderLeftClean(pytest.Item):
        """The notebook's temporary folder holds nothing but the notebook after both runs."""

        def runtest(self):
            folder = self.parent.folder
            written = sorted(p.name for p in folder.iterdir() if p.name != self.parent.path.name)
            assert not written, f"{self.parent.path.name} wrote {written} beside itself (in {folder})"

        def reportinfo(self):
            return self.path, 0, f"{self.parent.path.name}: nothing written beside the notebook"

    class NotebookTwiceFromACopy(IPyNbFile):
        """nbval's notebook, with every cell run twice in one kernel (two passes, both checked), the
        kernel started in a temporary folder with an empty model cache, and a last check that the
        folder stayed clean. ``--dist loadfile`` keeps its items on one xdist worker, in order."""

        def collect(self):
            cells = list(super().collect())
            for run in (1, 2):
                for cell in cells:
                    name = cell.name if run == 1 else f"{cell.name}, run 2"
                    yield PatientCell.from_parent(self, name=name, cell_num=cell.cell_num, cell=cell.cell,
                                                  options=cell.options)
            yield FolderLeftClean.from_parent(self, name="folder left clean")

        def setup(self):
            self.folder = Path(tempfile.mkdtemp(prefix=f"vae-lesson-{self.path.stem[:2]}-"))
            self.cache = Path(tempfile.mkdtemp(prefix="vae-lesson-empty-cache-"))
            shutil.copy(self.path, self.folder / self.path.name)
            env = {"VAE_LESSON_CACHE": str(self.cache),
                   **(OTHER_CPU if self.path.name[:2] in OTHER_CPU_NOTEBOOKS else {})}
            saved = {name: os.environ.get(name) for name in env}
            os.environ.update(env)  # the kernel inherits this process's environment when it starts
            try:
                option = self.config.option
                kernel_name = (CURRENT_ENV_KERNEL_NAME if option.nbval_current_env
                               else option.nbval_kernel_name or self.nb.metadata.get("kernelspec", {}).get("name", "python"))
                self.kernel = PatientKernel(kernel_name, cwd=str(self.folder),
                                            startup_timeout=option.nbval_kernel_startup_timeout)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            self.setup_sanitize_files()

        def teardown(self):
            super().teardown()
            for path in (getattr(self, "folder", None), getattr(self, "cache", None)):
                if path is not None:
                    shutil.rmtree(path, ignore_errors=True)

    def share_trained_models(private: Path) -> None:
        """Copy the course's models that a notebook trained in its private cache into the run's
        shared cache, unless they are there already: the browser and app tests then load them
        instead of training the same recipe again (the same recipe gives the same model). A model
        is complete once it is in the private cache: trained_vae writes it by an atomic rename."""
        from vae_lesson.checkpoints import exclusive
        from vae_lesson.vae import RECIPES

        shared = Path(os.environ["VAE_LESSON_CACHE"])
        for name in RECIPES:
            trained, target = private / f"vae-{name}.pt", shared / f"vae-{name}.pt"
            if trained.is_file():
                with exclusive(target):  # the lock trained_vae takes
                    if not target.exists():
                        shutil.copy(trained, shared / f".{target.name}.copying")
                        os.replace(shared / f".{target.name}.copying", target)

    def pytest_runtest_teardown(item, nextitem):
        """After each cell of a notebook: share what it trained (see share_trained_models)."""
        if isinstance(item.parent, NotebookTwiceFromACopy) and getattr(item.parent, "cache", None) is not None:
            share_trained_models(item.parent.cache)

    @pytest.hookimpl(wrapper=True)
    def pytest_collect_file(file_path, parent):
        collected = yield
        return [NotebookTwiceFromACopy.from_parent(parent, path=file_path) if type(c) is IPyNbFile else c
                for c in collected]
