"""The benchmark script (benchmarks/run.py): its reference recipe is the pytorch/examples VAE,
converted exactly into a ``vae.VAE`` for evaluation, and its report renders every section.
Timings are never asserted here: the script measures them."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_recipe_is_converted_exactly(bench):
    """The converted model's ELBO equals the examples loss written out on the examples' own outputs:
    log sigma = logvar / 2 and the decoder's sigmoid(logits) are the same function."""
    from vae_lesson.data import load_digits

    x = load_digits(binarized=True).x_train
    model, steps = bench.train_reference(x, budget_s=0.3, seed=0)
    assert steps >= 1
    # the examples' architecture: 64-400-20 encoder heads and 20-400-64 decoder, ReLU
    assert model.config == {"latent_dim": 20, "hidden": 400, "layers": 1, "activation": "relu", "data_dim": 64}
    batch = x[:32]
    mean, log_std = model.encoder.params(batch)
    logvar = 2 * log_std
    kld = -0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(-1)  # the examples' KLD, per image
    ours = model.elbo(batch, n_samples=1, seed=5).elbo
    torch.manual_seed(5)  # the same draw as model.elbo(seed=5)
    z = mean + log_std.exp() * torch.randn(1, 32, 20)
    bce = torch.nn.functional.binary_cross_entropy(model.decode(z)[0], batch, reduction="none").sum(-1)
    torch.testing.assert_close(ours.detach(), -(bce + kld).detach(), atol=1e-3, rtol=1e-5)


def test_evaluate_reports_means_and_standard_errors(bench):
    from vae_lesson.data import load_digits
    from vae_lesson.vae import VAE

    torch.manual_seed(0)
    x = load_digits(binarized=True).x_test[:12]
    out = bench.evaluate(VAE(latent_dim=2, hidden=8, layers=1), x)
    assert set(out) == {"elbo", "elbo_se", "logpx", "logpx_se"}
    assert out["logpx"] > out["elbo"]  # K = 5000 against a 100-sample ELBO, on a poor encoder
    assert all(math.isfinite(v) and (v > 0 if k.endswith("_se") else True) for k, v in out.items())


def test_markdown_reports_every_section_and_marks_missed_targets(bench):
    results = {
        "machine": {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "torch": "2.13.0",
                    "torch_threads": 1},
        "notebooks": {"01_a.ipynb": {"seconds": 10.0, "peak_mib": 600}, "07_b.ipynb": {"seconds": 70.0, "peak_mib": 700}},
        "widgets": {"fast": {"median_ms": 4.0, "p95_ms": 6.0, "control": "z1", "updates": 60, "continuous_update": True},
                    "slow": {"median_ms": 80.0, "p95_ms": 90.0, "control": "k", "updates": 60, "continuous_update": False}},
        "vae": {"budget_s": 20.0, "ours": {"elbo": -17.0, "elbo_se": 0.1, "logpx": -16.1, "logpx_se": 0.1, "steps": 9000},
                "reference": {"elbo": -18.7, "elbo_se": 0.1, "logpx": -16.8, "logpx_se": 0.1, "steps": 12000},
                "latent_2d": {"elbo": -19.0, "logpx": -18.1, "steps": 5000},
                "runs": [{"logpx_difference": 0.7, "logpx_difference_se": 0.03}]},
        "amortization": {"encoder_elbo": -17.0, "encoder_elbo_se": 0.1, "refined_elbo": -16.6, "refined_elbo_se": 0.1,
                         "logpx": -16.2, "logpx_se": 0.1, "approximation_gap": 0.47, "approximation_gap_se": 0.01,
                         "amortization_gap": 0.4, "amortization_gap_se": 0.02, "refine_steps": 200,
                         "encoder_forward_ms": 0.08, "refine_200_steps_ms": 170.0},
    }
    text = bench.markdown(results)
    assert "2026-01-01" in text and "CPU (2 cores)" in text
    row_07 = next(line for line in text.splitlines() if line.startswith("| 07_b.ipynb"))
    assert "❌" in row_07  # 70 s misses the 60 s target
    assert "✅" in next(line for line in text.splitlines() if line.startswith("| 01_a.ipynb"))
    assert "❌ missed: redraws on release" in next(line for line in text.splitlines() if line.startswith("| slow"))
    assert "✅" in next(line for line in text.splitlines() if line.startswith("| fast"))
    assert "**-16.10**" in text and "-16.80" in text and "-18.10" in text
    assert "0.470 ± 0.010" in text
    assert "+0.70 ± 0.03" in text


def _ablation_output(nb_path):
    """The stored stdout of notebook 07's cell that quotes the ablation table."""
    import nbformat

    cells = [c for c in nbformat.read(nb_path, as_version=4).cells
             if c.cell_type == "code" and "vae.recipe_ablation()" in c.source]
    assert len(cells) == 1
    return "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")


