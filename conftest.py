"""Set up for the whole test run (unit tests in tests/ and notebooks under nbval).

Offline guard: every process the tests start, notebook kernels included, imports
tests/offline/sitecustomize.py (it is put first on PYTHONPATH here), which refuses network
connections beyond this machine; this process loads the same guard now.

Trained models: the run gets its own empty cache ($VAE_LESSON_CACHE, inherited by the kernels),
so notebooks train their VAEs from scratch by the current recipe instead of loading whatever a
developer's ~/.cache holds, and nothing is written there. It is deleted when the run ends.
"""
import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

os.environ["VAE_LESSON_CACHE"] = _CACHE = tempfile.mkdtemp(prefix="vae-lesson-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

_OFFLINE = Path(__file__).resolve().parent / "tests" / "offline"
os.environ["PYTHONPATH"] = os.pathsep.join([str(_OFFLINE), *filter(None, [os.environ.get("PYTHONPATH")])])
_spec = importlib.util.spec_from_file_location("vae_lesson_offline_guard", _OFFLINE / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
