"""Stated run times, generated from the benchmark's results (benchmarks/results.json).

    .venv/bin/python tools/sync_times.py           # rewrite every stated time from the results
    .venv/bin/python tools/sync_times.py --check   # list the stated times that differ; exit 1 if any

A run time in the course's Markdown (the notebooks' Markdown cells, README.md, notebooks/README.md)
is stated only between markers, so that it comes from a measurement and stays true:

    the first start trains it, <!--time:train:course-->about 15 s<!--/time--> (<!--time:train:course:busy-->about 25 s<!--/time--> on a busy laptop)

Keys (``value``): ``nb:NN`` a notebook top to bottom in a fresh kernel from an empty model cache
(``notebooks``); ``nbwarm:NN`` the same with the course's models already cached, as on a
student's second run (``notebooks-warm``); ``train:NAME`` and ``train:NAME:busy`` training
``vae.trained_vae(NAME)`` from an empty cache in a fresh process, on an idle machine and with
CPU-bound processes alongside (``first-start``); ``suite`` and ``suite:busy`` the README's test
command (``suite``, ``suite-loaded``); ``mem:NN`` a notebook's peak kernel memory (``notebooks``).
Jupyter and GitHub render the markers invisibly.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
MARKER = re.compile(r"<!--time:([\w:.-]+)-->(.*?)<!--/time-->", re.S)


def render_key(key: str, results: dict) -> str:
    """The text a marker shows: a run time, or for ``mem:NN`` a notebook's peak kernel memory ("about 580 MiB")."""
    if key.startswith("mem:"):
        return f"about {10 * round(value(key, results) / 10)} MiB"
    return render(value(key, results))


def render(seconds: float) -> str:
    """A run time as the prose states it: "about 8 s", "about 25 s", "about 4 minutes"."""
    if not seconds >= 0:
        raise ValueError(f"a run time must be a number of seconds >= 0, got {seconds!r}")
    if seconds < 10:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90:
        return f"about {5 * round(seconds / 5)} s"
    return f"about {round(seconds / 60, 1):g} minutes"


def value(key: str, results: dict) -> float:
    """The seconds a key stands for, from the benchmark's results; KeyError saying what to run if missing."""
    kind, _, rest = key.partition(":")
    try:
        if kind in ("nb", "nbwarm", "mem"):
            section = results["notebooks-warm" if kind == "nbwarm" else "notebooks"]
            name = next(n for n in section if n.startswith(rest + "_"))
            return float(section[name]["peak_mib" if kind == "mem" else "seconds"])
        if kind == "train":
            name, _, busy = rest.partition(":")
            return float(results["first-start"]["models"][name]["loaded_s" if busy == "busy" else "idle_s"])
        if kind == "suite":
            return float(results["suite-loaded" if rest == "busy" else "suite"]["wall_s"])
    except (KeyError, StopIteration):
        raise KeyError(f"benchmarks/results.json has no measurement for time:{key}; run benchmarks/run.py with the "
                       "section it needs (notebooks, notebooks-warm, first-start, suite, suite-loaded)") from None
    raise KeyError(f"unknown time key {key!r} (nb:NN, nbwarm:NN, mem:NN, train:NAME[:busy], suite[:busy])")


def files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "notebooks" / "README.md", *sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def _texts(path: Path):
    """(where, text) of every piece of Markdown in a file: the file itself, or a notebook's Markdown cells."""
    if path.suffix != ".ipynb":
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
        return
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            yield f"{path.name} cell {i}", "".join(cell["source"])


def stale(results: dict) -> list[str]:
    """Every stated time that differs from what the results give, as 'where: key says X, measured Y'."""
    out = []
    for path in files():
        for where, text in _texts(path):
            for key, said in MARKER.findall(text):
                want = render_key(key, results)
                if said != want:
                    out.append(f"{where}: time:{key} says {said!r}, the benchmark gives {want!r}")
    return out


def sync(results: dict) -> int:
    """Rewrite every marker from the results; returns how many changed."""
    changed = 0

    def fix(match):
        nonlocal changed
        want = render_key(match.group(1), results)
        changed += want != match.group(2)
        return f"<!--time:{match.group(1)}-->{want}<!--/time-->"

    for path in files():
        if path.suffix != ".ipynb":
            path.write_text(MARKER.sub(fix, path.read_text(encoding="utf-8")), encoding="utf-8")
            continue
        import nbformat

        nb = nbformat.read(path, as_version=4)
        before = changed
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = MARKER.sub(fix, cell.source)
        if changed != before:
            nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    results = json.loads(RESULTS.read_text())
    if argv == ["--check"]:
        problems = stale(results)
        print("\n".join(problems) or "every stated time matches benchmarks/results.json")
        return 1 if problems else 0
    if argv:
        print(__doc__)
        return 2
    print(f"{sync(results)} stated time(s) rewritten from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
