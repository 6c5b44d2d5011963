"""Numbers quoted in prose agree with the stored outputs they quote.

The instructor guide (notebooks/README.md) and notebook 04 quote results that notebooks print;
these tests read the quote and the stored output side by side, so refreshing a notebook cannot
leave its quotes behind (the guide once said "0.49 s ... about 8 minutes" beside a stored 0.61 s).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NUMBER = r"[−-]?\d[\d,]*(?:\.\d+)?"


def _float(text: str) -> float:
    return float(text.replace("−", "-").replace(",", ""))


def stored_output(stem: str) -> str:
    """Everything the notebook printed, as stored (stream outputs), in order."""
    nb = nbformat.read(next(NOTEBOOKS.glob(f"{stem}*.ipynb")), as_version=4)
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def markdown_of(stem: str) -> str:
    nb = nbformat.read(next(NOTEBOOKS.glob(f"{stem}*.ipynb")), as_version=4)
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def guide() -> str:
    return (NOTEBOOKS / "README.md").read_text()


def find(pattern: str, text: str, what: str) -> tuple[float, ...]:
    match = re.search(pattern, text)
    assert match, f"{what}: no text matches {pattern!r}"
    return tuple(_float(g) for g in match.groups())


def test_the_k_ladder_of_notebook_01():
    printed = stored_output("01")
    stored = [find(rf"random\s+K =\s+{k}: average log p_K\(x\) =\s+({NUMBER})\s+\(exact ({NUMBER})\)", printed, "01")
              for k in (1, 5, 20, 200)]
    quoted = find(rf"stored run gives ({NUMBER}), ({NUMBER}), ({NUMBER}) and ({NUMBER}) for \$K\$ = 1, 5, 20, 200, "
                  rf"against ({NUMBER})", guide(), "guide")
    assert quoted == tuple(v for v, _ in stored) + (stored[0][1],)
    (quantiles_20,) = find(rf"quantiles K =\s+20: average log p_K\(x\) =\s+({NUMBER})", printed, "01")
    assert find(rf"With \$K = 20\$, quantiles of \$p\(z\)\$ reach ({NUMBER}) while random draws reach ({NUMBER})",
                guide(), "guide") == (quantiles_20, stored[2][0])


def roughly(stored: float, quoted: float) -> bool:
    """Timings change with the machine and its load at every refresh: the guide quotes them rounded
    ("about 1 s"), and a quote is right while the stored value lies within 50% of it."""
    return abs(stored - quoted) <= 0.5 * quoted


def test_the_exact_sum_timing_of_notebook_02():
    seconds, minutes = find(rf"m = 20: [\d,]+ terms in ({NUMBER}) s.*\n.*about ({NUMBER}) minutes", stored_output("02"), "02")
    quoted = find(rf"\$m = 20\$ took about ({NUMBER}) s, so \$m = 30\$ would take about ({NUMBER}) minutes", guide(), "guide")
    assert roughly(seconds, quoted[0]) and roughly(minutes, quoted[1]), ((seconds, minutes), quoted)


def test_the_time_per_new_image_of_notebook_06():
    micro, milli, ratio = find(rf"encoder forward pass: ({NUMBER}) microseconds;\s+200 steps of optimization: "
                               rf"({NUMBER}) ms, about ({NUMBER}) times", stored_output("06"), "06")
    quoted = find(rf"an encoder forward pass \(stored: about ({NUMBER}) µs\) against 200 steps of optimization "
                  rf"\(about ({NUMBER}) ms\): about ({NUMBER})×", guide(), "guide")
    assert all(roughly(s, q) for s, q in zip((micro, milli, ratio), quoted)), ((micro, milli, ratio), quoted)


def test_the_gaps_of_notebook_06():
    printed = stored_output("06")
    q_phi, refined = find(rf"K = 1000 from proposal q_phi\(z\|x\) ({NUMBER}), K = 1000 from the refined q ({NUMBER})",
                          printed, "06")
    approx, approx_se = find(rf"approximation\s+gap:\s+({NUMBER}) ± ({NUMBER})", printed, "06")
    amort, amort_se = find(rf"amortization\s+gap:\s+({NUMBER}) ± ({NUMBER})", printed, "06")
    quoted = find(rf"({NUMBER}) \(\$K = 1000\$, proposal \$q_\\phi\$\) and ({NUMBER}) \(\$K = 1000\$, proposal: the refined \$q\$\).*?"
                  rf"approximation gap ({NUMBER}) ± ({NUMBER}), amortization gap ({NUMBER}) ± ({NUMBER})", guide(), "guide")
    assert quoted == (q_phi, refined, approx, approx_se, amort, amort_se)  # as printed


def test_notebook_04_quotes_the_total_gap_notebook_06_measures():
    (total,) = find(rf"total\s+gap:\s+({NUMBER}) ±", stored_output("06"), "06")
    (quoted,) = find(rf"total gap of about\s+({NUMBER})\s+nats per image", markdown_of("04"), "04")
    assert quoted == round(total, 1)


def test_the_checks_fail_on_a_stale_quote(monkeypatch):
    """The guide quoting 3 s where the notebook stored under 1.5 s no longer passes."""
    import sys

    text = guide()
    stale = re.sub(r"(\$m = 20\$ took about )([\d.]+)( s)", lambda m: f"{m.group(1)}3{m.group(3)}", text)
    assert stale != text
    monkeypatch.setattr(sys.modules[__name__], "guide", lambda: stale)
    with pytest.raises(AssertionError):
        test_the_exact_sum_timing_of_notebook_02()


def test_no_notebook_sends_students_to_a_numbered_list_they_never_see():
    """"(confusion 5)" refers to the lesson plan's list; the notebooks write the question itself."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = markdown_of(path.name[:2])
        assert not re.search(r"confusion \d", text, re.IGNORECASE), f"{path.name} refers to a numbered confusion"


