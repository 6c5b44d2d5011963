"""The class sizing (tools/hub_sizing.py) follows the hub benchmark: the instructor guide's table and the
Zero to JupyterHub config's guarantees and limits are the ones the recorded run gives."""
import copy
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("hub_sizing", ROOT / "tools" / "hub_sizing.py")
hub_sizing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hub_sizing)


def recorded() -> dict:
    return json.loads((ROOT / "benchmarks" / "results.json").read_text())["hub"]


def test_the_guide_and_the_z2jh_config_follow_the_recorded_run():
    assert hub_sizing.main(["--check"]) == 0


def test_the_limit_holds_the_largest_peak_and_the_guarantee_the_everyday_one():
    hub = recorded()
    s = hub_sizing.sizing(hub)
    gib = lambda text: float(text.rstrip("G")) * 1024  # noqa: E731
    assert gib(s["limit"]) >= s["largest_mib"] + hub_sizing.HEADROOM_MIB > s["largest_mib"] >= s["everyday_mib"]
    assert s["everyday_mib"] <= gib(s["guarantee"]) < s["everyday_mib"] + 256
    assert s["per_node"] * gib(s["guarantee"]) <= (hub_sizing.NODE_GIB - hub_sizing.RESERVED_GIB) * 1024
    assert all(nodes * s["per_node"] >= n > (nodes - 1) * s["per_node"] for n, nodes in s["nodes"].items())


def test_a_heavier_notebook_raises_the_limit_and_a_stale_guide_is_caught(monkeypatch):
    hub = copy.deepcopy(recorded())
    hub["trained"]["07_vae.ipynb"]["empty_cache"]["peak_mib"] = 2600
    heavier = hub_sizing.sizing(hub)
    assert heavier["limit"] == "3G" and heavier["limit"] != hub_sizing.sizing(recorded())["limit"]
    monkeypatch.setattr(hub_sizing, "sizing", lambda _: heavier)
    assert hub_sizing.main(["--check"]) == 1  # the guide and the config still say 2G
