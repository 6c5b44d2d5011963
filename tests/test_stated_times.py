"""Every run time the course states comes from the benchmark (tools/sync_times.py): between markers,
equal to what benchmarks/results.json gives, and none stated in a notebook outside markers."""
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_times", ROOT / "tools" / "sync_times.py")
sync_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync_times)

RESULTS = {"notebooks": {"06_amortized_inference.ipynb": {"seconds": 26.6, "peak_mib": 512}},
           "notebooks-warm": {"06_amortized_inference.ipynb": {"seconds": 11.2}},
           "first-start": {"load": 2, "models": {"course": {"idle_s": 17.2, "loaded_s": 31.0}}},
           "suite": {"wall_s": 248.0}, "suite-loaded": {"wall_s": 371.0}}


@pytest.mark.parametrize("seconds, text", [(4.4, "about 4 s"), (0.2, "about 1 s"), (17.2, "about 15 s"),
                                           (26.6, "about 25 s"), (248.0, "about 4.1 minutes"), (90, "about 1.5 minutes")])
def test_render(seconds, text):
    assert sync_times.render(seconds) == text


def test_keys_read_the_benchmark_and_say_what_is_missing():
    assert sync_times.value("nb:06", RESULTS) == 26.6 and sync_times.value("nbwarm:06", RESULTS) == 11.2
    assert sync_times.value("train:course", RESULTS) == 17.2 and sync_times.value("train:course:busy", RESULTS) == 31.0
    assert sync_times.value("suite", RESULTS) == 248.0 and sync_times.value("suite:busy", RESULTS) == 371.0
    assert sync_times.render_key("mem:06", RESULTS) == "about 510 MiB" and sync_times.render_key("nb:06", RESULTS) == "about 25 s"
    with pytest.raises(KeyError, match="run benchmarks/run.py"):
        sync_times.value("train:2d", RESULTS)
    with pytest.raises(KeyError, match="unknown time key"):
        sync_times.value("walltime", RESULTS)


def test_every_stated_time_matches_the_benchmark():
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    assert sync_times.stale(results) == [], "run: .venv/bin/python tools/sync_times.py"


UNMARKED = re.compile(r"\babout \d+(?:\.\d+)? ?(?:s|seconds?|minutes?)\b")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_no_notebook_states_a_run_time_outside_the_markers(path):
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            bare = UNMARKED.findall(sync_times.MARKER.sub("", cell.source))
            assert not bare, f"{path.name} cell {i}: {bare}: state run times as <!--time:KEY-->...<!--/time-->"


def test_the_unmarked_lint_finds_a_bare_time():
    assert UNMARKED.findall("training takes about 15 seconds") and not UNMARKED.findall(
        sync_times.MARKER.sub("", "it takes <!--time:nb:06-->about 25 s<!--/time-->"))


def test_the_guides_memory_limit_holds_the_largest_measured_kernel():
    """The guide's per-student memory limit leaves room over the largest notebook peak the benchmark measured
    (a JupyterLab server and a student's own cells need some 300 MiB more)."""
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    largest = max(row["peak_mib"] for row in results["notebooks"].values())
    guide = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    (limit,) = re.findall(r"a limit of about ([\d.]+) GiB", guide)
    assert float(limit) * 1024 >= largest + 300, (limit, largest)