# --- every number in the guide's notebook sections comes from that notebook ---------------------------

GUIDE_NUMBER = re.compile(r"(?<![\w.:/])[−-]?\d[\d,]*\.\d+(?:e[−-]?\d+)?%?|(?<![\w.:/])\d{1,3}(?:,\d{3})+|(?<![\w.:/])\d{3,}(?!\d)|"
                          r"(?<![\w.:/])\d+(?:\.\d+)?%|(?<![\w.:/])\d+(?:\.\d+)?e[−-]\d+")
MARKERS = re.compile(r"<!--time:.*?<!--/time-->", re.S)


def guide_sections() -> dict[str, str]:
    """{"01": the guide's text about notebook 01, ...}: each "## 0N ·" section up to the next "---" rule."""
    out = {}
    for match in re.finditer(r"^## (0\d) · .*?$(.*?)(?=^---\s*$|^## |\Z)", guide(), re.S | re.M):
        out[match.group(1)] = match.group(2)
    return out


def notebook_text(stem: str) -> str:
    """The notebook's sources and every output it stores (streams, text, Markdown, HTML), normalized as the
    guide's numbers are: unicode minus to '-', no thousands separators."""
    nb = nbformat.read(next(NOTEBOOKS.glob(f"{stem}*.ipynb")), as_version=4)
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for key in ("text/plain", "text/markdown", "text/html"):
                parts.append(out.get("data", {}).get(key, ""))
    return "\n".join(parts).replace("−", "-").replace(",", "")


def numbers_not_in_the_notebook(stem: str, text: str) -> list[str]:
    have = notebook_text(stem)
    found = []
    for raw in GUIDE_NUMBER.findall(MARKERS.sub("", text)):
        number = raw.replace("−", "-").replace(",", "")
        if number not in have and number.lstrip("-") not in have:
            found.append(raw)
    return sorted(set(found))


@pytest.mark.parametrize("stem", [f"0{i}" for i in range(1, 8)])
def test_every_number_the_guide_quotes_is_in_its_notebook(stem):
    """A decimal, a percentage, a number of three or more digits written in the guide's section on a notebook
    appears in that notebook (its stored outputs or its own text): the guide never carries a number the
    notebook does not show. Run times and memory are markers (tools/sync_times.py), filled from the benchmark."""
    sections = guide_sections()
    assert stem in sections, f"the guide has no '## {stem} ·' section"
    missing = numbers_not_in_the_notebook(stem, sections[stem])
    assert not missing, f"the guide's section on notebook {stem} quotes numbers the notebook does not show: {missing}"


