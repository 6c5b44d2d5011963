"""Habits of a good lesson, checked on every notebook: "predict first" questions answered by the
next cell, and a closing list of the papers and notes the notebook follows (spelled as in
``vae_lesson.references``, each tied to a section that exists)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from vae_lesson.references import HEADING, REFERENCES

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PREDICT = "**Predict first:**"


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def predict_first_questions(cells) -> list[int]:
    """Indices of Markdown cells that ask a "predict first" question and are followed by a code
    cell (the one whose output answers it)."""
    return [i for i, c in enumerate(cells[:-1])
            if c.cell_type == "markdown" and PREDICT in c.source and cells[i + 1].cell_type == "code"]


def reference_problems(cells) -> list[str]:
    """What is wrong with a notebook's closing reference list (empty when nothing is)."""
    last = cells[-1]
    if last.cell_type != "markdown" or not last.source.startswith(HEADING):
        return [f"the last cell must be a Markdown cell that starts with {HEADING!r}"]
    sections = {m for m in re.findall(r"^## (\d+)\.", "\n".join(c.source for c in cells if c.cell_type == "markdown"), re.M)}
    problems, items = [], [ln[2:] for ln in last.source.splitlines() if ln.startswith("- ")]
    if not items:
        problems.append("the reference list is empty")
    lines = {ref.line(): key for key, ref in REFERENCES.items()}
    for item in items:
        match = [line for line in lines if item.startswith(line)]
        if not match:
            problems.append(f"not a citation from vae_lesson.references: {item[:80]!r}")
            continue
        used = item[len(match[0]):]
        cited = re.findall(r"section (\d+)", used)
        if not cited:
            problems.append(f"{lines[match[0]]}: say which section uses it ('section N')")
        problems += [f"{lines[match[0]]}: there is no section {n}" for n in cited if n not in sections]
    return problems


def cited_keys(cells) -> set[str]:
    text = cells[-1].source
    return {key for key, ref in REFERENCES.items() if ref.line() in text}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_two_predict_first_questions(path):
    found = predict_first_questions(_cells(path))
    assert len(found) >= 2, f"{path.name}: {len(found)} '{PREDICT}' questions followed by a code cell; want 2 or more"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_its_references(path):
    assert reference_problems(_cells(path)) == []


def test_every_reference_is_cited():
    cited = set().union(*(cited_keys(_cells(p)) for p in NOTEBOOKS))
    assert set(REFERENCES) - cited == set()


def _nb(*sources):
    return [nbformat.v4.new_markdown_cell(s) if s.startswith(("#", "*", "-", "text")) else nbformat.v4.new_code_cell(s)
            for s in sources]


def test_the_lints_catch_what_they_claim():
    ok = REFERENCES["kingma2014"].line()
    assert reference_problems(_nb("## 1. A", "x = 1", f"{HEADING}\n\n- {ok} Used in section 1.")) == []
    assert "no section 2" in " ".join(reference_problems(_nb("## 1. A", f"{HEADING}\n\n- {ok} Used in section 2.")))
    assert "say which section" in " ".join(reference_problems(_nb("## 1. A", f"{HEADING}\n\n- {ok} Used throughout.")))
    assert "not a citation" in " ".join(reference_problems(_nb("## 1. A", f"{HEADING}\n\n- Kingma 2014. Used in section 1.")))
    assert reference_problems(_nb("## 1. A", "## Summary")) != []
    cells = _nb(f"text {PREDICT} what?", "print(1)", f"text {PREDICT} and?", f"text more")
    assert predict_first_questions(cells) == [0]


# --- a lesson that fits its time: every section marked core or optional, with its minutes -------------

MARK = re.compile(r"^## (\d+)\. .* · (core|optional) · (\d+) min\s*$")
TIME_LINE = re.compile(r"\*\*Time:\*\* core about (\d+) min · optional about (\d+) min")
CORE_PER_NOTEBOOK, LABS_MINUTES = 45, 3 * 120


def section_marks(cells) -> tuple[list[tuple[str, str, int]], list[str]]:
    """([(section number, core/optional, minutes)], problems) from the notebook's "## N." headings."""
    marks, problems = [], []
    for c in cells:
        if c.cell_type != "markdown":
            continue
        for line in c.source.splitlines():
            if re.match(r"^## \d+\. ", line):
                m = MARK.match(line)
                if m:
                    marks.append((m.group(1), m.group(2), int(m.group(3))))
                else:
                    problems.append(f"section heading without ' · core · N min' or ' · optional · N min': {line[:80]!r}")
    return marks, problems


def time_problems(cells) -> list[str]:
    marks, problems = section_marks(cells)
    core = sum(m for _, kind, m in marks if kind == "core")
    optional = sum(m for _, kind, m in marks if kind == "optional")
    stated = TIME_LINE.search(cells[0].source)
    if not stated:
        problems.append("the first cell must say '**Time:** core about N min · optional about M min'")
    elif (int(stated.group(1)), int(stated.group(2))) != (core, optional):
        problems.append(f"the first cell says core {stated.group(1)} / optional {stated.group(2)} min, the sections add "
                        f"up to {core} / {optional}")
    if core > CORE_PER_NOTEBOOK:
        problems.append(f"the core takes {core} min, more than the {CORE_PER_NOTEBOOK} a notebook has in a lab")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_sections_are_marked_and_the_core_fits_45_minutes(path):
    assert not time_problems(_cells(path)), time_problems(_cells(path))


def test_the_whole_core_fits_three_two_hour_labs():
    total = sum(m for p in NOTEBOOKS for _, kind, m in section_marks(_cells(p))[0] if kind == "core")
    assert 0 < total <= LABS_MINUTES, total


def test_the_time_lint_catches_what_it_claims():
    first = nbformat.v4.new_markdown_cell("# 99 · x\n\n**Time:** core about 50 min · optional about 10 min")
    cells = [first, nbformat.v4.new_markdown_cell("## 1. A (0:00) · core · 50 min\n\n## 2. B · optional · 10 min"),
             nbformat.v4.new_markdown_cell("## 3. C (1:00)")]
    problems = time_problems(cells)
    assert any("without ' · core" in p for p in problems) and any("more than the 45" in p for p in problems)
    first.source = first.source.replace("core about 50", "core about 40")
    assert any("add up to 50 / 10" in p for p in time_problems(cells))
