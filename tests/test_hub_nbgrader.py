"""nbgrader across the users of a real JupyterHub (`python3 dev.py hub`, the `hub` fixture of tests/hubs.py):
the assignment goes out and comes back through nbgrader's exchange (the hub's state folder/exchange), and
every step runs where it runs in a class: nbgrader's command line in a kernel of that user's server,
driven over the hub's proxy (the kernel websocket and the contents API, hub/client.py), never in this
process.

- the instructor's server writes the course (`python3 dev.py grade-course`, notebook 03 only), generates and
  releases 03_elbo;
- "ada" and "bob" fetch it; ada fills the answer cells from the instructor's source version (the reference
  solutions) and submits, bob submits the untouched release;
- the instructor collects, autogrades, generates and releases the feedback, and exports the gradebook;
  the CSV, fetched with the contents API: ada 4 / 4, bob 0 / 4, filed under their hub names;
- each student fetches their feedback and finds its page, with their score, in their home folder.

One hub, three servers and one round trip for the module (two autograded runs of notebook 03)."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import patience
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hub.client import HubError, TreeMeter, UserServer  # noqa: E402
from hubs import hub  # noqa: E402,F401 (the module-scoped fixture)

ASSIGNMENT = "03_elbo"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE = "course"  # the course folder, in the instructor's home
STUDENTS = ("ada", "bob")
TOTAL = 4.0  # 03.1 (1) + 03.2 (1) + 03.3 (2): notebooks/README.md, "Grading with nbgrader"

# Defined once in each kernel: run a command there, print its output, fail with it.
SH = '''
import subprocess
def sh(*args, cwd=None):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\\n{out[-3000:]}")
    return out
'''


class Session:
    """A user's server with one kernel in their home folder, running nbgrader's command line there."""

    def __init__(self, server: UserServer, name: str, pid: int):
        import psutil

        self.server, self.name = server, name
        self.kernel = server.start_kernel("")
        self.meter = TreeMeter(psutil.Process(pid)).__enter__()  # the server's CPU: progress for the waits
        self.kernel.run(SH, idle_limit=patience.idle_limit())

    def sh(self, *args: str, cwd: str = "") -> str:
        """Run a command in this user's server (``cwd`` relative to their home); its output."""
        code = f"print(sh(*{list(args)!r}, cwd={cwd or None!r}))"  # the kernel runs in the home folder
        try:
            return self.kernel.run(code, idle_limit=patience.idle_limit(), progress=self.meter.progress)
        except HubError as exc:
            raise AssertionError(f"{self.name}: {' '.join(args)} failed: {exc}") from None

    def close(self) -> None:
        self.meter.__exit__(None, None, None)
        self.kernel.shutdown()


def _servers(hub, names) -> dict[str, UserServer]:
    """Start the users' servers at once ("instructor" is the hub's admin by its configuration); each with a
    token of the user's own."""
    for name in names:
        hub.add_user(name)
    hub.start_servers(*names)
    return {name: UserServer(hub.url, name, hub.user_token(name)) for name in names}