def test_the_number_lint_finds_a_number_that_is_not_there():
    assert numbers_not_in_the_notebook("02", "the estimate is −123.4567 at K = 7,777") == ["7,777", "−123.4567"]
    assert numbers_not_in_the_notebook("02", "<!--time:nb:02-->about 5.5 s<!--/time-->") == []


# --- the class plan follows the notebooks' core marks ----------------------------------------------------

LAB_ROW = re.compile(r"^\|\s*notebook (0\d),? sections? ([\d, –-]+?)\s*\|.*?\|\s*(\d+) min\s*\|", re.M)


def section_marks() -> dict[tuple[str, str], tuple[str, int]]:
    """{(notebook, section): (core/optional, minutes)} from the notebooks' headings."""
    marks = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for line in markdown_of(path.stem[:2]).splitlines():
            m = re.match(r"^## (\d+)\. .* · (core|optional) · (\d+) min\s*$", line)
            if m:
                marks[(path.stem[:2], m.group(1))] = (m.group(2), int(m.group(3)))
    return marks


def _sections(spec: str) -> list[str]:
    out = []
    for part in re.split(r",\s*", spec.strip()):
        if re.match(r"^\d+[–-]\d+$", part):
            a, b = re.split(r"[–-]", part)
            out += [str(n) for n in range(int(a), int(b) + 1)]
        elif part:
            out.append(part)
    return out


def class_plan() -> dict[str, list[tuple[str, list[str], int]]]:
    """{"Lab 1": [(notebook, [sections], minutes)], ...} from the guide's '### Lab N' tables."""
    text = guide()
    labs = {}
    for match in re.finditer(r"^### (Lab \d)\b.*?$(.*?)(?=^### |^## |\Z)", text, re.S | re.M):
        labs[match.group(1)] = [(nb, _sections(spec), int(minutes)) for nb, spec, minutes in LAB_ROW.findall(match.group(2))]
    return labs


def test_three_labs_of_two_hours_cover_every_core_section_once():
    labs, marks = class_plan(), section_marks()
    assert len(labs) == 3, f"the class plan must have three '### Lab N' sections, found {sorted(labs)}"
    planned = [(nb, s) for rows in labs.values() for nb, sections, _ in rows for s in sections]
    core = sorted(key for key, (kind, _) in marks.items() if kind == "core")
    assert sorted(planned) == core, (sorted(set(core) - set(planned)), sorted(set(planned) - set(core)))
    for lab, rows in labs.items():
        for nb, sections, minutes in rows:
            assert minutes == sum(marks[(nb, s)][1] for s in sections), (lab, nb, sections, minutes)
        assert sum(minutes for _, _, minutes in rows) <= 120, (lab, rows)


def test_the_guides_student_times_are_the_notebooks_marks():
    """The 'At a glance' table's "core + optional" minutes and the total core the guide states are the sums of the
    notebooks' section marks, as are the minutes each notebook's first cell states."""
    marks = section_marks()
    text = guide()
    rows = dict(re.findall(r"^\| (0\d) \| \[.*?\|\s*(\d+ \+ \d+) min\s*\|", text, re.M))
    assert sorted(rows) == [f"0{i}" for i in range(1, 8)], sorted(rows)
    for nb, cell in rows.items():
        core = sum(m for (n, _), (kind, m) in marks.items() if n == nb and kind == "core")
        optional = sum(m for (n, _), (kind, m) in marks.items() if n == nb and kind == "optional")
        assert cell == f"{core} + {optional}", (nb, cell, core, optional)
        first = nbformat.read(next(NOTEBOOKS.glob(f"{nb}_*.ipynb")), as_version=4).cells[0].source
        assert f"core about {core} min · optional about {optional} min" in first, (nb, core, optional)
    total = sum(m for kind, m in marks.values() if kind == "core")
    stated = {int(n) for n in re.findall(r"whole core \((\d+) minutes\)|take (\d+) minutes of student time", text) for n in n if n}
    assert stated == {total}, (stated, total)
