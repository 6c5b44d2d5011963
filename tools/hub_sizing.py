"""A class's JupyterHub, sized from the hub benchmark (benchmarks/results.json, section "hub").

    .venv/bin/python tools/hub_sizing.py           # write the sizing table into the instructor guide
    .venv/bin/python tools/hub_sizing.py --check   # exit 1 if the guide or deploy/z2jh/config.yaml disagree

The benchmark (``benchmarks/run.py --only hub``) ran each notebook through a real hub, alone and with several
students at once, and recorded per student the peak memory of the single-user server plus its kernel, the wall
time and the CPU seconds. From those numbers:

- memory limit per student = the largest peak of any notebook (07 training its models from an empty cache
  included) + 300 MiB for a student's own cells, rounded up to 0.5 GiB;
- memory guarantee = the largest peak of notebooks 01-05 (what a student holds most of a lab), rounded up to
  0.25 GiB; Kubernetes places students by their guarantee, and lets a server use more, up to its limit, while
  the node has it free;
- CPU limit = 1 core: a kernel computes on one thread (measured: from 4 students at once on this 2-core
  machine, each student's wall time grows with the number of students per core);
- CPU guarantee = 0.25 core: while students read, kernels sit idle; if a whole node presses Run All at once,
  each still gets a quarter of a core, so a notebook takes at most about 4 times its solo time;
- nodes of 8 cores and 32 GiB, 2 GiB of each kept for Kubernetes itself, students per node = the fewest that
  memory and CPU guarantees allow; the hub, proxy and culler (measured) run beside them.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
GUIDE = ROOT / "notebooks" / "README.md"
CONFIG = ROOT / "deploy" / "z2jh" / "config.yaml"
BLOCK = re.compile(r"(<!--sizing-->\n)(.*?)(<!--/sizing-->)", re.S)

NODE_CORES, NODE_GIB, RESERVED_GIB = 8, 32, 2
HEADROOM_MIB = 300
CPU_LIMIT, CPU_GUARANTEE = 1, 0.25
CLASSES = (30, 100, 300)


def _up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def _gib(value: float) -> str:
    """A memory size as JupyterHub and the chart write it: "2G", "1.5G" (units of 1024)."""
    return f"{value:g}G"


def sizing(hub: dict) -> dict:
    """Guarantees, limits and nodes for a class, from the hub benchmark's recorded run."""
    solo = hub["solo"]
    class_peaks = [row["peak_mib_max"] for row in hub["class"].values()]
    everyday = max([row["peak_mib"] for row in solo.values()] + class_peaks)  # notebooks 01-05
    largest = max([everyday] + [run["peak_mib"] for nb in hub["trained"].values() for run in nb.values()])
    guarantee_gib = _up(everyday / 1024, 0.25)
    limit_gib = _up((largest + HEADROOM_MIB) / 1024, 0.5)
    per_node = min(int((NODE_GIB - RESERVED_GIB) // guarantee_gib), int((NODE_CORES - 0.5) // CPU_GUARANTEE))
    first = min(solo)  # notebook 01: the class notebook of the concurrency runs
    burst = solo[first]["wall_s"] * max(1.0, per_node / NODE_CORES)  # a whole node at once, one thread each
    return {"everyday_mib": everyday, "largest_mib": largest, "guarantee": _gib(guarantee_gib),
            "limit": _gib(limit_gib), "cpu_guarantee": CPU_GUARANTEE, "cpu_limit": CPU_LIMIT, "per_node": per_node,
            "nodes": {n: math.ceil(n / per_node) for n in CLASSES}, "burst_s": burst, "first": first,
            "solo_s": solo[first]["wall_s"], "hub_mib": sum(hub["hub_processes_mib"].values()),
            "idle_server_mib": hub["idle_server_mib"], "class": hub["class"], "solo": solo, "trained": hub["trained"], "date": hub["machine"]["date"], "cpu": hub["machine"]["cpu"]}


def table(s: dict) -> str:
    """The guide's sizing table (Markdown)."""
    rows = [
        "| students | memory guarantee / limit per student | CPU guarantee / limit per student | nodes of "
        f"{NODE_CORES} cores, {NODE_GIB} GiB | if all press Run All on notebook {s['first'][:2]} at once |",
        "|---|---|---|---|---|",
    ]
    for n, nodes in s["nodes"].items():
        rows.append(f"| {n} | {s['guarantee']} / {s['limit']} | {s['cpu_guarantee']:g} / {s['cpu_limit']} core | "
                    f"{nodes} (up to {s['per_node']} students each) | about {round(s['burst_s'])} s each "
                    f"(alone: {s['solo_s']:.1f} s) |")
    rows += [
        "",
        f"From the hub benchmark of {s['date']} ({s['cpu']}): the largest peak of a student's server and kernel "
        f"is {s['everyday_mib']} MiB on notebooks 01-05 (the guarantee, rounded up) and {s['largest_mib']} MiB in "
        f"all (notebook 07 training its models without the shared cache; the limit adds {HEADROOM_MIB} MiB for "
        f"a student's own cells). An idle server holds {s['idle_server_mib']} MiB; the hub, its proxy and the "
        f"idle culler together {s['hub_mib']} MiB (Zero to JupyterHub runs them on a node of their own, a small one is "
        f"enough). {RESERVED_GIB} GiB of each node are left to Kubernetes.",
    ]
    rows += ["", "| notebook, one student | wall time | CPU | peak MiB |", "|---|---|---|---|"]
    for nb, row in s["solo"].items():
        rows.append(f"| {nb[:2]} | {row['wall_s']:.1f} s | {row['cpu_s']:.1f} s | {row['peak_mib']} |")
    rows += ["", "| notebook 01, students at once | wall time per student | against alone | notebooks per minute, "
                 "all students | peak MiB per student |", "|---|---|---|---|---|"]
    for n, row in s["class"].items():
        rows.append(f"| {n} | {row['wall_mean_s']:.1f} s | {row['vs_solo']:.2f}x | {row['notebooks_per_minute']:.1f} | "
                    f"{row['peak_mib_max']} |")
    rows += ["", "| notebook, one student | shared model cache: wall, CPU | empty cache (trains): wall, CPU | peak MiB |",
             "|---|---|---|---|"]
    for nb, runs in s["trained"].items():
        shared, empty = runs["shared_cache"], runs["empty_cache"]
        rows.append(f"| {nb[:2]} | {shared['wall_s']:.1f} s, {shared['cpu_s']:.1f} s | {empty['wall_s']:.1f} s, "
                    f"{empty['cpu_s']:.1f} s | {max(shared['peak_mib'], empty['peak_mib'])} |")
    return "\n".join(rows) + "\n"


def config_values(text: str) -> dict:
    """singleuser.memory and singleuser.cpu of deploy/z2jh/config.yaml."""
    import yaml

    single = yaml.safe_load(text)["singleuser"]
    return {"guarantee": str(single["memory"]["guarantee"]), "limit": str(single["memory"]["limit"]),
            "cpu_guarantee": single["cpu"]["guarantee"], "cpu_limit": single["cpu"]["limit"]}


def main(argv: list[str]) -> int:
    s = sizing(json.loads(RESULTS.read_text())["hub"])
    guide = GUIDE.read_text(encoding="utf-8")
    if not BLOCK.search(guide):
        print(f"{GUIDE} has no <!--sizing--> ... <!--/sizing--> block to fill")
        return 1
    new = BLOCK.sub(lambda m: m.group(1) + table(s) + m.group(3), guide)
    want = {k: s[k] for k in ("guarantee", "limit", "cpu_guarantee", "cpu_limit")}
    have = config_values(CONFIG.read_text())
    problems = [] if have == want else [f"{CONFIG.relative_to(ROOT)}: singleuser memory/cpu {have}, the sizing gives {want}"]
    if "--check" in argv:
        if new != guide:
            problems.append(f"{GUIDE.relative_to(ROOT)}: the sizing table differs from the benchmark's; run tools/hub_sizing.py")
        print("\n".join(problems) or "the guide's sizing table and the Zero to JupyterHub config match the benchmark")
        return 1 if problems else 0
    GUIDE.write_text(new, encoding="utf-8")
    print("\n".join(problems) or "sizing table written; the Zero to JupyterHub config matches it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