def _answered(released: dict, source: dict) -> dict:
    """The released notebook with each answer cell's source replaced by the instructor's source version of
    the same cell (matched by nbgrader's grade_id): the reference solutions, as a student who got
    everything right would submit."""
    solutions = {c["metadata"]["nbgrader"]["grade_id"]: c["source"] for c in source["cells"]
                 if c["metadata"].get("nbgrader", {}).get("solution")}
    answered = json.loads(json.dumps(released))
    filled = 0
    for cell in answered["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = solutions[meta["grade_id"]]
            filled += 1
    assert filled == len(solutions) == 3, (filled, sorted(solutions))
    return answered


@pytest.fixture(scope="module")
def round_trip(hub):  # noqa: F811
    """The whole class round trip; returns the users' servers and what the instructor exported."""
    servers = _servers(hub, ("instructor", *STUDENTS))
    sessions = {name: Session(server, name, hub.server_pid(name)) for name, server in servers.items()}
    teacher = sessions["instructor"]
    try:
        teacher.sh("python3", str(ROOT / "dev.py"), "grade-course", COURSE, "--only", ASSIGNMENT)
        teacher.sh("nbgrader", "generate_assignment", ASSIGNMENT, cwd=COURSE)
        teacher.sh("nbgrader", "release_assignment", ASSIGNMENT, cwd=COURSE)
        for name in STUDENTS:
            sessions[name].sh("nbgrader", "fetch_assignment", ASSIGNMENT)
        released = servers["ada"].download_notebook(f"{ASSIGNMENT}/{NOTEBOOK}")
        source = servers["instructor"].download_notebook(f"{COURSE}/source/{ASSIGNMENT}/{NOTEBOOK}")
        servers["ada"].upload(f"{ASSIGNMENT}/{NOTEBOOK}", _answered(released, source))
        for name in STUDENTS:
            sessions[name].sh("nbgrader", "submit", ASSIGNMENT)
        for step in ("collect", "autograde", "generate_feedback", "release_feedback"):
            teacher.sh("nbgrader", step, ASSIGNMENT, cwd=COURSE)
        teacher.sh("nbgrader", "export", cwd=COURSE)  # grades.csv, from the gradebook
        grades = servers["instructor"].download(f"{COURSE}/grades.csv").decode()
        feedback = {name: sessions[name].sh("nbgrader", "fetch_feedback", ASSIGNMENT) for name in STUDENTS}
        yield {"servers": servers, "sessions": sessions, "released": released,
               "grades": list(csv.DictReader(io.StringIO(grades))), "feedback_log": feedback}
    finally:
        for session in sessions.values():
            session.close()


def test_release_reaches_both_students_without_solutions(round_trip):
    released = round_trip["released"]
    text = "\n".join("".join(c["source"]) for c in released["cells"])
    assert "BEGIN SOLUTION" not in text and "std**2 + mean**2" not in text
    for name in STUDENTS:
        assert f"{ASSIGNMENT}/{NOTEBOOK}" in round_trip["servers"][name].walk(ASSIGNMENT), name


def test_submissions_are_filed_under_each_students_hub_name(round_trip):
    """Every server runs as the same system user here: the students' hub names, not "root", must reach
    the instructor's submitted/ folder and the gradebook."""
    instructor = round_trip["servers"]["instructor"]
    assert sorted(e["name"] for e in instructor.listdir(f"{COURSE}/submitted")) == sorted(STUDENTS)
    assert sorted(row["student_id"] for row in round_trip["grades"]) == sorted(STUDENTS)


def test_gradebook_scores(round_trip):
    """The gradebook, exported with `nbgrader export`: full marks for the reference solutions, 0 for the
    untouched release."""
    scores = {row["student_id"]: (row["assignment"], float(row["score"]), float(row["max_score"]))
              for row in round_trip["grades"]}
    assert scores == {"ada": (ASSIGNMENT, TOTAL, TOTAL), "bob": (ASSIGNMENT, 0.0, TOTAL)}


def test_each_student_fetches_their_feedback(round_trip):
    for name, score in (("ada", TOTAL), ("bob", 0.0)):
        server = round_trip["servers"][name]
        pages = [p for p in server.walk(f"{ASSIGNMENT}/feedback") if p.endswith(f"/{ASSIGNMENT}.html")]
        assert len(pages) == 1, (name, pages, round_trip["feedback_log"][name])
        html = server.download(pages[0]).decode()
        assert f"Score: {score} / {TOTAL}" in html, name


def test_client_runs_cells_in_order_and_stops_at_the_first_error(round_trip):
    """hub/client.py's "Run All" over the websocket: cells run in order in one kernel, the first one that
    raises stops the run and is reported with its index, first line and the kernel's error."""
    kernel = round_trip["sessions"]["bob"].kernel
    cell = lambda source: {"cell_type": "code", "source": source, "metadata": {}, "outputs": []}  # noqa: E731
    nb = {"cells": [cell("x = 41"), {"cell_type": "markdown", "source": "text", "metadata": {}},
                    cell("x += 1\nprint(x)"),
                    cell("# the slip\n1 / (x - 42)"), cell("print('never')")]}
    run = kernel.run_notebook(nb, idle_limit=patience.idle_limit())
    assert [c.index for c in run.cells] == [0, 2, 3] and run.cells[1].text == "42\n"
    assert run.error.startswith("cell 3 ('# the slip'): ZeroDivisionError: division by zero"), run.error
    assert not run.ok and run.wall_s >= sum(c.seconds for c in run.cells) * 0.9
