"""Set up for the whole test run (unit tests in tests/ and notebooks under nbval).

Offline guard: every process the tests start, notebook kernels included, imports
tests/offline/sitecustomize.py (it is put first on PYTHONPATH here), which refuses network
connections beyond this machine; this process loads the same guard now.
"""
import importlib.util
import os
from pathlib import Path

_OFFLINE = Path(__file__).resolve().parent / "tests" / "offline"
os.environ["PYTHONPATH"] = os.pathsep.join([str(_OFFLINE), *filter(None, [os.environ.get("PYTHONPATH")])])
_spec = importlib.util.spec_from_file_location("vae_lesson_offline_guard", _OFFLINE / "sitecustomize.py")
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