def test_ablation_table_has_its_structure_and_notebook_07_quotes_it(bench):
    """vae_lesson/ablation.json (written by `run.py --only ablation`): one row per entry of ABLATIONS, each
    the course recipe with exactly the named change, same steps and seed; notebook 07 prints its gains."""
    import dataclasses

    from vae_lesson import vae

    table = vae.recipe_ablation()
    course = dataclasses.asdict(vae.Recipe())
    assert table["n_steps"] == course["n_steps"] and table["seed"] == course["seed"]
    assert list(table["rows"]) == list(bench.ABLATIONS)
    for name, row in table["rows"].items():
        _, fields, schedule = bench.ABLATIONS[name]
        assert row["recipe"] == {**course, **fields, "lr_schedule": schedule}
        assert row["test_logpx"] > row["test_elbo"]  # log p(x) >= ELBO, with K = 1000 vs a 100-sample ELBO
        if name != "course recipe":
            assert row["recipe"] != {**course, "lr_schedule": "cosine"}  # something really is removed
            for key in ("elbo", "logpx"):
                assert row[f"{key}_gain_se"] > 0
                expected = table["rows"]["course recipe"][f"test_{key}"] - row[f"test_{key}"]
                assert math.isclose(row[f"{key}_gain"], expected, abs_tol=0.002)  # paired mean = difference of means
    out = _ablation_output(ROOT / "notebooks" / "07_vae.ipynb")
    for name, row in table["rows"].items():
        if name != "course recipe":
            assert f"test ELBO {row['elbo_gain']:+.2f} ± {row['elbo_gain_se']:.2f}" in out, name
            assert f"test log p(x) {row['logpx_gain']:+.2f} ± {row['logpx_gain_se']:.2f}" in out, name
            assert f"training ELBO without it: {row['train_elbo']:.2f}" in out, name


def test_markdown_reports_the_ablation(bench):
    row = {"test_elbo": -17.5, "test_logpx": -16.7, "test_logpx_se": 0.2, "train_elbo": -16.0,
           "elbo_gain": 0.48, "elbo_gain_se": 0.05, "logpx_gain": 0.53, "logpx_gain_se": 0.04}
    results = {"machine": {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "torch": "2.13.0",
                           "torch_threads": 1},
               "ablation": {"n_steps": 6000, "seed": 0, "logpx_samples": 1000,
                            "rows": {"course recipe": {"test_elbo": -17.02, "test_logpx": -16.17, "test_logpx_se": 0.19,
                                                       "train_elbo": -15.78}, "ReLU": row}}}
    text = bench.markdown(results)
    line = next(ln for ln in text.splitlines() if ln.startswith("| ReLU"))
    assert "+0.48 ± 0.05" in line and "+0.53 ± 0.04" in line and "-16.70 ± 0.20" in line
    assert "| course recipe | -17.02 |" in text


def test_explorer_section_is_a_default_section_and_its_report_has_both_widgets(bench):
    """``run.py`` runs the explorer section by default, after the widgets section (it quotes the old widget's
    kernel update from there), and the report shows the browser numbers next to the old widget's, marking a
    decode + draw p95 over one frame as missed."""
    import inspect

    assert "explorer" in bench.SECTIONS
    assert bench.SECTIONS.index("widgets") < bench.SECTIONS.index("explorer")
    assert "explorer" in inspect.getsource(bench.main).split('"--only", default=')[1].split(",\n")[0]
    machine = {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "torch": "2.13.0",
               "torch_threads": 1}
    explorer = {"moves": 200, "html_kib": 90, "aborted_requests": 0, "decode_draw_median_ms": 0.31,
                "decode_draw_p95_ms": 0.52, "end_to_end_median_ms": 16.4, "end_to_end_p95_ms": 17.9,
                "old": {"kernel_update_ms": 3.0, "key_to_pixels_ms": 66.0, "new_in_voila_pointer_to_pixels_ms": 21.5}}
    lines = bench.markdown({"machine": machine, "explorer": explorer}).splitlines()
    row = next(ln for ln in lines if ln.startswith("| decode + draw"))
    assert "| 0.31 | 0.52 |" in row and "✅" in row
    assert "| 16.4 | 17.9 |" in next(ln for ln in lines if ln.startswith("| pointer event"))
    assert "| 3.0 ms |" in next(ln for ln in lines if "slider update in the kernel" in ln)
    assert "| 66.0 ms |" in next(ln for ln in lines if "key press to new pixels" in ln)
    assert "| 21.5 ms |" in next(ln for ln in lines if "this explorer: pointer move" in ln)
    slow = dict(explorer, decode_draw_p95_ms=20.0, old={"kernel_update_ms": None, "key_to_pixels_ms": None})
    lines = bench.markdown({"machine": machine, "explorer": slow}).splitlines()
    assert "❌" in next(ln for ln in lines if ln.startswith("| decode + draw"))
    assert "not measured" in next(ln for ln in lines if "slider update in the kernel" in ln)
    assert "not measured" in next(ln for ln in lines if "this explorer: pointer move" in ln)


def test_percentile_is_the_nearest_rank(bench):
    values = list(range(1, 101))[::-1]  # unsorted on purpose
    assert bench.percentile(values, 0.95) == 95
    assert bench.percentile(values, 0.5) == 50
    assert bench.percentile([7.0], 0.95) == 7.0


def test_markdown_reports_the_suite_idle_and_busy_and_the_first_start(bench):
    """The test command's own timing (dev.py's test-artifacts/test-run.json) goes into the report beside the
    notebooks: wall time against the 6-minute target, CPU time, the ten slowest items; the busy run must pass."""
    slowest = [{"seconds": 40.0 - i, "item": f"notebooks.07_vae.ipynb::Cell {i}"} for i in range(10)]
    base = {"items": 2300, "exit_code": 0, "cores": 2, "slowest": slowest}
    results = {"machine": {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "torch": "2.13.0",
                           "torch_threads": 1},
               "suite": {**base, "wall_s": 290.4, "cpu_s": 520.0, "load": 0, "outcome": "2300 passed in 288s"},
               "suite-loaded": {**base, "wall_s": 601.0, "cpu_s": 560.0, "load": 2, "outcome": "2300 passed in 599s"},
               "first-start": {"load": 2, "models": {"2d": {"idle_s": 15.0, "loaded_s": 22.5},
                                                      "course": {"idle_s": 20.0, "loaded_s": 31.0}}}}
    text = bench.markdown(results)
    idle = next(ln for ln in text.splitlines() if ln.startswith("| idle machine"))
    busy = next(ln for ln in text.splitlines() if ln.startswith("| 2 CPU-bound processes alongside"))
    assert "| 290 | 520 | 2300 |" in idle and "< 360 s ✅" in idle
    assert "| 601 |" in busy and "passes" in busy
    assert "07_vae.ipynb::Cell 0 40 s" in text and "'2d' 15 s and 22 s; 'course' 20 s and 31 s." in text
    results["suite"]["wall_s"] = 400.0
    assert "< 360 s ❌ missed" in bench.markdown(results)
    results["measured"] = {"suite": "2026-01-01 00:00 UTC", "first-start": "2025-12-31 09:00 UTC"}
    assert "Kept from earlier runs: first-start (2025-12-31 09:00 UTC)." in bench.markdown(results)


def test_cpu_load_runs_busy_processes_and_stops_them(bench):
    import psutil

    with bench.CpuLoad(2) as load:
        pids = [p.pid for p in load.procs]
        assert all(psutil.pid_exists(pid) for pid in pids)
    assert all(p.poll() is not None for p in load.procs)


def test_markdown_reports_a_class_on_the_hub(bench):
    """The hub section (``run.py --only hub``): one row per solo notebook, per class size, and per model cache
    for 06 and 07, with the machine it ran on."""
    machine = {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "torch": "2.13.0",
               "torch_threads": 1}
    run = lambda wall, mib, cpu: {"wall_s": wall, "run_s": wall - 1, "peak_mib": mib, "cpu_s": cpu}  # noqa: E731
    hub = {"machine": {**machine, "date": "2026-01-02 00:00 UTC"}, "class_notebook": "01_a.ipynb",
           "solo": {"01_a.ipynb": run(9.4, 745, 9.3), "03_c.ipynb": run(5.0, 521, 4.5)},
           "class": {"2": {"students": {}, "wall_mean_s": 9.6, "wall_max_s": 9.8, "vs_solo": 1.02, "all_done_s": 10.1,
                           "notebooks_per_minute": 11.9, "peak_mib_max": 750, "cpu_s_mean": 9.2},
                     "4": {"students": {}, "wall_mean_s": 19.0, "wall_max_s": 19.9, "vs_solo": 2.02, "all_done_s": 20.3,
                           "notebooks_per_minute": 11.8, "peak_mib_max": 752, "cpu_s_mean": 9.4}},
           "trained": {"07_g.ipynb": {"shared_cache": run(16.6, 1394, 17.3), "empty_cache": run(53.5, 1260, 54.6)}},
           "hub_start_s": 2.8, "spawn_one_s": 2.7, "spawn_at_once": {"servers": 5, "seconds": 6.0}, "idle_server_mib": 147,
           "hub_processes_mib": {"jupyterhub": 125, "proxy": 59}}
    lines = bench.markdown({"machine": machine, "hub": hub}).splitlines()
    assert "| 01_a.ipynb | 1 | 9.4 | 1.00 | 745 | 9.3 |" in lines
    assert "| 01_a.ipynb | 4 | 19.0 / 19.9 | 2.02 | 752 | 9.4 |" in lines
    assert "| 07_g.ipynb, empty cache (trains) | 1 | 53.5 | | 1260 | 54.6 |" in lines
    text = "\n".join(lines)
    assert "2026-01-02 00:00 UTC" in text and "4 students 2.02x the time alone" in text
    assert "5 at once in 6 s" in text and "proxy 59 MiB" in text
    assert "hub" in bench.SECTIONS
