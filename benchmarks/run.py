"""Benchmarks: how fast the course runs, how responsive its widgets are, and how good its VAE is.

    .venv/bin/python benchmarks/run.py                     # notebooks, widgets, explorer, vae, amortization, ablation
    .venv/bin/python benchmarks/run.py --only suite,suite-loaded,first-start  # the test command, idle and busy
    .venv/bin/python benchmarks/run.py --only vae,widgets  # some sections
    .venv/bin/python benchmarks/run.py --only hub          # a class on JupyterHub (a few minutes)
    .venv/bin/python benchmarks/run.py --install           # also time a fresh install (slow)
    .venv/bin/python benchmarks/run.py --readme            # and put the tables into README.md

Measures on the machine it runs on and writes ``benchmarks/results.json`` and
``benchmarks/results.md`` (the Markdown tables, also printed). Sections:

- ``notebooks``: each notebook run top to bottom in a fresh kernel (nbclient, via
  tools/measure_notebooks.py): wall seconds and the kernel's peak memory (MiB). Models are
  trained from scratch (an empty $VAE_LESSON_CACHE), as on a student's first run.
- ``suite``: the README's test command, ``python3 dev.py test``, as dev.py times it (wall time, CPU time, the
  ten slowest items); ``suite-loaded``: the same with ``--load`` CPU-bound processes running alongside (a busy
  laptop), which it must pass. ``first-start``: training each of the course's models from an empty cache
  in a fresh process, idle and with ``--load`` busy processes. ``notebooks-warm``: the notebooks with the
  models already cached. These give the run times the course states (tools/sync_times.py).
- ``widgets``: every widget builder in vae_lesson.widgets, built as its notebook builds it; one
  update = set a control's value from Python and return when the callback has drawn (callbacks
  run synchronously); median and 95th percentile over ``--updates`` updates.
- ``vae``: the course's VAE (``vae.Recipe``, learning rate schedule following elapsed time) and
  the reference recipe, the pytorch/examples VAE (784-400-20 there, 64-400-20 here; ReLU;
  Adam lr 1e-3; batch 128; summed Bernoulli loss; no regularizer), each trained for the same
  wall-clock budget in the same run on the same split of the binarized digits; held-out ELBO
  and importance-weighted log p(x) with K = 5000, in nats per image. Also the 2-D latent model
  ("2d" recipe) on the same held-out set. Single-threaded, as the notebooks run.
- ``amortization``: notebook 06's held-out averages: encoder ELBO, refined ELBO, log p(x), and the
  two gaps, with standard errors.
- ``ablation``: the course recipe against the recipe with one of its extras removed at a time
  (one hidden layer instead of two, ReLU instead of SiLU, a constant learning rate instead of the
  cosine decay, no threshold jitter), the same steps and seed each; held-out ELBO (100 samples)
  and log p(x) (K = 1000), training ELBO, in nats per image, and each extra's gain (course minus
  ablation, paired over the same test images, with its standard error). Also written to
  ``vae_lesson/ablation.json``, from which notebook 07 quotes each extra's effect. Single-threaded.
- ``explorer``: the latent explorer (vae_lesson.explorer) exported as one HTML file and opened from disk in
  headless Chromium (Debian's /usr/bin/chromium via Playwright; every non-file request aborted): pointer
  moves dispatched over the map one at a time; per move the in-page decode + draw time (the explorer's
  ``timings``) and end to end, from the dispatched event to the animation frame in which the digit canvas
  was redrawn; median and 95th percentile. Next to it the old kernel-side widget: one slider update in the
  kernel (the ``widgets`` section) and key press to new pixels in Chromium (tests/test_browser.py's app test).
- ``hub`` (only with --only hub; needs node and `python3 dev.py hub`'s install): a class on the course's
  JupyterHub, started with `python3 dev.py hub` on a free port in a fresh state folder whose shared model
  cache holds the course's models, driven through its REST API, the contents API and the kernel websocket
  (hub/client.py): notebooks 01-05 each by one student; 2, 4 and 6 students at once on notebook 01 (each
  against the solo run); notebooks 06 and 07 with the shared cache and with an empty one. Per student: wall
  seconds, peak memory of the student's server plus kernel, CPU seconds of both; spawn times and the memory
  of an idle server and of the hub's own processes.
- ``install`` (only with --install): wall time and size of a fresh environment made as
  ``python3 dev.py lab`` makes it (a venv, ``pip install -r requirements.txt``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"
SECTIONS = ("notebooks", "notebooks-warm", "suite", "suite-loaded", "first-start", "widgets", "explorer", "vae", "amortization",
            "ablation", "hub", "install")
ABLATION_JSON = ROOT / "vae_lesson" / "ablation.json"
TARGETS = {"notebook_s": 60.0, "early_notebook_s": 30.0, "collection_s": 240.0, "suite_s": 360.0, "widget_median_ms": 30.0,
           "widget_p95_ms": 100.0, "peak_mib": 1536.0, "latent_2d_logpx": -18.5, "frame_ms": 16.0}


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": 1,  # seed_everything(threads=1) in every section, as in the notebooks
            "torch_default_threads": torch.get_num_threads(), "platform": platform.platform(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# ----------------------------------------------------------------------------------------------
# notebooks


def bench_notebooks(warm: bool = False) -> dict:
    """Run tools/measure_notebooks.py in a fresh process: a kernel's peak RSS (ru_maxrss) carries over
    from the process that starts it, so the starter must be small, not this one after training.
    ``warm``: the course's models are trained into the cache first, as on a student's second run."""
    with tempfile.TemporaryDirectory(prefix="bench-nb-") as tmp:
        env = {**os.environ, "VAE_LESSON_CACHE": str(Path(tmp) / "cache")}  # trained from scratch, as on a first run
        if warm:
            subprocess.run([sys.executable, "-c", "from vae_lesson import vae\nfor n in vae.RECIPES: vae.trained_vae(n, progress=False)"],
                           check=True, env=env, cwd=ROOT)
        subprocess.run([sys.executable, str(ROOT / "tools" / "measure_notebooks.py"), "--no-server",
                        "--json", str(Path(tmp) / "measures.json")], check=True, env=env, cwd=ROOT)
        rows = json.loads((Path(tmp) / "measures.json").read_text())
    rows = rows.get("notebooks", rows) if isinstance(rows, dict) else rows
    out = {row["notebook"]: {"seconds": row["seconds"], "peak_mib": row["peak_rss_mib"]} for row in rows}
    for name, v in out.items():
        print(f"  {name}: {v['seconds']:.1f} s, {v['peak_mib']:.0f} MiB", flush=True)
    return out


# ----------------------------------------------------------------------------------------------
# the test suite, and the first start of a model, on an idle and on a busy machine


class CpuLoad:
    """``n`` processes that each keep one core busy (a pure-Python loop), for as long as the block runs:
    a laptop with a browser and a video call open, a shared CI machine."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def bench_suite(load: int = 0) -> dict:
    """The README's test command, ``python3 dev.py test``, timed by dev.py itself (its wall and CPU time and
    ten slowest items, test-artifacts/test-run.json), with ``load`` CPU-bound processes running alongside."""
    with CpuLoad(load):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "dev.py"), "test", "-q"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
    run = json.loads((ROOT / "test-artifacts" / "test-run.json").read_text())
    summary = next((line.strip("= ").strip() for line in reversed(proc.stdout.splitlines())
                    if re.match(r"^=*\s*\d+ (passed|failed)", line)), "")  # pytest's last line
    outcome = "passed" if run["exit_code"] == 0 else f"failed (exit code {run['exit_code']})"
    out = {**run, "load": load, "outcome": outcome, "pytest": summary, "command_wall_s": round(wall, 1)}
    print(f"  {out['wall_s']:.0f} s wall, {out['cpu_s']:.0f} s CPU, load {load}: {out['outcome']}", flush=True)
    return out


def bench_first_start(load: int = 2) -> dict:
    """``vae.trained_vae(name)`` from an empty model cache in a fresh process, for each of the course's
    models (the README's export command and `python3 dev.py app` start so with "2d"; notebook 06 with
    "course"; notebook 07 with "2d-ae"), on an idle machine and with ``load`` CPU-bound processes
    alongside; the package chooses its own thread count for training (vae_lesson.seeding.training_threads).
    These are the "train:NAME" times of tools/sync_times.py."""
    from vae_lesson.vae import RECIPES

    out = {"load": load, "models": {}}
    for name in RECIPES:
        code = f"from vae_lesson import vae; vae.trained_vae({name!r}, progress=False)"
        row = {}
        for key, n in (("idle_s", 0), ("loaded_s", load)):
            with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp, CpuLoad(n):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "VAE_LESSON_CACHE": tmp})
                row[key] = round(time.perf_counter() - start, 1)
            print(f"  first start of {name!r}, load {n}: {row[key]} s", flush=True)
        out["models"][name] = row
    return out


# ----------------------------------------------------------------------------------------------
# widgets


def _builders():
    """(name, build, control name, values to cycle through) for every widget builder, built with
    the inputs its notebook uses (models untrained where training would not change the cost)."""
    import torch

    from vae_lesson import data, models, vae, widgets
    from vae_lesson.bernoulli_mixture import fit_bernoulli_mixture, observed_bottom_half

    digits = data.load_digits(binarized=True)

    def latent_samples():
        spiral, _ = data.make_toy_2d("spiral", n=600)
        return widgets.latent_samples_explorer(models.LatentGaussianModel(latent_dim=1, data_dim=2, hidden=64),
                                               spiral, max_k=200)

    def importance():
        model = models.LinearGaussianModel.random(data_dim=50, latent_dim=1, sigma=0.2, seed=3)
        x = model.decoder(torch.tensor([1.5], dtype=torch.float64)).sample((1,))
        return widgets.importance_sampling_explorer(model, x)

    def missing_half():
        model, _ = fit_bernoulli_mixture(digits.x_train, n_components=20, n_iter=50, seed=0)
        show = torch.tensor([int((digits.y_test == k).nonzero()[0]) for k in (9, 4, 7, 3, 0, 2)])
        return widgets.missing_half_explorer(model, digits.x_test[show], digits.y_test[show], observed_bottom_half())

    def refinement():  # as notebook 06: the widget shows section 4's refinement of all 360 test digits
        model = vae.trained_vae("course", progress=False)
        refined = vae.refine(model, digits.x_test, n_steps=200, record_at=[0, 25, 50, 100, 200])
        log_px = model.log_marginal(digits.x_test, n_samples=1000, seed=1, proposal=refined.q)
        return widgets.refinement_explorer(model, digits.x_test, digits.y_test, log_px, refined=refined)

    def latent():
        return widgets.latent_explorer(vae.trained_vae("2d", progress=False), digits.x_test, digits.y_test)

    def interpolation():
        return widgets.interpolation_explorer(vae.trained_vae("2d", progress=False), digits.x_test, digits.y_test)

    def posterior():  # as notebook 07: the true posterior of a test digit on a grid, beside two q's
        return widgets.posterior_explorer(vae.trained_vae("2d", progress=False), digits.x_test, digits.y_test, first=33)

    grid = lambda lo, hi, n: [lo + (hi - lo) * i / (n - 1) for i in range(n)]  # noqa: E731
    return [
        ("latent_samples_explorer", latent_samples, "k", None),
        ("importance_sampling_explorer", importance, "k", None),
        ("elbo_explorer", lambda: widgets.elbo_explorer(models.Latent1DModel(), 1.2, q_mean=-4.0, q_std=0.75**0.5),
         "mean", None),
        ("missing_half_explorer", missing_half, "preset", None),
        ("gradient_estimator_explorer", widgets.gradient_estimator_explorer, "dim", None),
        ("refinement_explorer (steps)", refinement, "steps", None),
        ("refinement_explorer (new digit)", refinement, "digit", list(range(0, 360, 3))),
        ("latent_explorer", latent, "z1", [round(v, 2) for v in grid(-2.5, 2.5, 51)]),
        ("interpolation_explorer", interpolation, "second", list(range(2, 60))),
        ("posterior_explorer (new digit)", posterior, "digit", list(range(0, 360, 7))),
    ]


def _values_of(control) -> list:
    import ipywidgets as w

    if isinstance(control, w.FloatLogSlider):
        lo, hi = control.min, control.max
        return [control.base ** (lo + (hi - lo) * i / 10) for i in range(11)]
    if isinstance(control, (w.IntSlider, w.BoundedIntText)):
        step = max(1, (control.max - control.min) // 20)
        return list(range(control.min, control.max + 1, step))
    if isinstance(control, w.FloatSlider):
        return [control.min + (control.max - control.min) * i / 20 for i in range(21)]
    if hasattr(control, "options"):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    raise TypeError(f"do not know how to move a {type(control).__name__}")


def bench_widgets(n_updates: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        os.environ["VAE_LESSON_CACHE"] = cache
        for name, build, control_name, values in _builders():
            parts = build()
            control = parts.controls[control_name]
            values = values or _values_of(control)
            values = [v for v in values if v != control.value] + [control.value]  # every update changes it
            times = []
            i = 0
            while len(times) < n_updates:
                value = values[i % len(values)]
                i += 1
                if value == control.value:
                    continue
                start = time.perf_counter()
                control.value = value  # observers run synchronously: returns when the image is drawn
                times.append(1000 * (time.perf_counter() - start))
            times.sort()
            out[name] = {"median_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 1),
                         "control": control_name, "updates": len(times),
                         "continuous_update": bool(getattr(control, "continuous_update", False))}
            print(f"  {name}: median {out[name]['median_ms']} ms, p95 {out[name]['p95_ms']} ms", flush=True)
    return out


# ----------------------------------------------------------------------------------------------
# the latent explorer in the browser

# One pointer move at a time: dispatch it on the map, then wait, one animation frame after another,
# until the explorer's frame counter moves (its own requestAnimationFrame callback, registered while
# the event was handled, runs before ours in the same frame). Returns per move the end-to-end ms and
# the explorer's own decode + draw ms for that frame.
EXPLORER_LATENCY_JS = """async (moves) => {
  const ex = window.__vaeExplorers[0];
  const map = document.querySelector('[data-testid="latent-map"]');
  const r = map.getBoundingClientRect();
  const nextFrame = () => new Promise(resolve => requestAnimationFrame(resolve));
  await nextFrame();
  const endToEnd = [], draw = [];
  for (let i = 0; i < moves; i++) {
    await nextFrame();  // one move per frame, as a browser delivers pointer moves
    const t = i / moves, x = r.left + r.width * (0.15 + 0.7 * t), y = r.top + r.height * (0.5 + 0.35 * Math.sin(12 * t));
    const frames = ex.frames, drawn = ex.timings.length;
    const start = performance.now();
    const init = {clientX: x, clientY: y, bubbles: true, cancelable: true, pointerType: 'mouse', isPrimary: true};
    map.dispatchEvent(new PointerEvent('pointermove', init));
    map.dispatchEvent(new MouseEvent('mousemove', init));
    for (let f = 0; f < 30 && ex.frames === frames; f++) await nextFrame();
    if (ex.frames === frames) throw new Error('the explorer did not redraw within 30 frames of a pointer move');
    endToEnd.push(performance.now() - start);
    draw.push(...ex.timings.slice(drawn));
  }
  return {endToEnd, draw};
}"""


def percentile(values, q: float) -> float:
    """The q-quantile (0 < q <= 1) as the smallest value with at least a fraction q at or below it."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def explorer_latency(page, moves: int = 200) -> dict:
    """In an open explorer page: ``moves`` pointer moves, their end-to-end and decode + draw times (ms)."""
    return page.evaluate(EXPLORER_LATENCY_JS, moves)


def open_offline(browser, path: Path):
    """A page showing ``path`` (file://), every request that is not file:// aborted; returns (page, aborted urls)."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    aborted = []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            aborted.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_function("() => (window.__vaeExplorers || []).length > 0", timeout=30_000)
    return page, aborted


# The old kernel-side latent explorer (vae_lesson.widgets.latent_explorer, before issue 18), as measured then:
# one slider update in the kernel (this script's widgets section, median of 60) and key press to new pixels
# in Chromium through Voila (tests/test_browser.py's app test, median of 8 key presses).
OLD_EXPLORER = {"kernel_update_ms": 3.0, "key_to_pixels_ms": 66.0}


def _old_explorer(results: dict) -> dict:
    """The old widget's numbers; the kernel update re-measured when the widgets section still has it. Also the new
    explorer in Voila, pointer move to changed pixels, if tests/test_browser.py measured it (Playwright round trip
    included, like the old key-to-pixels number)."""
    old = dict(OLD_EXPLORER)
    if "latent_explorer" in results.get("widgets", {}):
        old["kernel_update_ms"] = results["widgets"]["latent_explorer"]["median_ms"]
    app = ROOT / "test-artifacts" / "browser" / "app_latency.json"
    measured = json.loads(app.read_text()).get("pointer_to_new_digit_ms") if app.exists() else None
    old["new_in_voila_pointer_to_pixels_ms"] = round(statistics.median(measured), 1) if measured else None
    return old


def bench_explorer(results: dict, moves: int = 200) -> dict:
    import shutil

    from playwright import sync_api

    from vae_lesson import data, explorer, vae

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    digits = data.load_digits(binarized=True)
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as tmp, sync_api.sync_playwright() as pw:
        path = explorer.export_html(vae.trained_vae("2d", progress=False), digits.x_test, digits.y_test,
                                    Path(tmp) / "explorer.html")
        html_kib = round(path.stat().st_size / 1024)
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page, aborted = open_offline(browser, path)
            explorer_latency(page, 20)  # warm-up: the JIT compiles the forward pass
            t = explorer_latency(page, moves)
        finally:
            browser.close()
    out = {"moves": moves, "html_kib": html_kib,
           "aborted_requests": len(aborted),
           "decode_draw_median_ms": round(statistics.median(t["draw"]), 2),
           "decode_draw_p95_ms": round(percentile(t["draw"], 0.95), 2),
           "end_to_end_median_ms": round(statistics.median(t["endToEnd"]), 1),
           "end_to_end_p95_ms": round(percentile(t["endToEnd"], 0.95), 1),
           "old": _old_explorer(results)}
    print(f"  decode + draw p95 {out['decode_draw_p95_ms']} ms, pointer to redrawn frame p95 {out['end_to_end_p95_ms']} ms",
          flush=True)
    return out


# ----------------------------------------------------------------------------------------------
# the VAE against the reference recipe


def train_reference(x_train, budget_s: float, seed: int = 0):
    """The pytorch/examples VAE recipe (examples/vae/main.py) on 8x8 digits, for ``budget_s`` seconds.
    Returns the trained reference as a ``vae.VAE`` with the same function (for evaluation) and the step count."""
    import torch
    from torch import nn

    from vae_lesson.vae import VAE

    class ExamplesVAE(nn.Module):  # as in pytorch/examples, with 64 pixels instead of 784
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(64, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 64)

        def forward(self, x):
            h1 = torch.relu(self.fc1(x))
            mu, logvar = self.fc21(h1), self.fc22(h1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        bce = nn.functional.binary_cross_entropy(recon_x, x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    torch.manual_seed(seed)
    ref = ExamplesVAE()
    optimizer = torch.optim.Adam(ref.parameters(), lr=1e-3, fused=True)  # fused: the same Adam, as ours uses
    n, steps, start = x_train.shape[0], 0, time.perf_counter()
    while time.perf_counter() - start < budget_s:
        order = torch.randperm(n)
        for i in range(0, n, 128):  # DataLoader(batch_size=128, shuffle=True), last batch kept
            x = x_train[order[i:i + 128]]
            optimizer.zero_grad()
            recon_batch, mu, logvar = ref(x)
            loss_function(recon_batch, x, mu, logvar).backward()
            optimizer.step()
            steps += 1
            if time.perf_counter() - start >= budget_s:
                break
    # The same function as a vae.VAE: log sigma = logvar / 2, the decoder's logits are fc4's output.
    model = VAE(latent_dim=20, hidden=400, layers=1, activation="relu")
    with torch.no_grad():
        model.encoder.net[0].load_state_dict(ref.fc1.state_dict())
        model.encoder.net[2].weight.copy_(torch.cat([ref.fc21.weight, 0.5 * ref.fc22.weight]))
        model.encoder.net[2].bias.copy_(torch.cat([ref.fc21.bias, 0.5 * ref.fc22.bias]))
        model.decoder.net[0].load_state_dict(ref.fc3.state_dict())
        model.decoder.net[2].load_state_dict(ref.fc4.state_dict())
        x = x_train[:16]
        h = torch.relu(ref.fc1(x))
        assert torch.allclose(model.encoder.params(x)[0], ref.fc21(h), atol=1e-5)
        assert torch.allclose(model.encoder.params(x)[1], 0.5 * ref.fc22(h), atol=1e-5)
    return model.eval(), steps


def evaluate(model, x_test, per_image: dict | None = None) -> dict:
    """Held-out ELBO (100 samples) and log p(x) (K = 5000), averages with standard errors over the images;
    the per-image log p(x) goes into ``per_image["logpx"]`` when a dict is given."""
    import torch

    with torch.no_grad():
        elbo = model.elbo(x_test, n_samples=100, seed=0).elbo
        log_px = model.log_marginal(x_test, n_samples=5000, seed=0)
    if per_image is not None:
        per_image["logpx"] = log_px
    se = lambda v: float(v.std() / math.sqrt(v.numel()))  # noqa: E731
    return {"elbo": round(float(elbo.mean()), 3), "elbo_se": round(se(elbo), 3),
            "logpx": round(float(log_px.mean()), 3), "logpx_se": round(se(log_px), 3)}


def bench_vae(budget_s: float, seeds: list[int]) -> dict:
    import torch

    from vae_lesson import data, vae
    from vae_lesson.seeding import seed_everything

    seed_everything(0)  # one thread, as the notebooks run
    grey, binary = data.load_digits(), data.load_digits(binarized=True)
    runs = []
    for seed in seeds:
        recipe = vae.Recipe(seed=seed)
        ours, history = vae.train_vae(recipe, grey.x_train, time_budget=budget_s, progress=False)
        reference, ref_steps = train_reference(binary.x_train, budget_s, seed=seed)
        mine, theirs = {}, {}
        run = {"seed": seed, "ours": {**evaluate(ours, binary.x_test, mine), "steps": history.n_steps,
                                      "seconds": round(history.seconds, 1)},
               "reference": {**evaluate(reference, binary.x_test, theirs), "steps": ref_steps}}
        diff = mine["logpx"] - theirs["logpx"]  # paired over the same images: a much smaller standard error
        run["logpx_difference"] = round(float(diff.mean()), 3)
        run["logpx_difference_se"] = round(float(diff.std() / math.sqrt(diff.numel())), 3)
        runs.append(run)
        print(f"  seed {seed}: ours {run['ours']['logpx']} ({history.n_steps} steps), "
              f"reference {run['reference']['logpx']} ({ref_steps} steps)", flush=True)
    start = time.perf_counter()
    model_2d, history_2d = vae.train_vae(vae.RECIPES["2d"], grey.x_train, progress=False)
    result = {"budget_s": budget_s, "ours": runs[0]["ours"], "reference": runs[0]["reference"],
              "latent_2d": {**evaluate(model_2d, binary.x_test), "steps": history_2d.n_steps,
                            "train_seconds": round(history_2d.seconds, 1)},
              "course_recipe_steps": vae.Recipe().n_steps, "runs": runs}
    print(f"  2-D model: {result['latent_2d']['logpx']} ({time.perf_counter() - start:.0f} s)", flush=True)
    return result


def bench_amortization() -> dict:
    import torch

    from vae_lesson import data, vae
    from vae_lesson.seeding import seed_everything

    seed_everything(0)
    x_test = data.load_digits(binarized=True).x_test
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        os.environ["VAE_LESSON_CACHE"] = cache
        model = vae.trained_vae("course", progress=False)
    refined = vae.refine(model, x_test, n_steps=200)  # as notebook 06
    log_px = model.log_marginal(x_test, n_samples=1000, seed=1, proposal=refined.q)  # as notebook 06
    enc, ref = refined.elbo[0], refined.elbo[-1]
    se = lambda v: round(float(v.std() / math.sqrt(v.numel())), 3)  # noqa: E731
    gaps = vae.amortization_gaps(enc, ref, log_px)
    out = {"encoder_elbo": round(float(enc.mean()), 3), "encoder_elbo_se": se(enc),
           "refined_elbo": round(float(ref.mean()), 3), "refined_elbo_se": se(ref),
           "logpx": round(float(log_px.mean()), 3), "logpx_se": se(log_px),
           **{f"{k}_gap": round(float(v.value), 3) for k, v in gaps.items()},
           **{f"{k}_gap_se": round(float(v.std_error), 3) for k, v in gaps.items()},
           "n_images": int(x_test.shape[0]), "refine_steps": 200}
    # time per new image, as notebook 06 measures it
    x_new = x_test[:1]
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(200):
            model.encoder(x_new)
    out["encoder_forward_ms"] = round(1000 * (time.perf_counter() - start) / 200, 3)
    start = time.perf_counter()
    vae.refine(model, x_new, n_steps=200)
    out["refine_200_steps_ms"] = round(1000 * (time.perf_counter() - start), 1)
    print(f"  gaps: approximation {out['approximation_gap']}, amortization {out['amortization_gap']}", flush=True)
    return out


# ----------------------------------------------------------------------------------------------
# ablation: what each extra of the course recipe buys


ABLATIONS = {  # name -> (what is changed, Recipe fields, train_vae's lr_schedule)
    "course recipe": ("nothing: two layers of 200 SiLU units, cosine learning rate, threshold jitter 0.2", {}, "cosine"),
    "one hidden layer": ("one layer of 200 units in the encoder and in the decoder instead of two", {"layers": 1}, "cosine"),
    "ReLU": ("ReLU units instead of SiLU", {"activation": "relu"}, "cosine"),
    "constant learning rate": ("the learning rate held at its start value instead of a half-cosine decay to 0", {}, "constant"),
    "no jitter": ("every image binarized at 0.5 each time instead of a random threshold in 0.5 +- 0.2",
                  {"threshold_jitter": 0.0}, "cosine"),
}


def bench_ablation(out_json: Path = ABLATION_JSON) -> dict:
    """Train the course recipe and each ablation (same steps, same seed, one thread) and evaluate on the
    held-out digits; write the table to ``out_json`` for notebook 07."""
    import dataclasses

    import torch

    from vae_lesson import data, vae
    from vae_lesson.seeding import seed_everything

    seed_everything(0)
    grey, binary = data.load_digits(), data.load_digits(binarized=True)
    base = vae.Recipe()
    rows, course = {}, {}
    for name, (change, fields, schedule) in ABLATIONS.items():
        recipe = dataclasses.replace(base, **fields)
        model, history = vae.train_vae(recipe, grey.x_train, progress=False, lr_schedule=schedule)
        with torch.no_grad():
            test_elbo = model.elbo(binary.x_test, n_samples=100, seed=0).elbo
            train_elbo = model.elbo(binary.x_train, n_samples=100, seed=0).elbo
            log_px = model.log_marginal(binary.x_test, n_samples=1000, seed=0)
        se = lambda v: round(float(v.std() / math.sqrt(v.numel())), 3)  # noqa: E731
        rows[name] = {"change": change, "recipe": {**dataclasses.asdict(recipe), "lr_schedule": schedule},
                      "test_elbo": round(float(test_elbo.mean()), 3), "test_elbo_se": se(test_elbo),
                      "test_logpx": round(float(log_px.mean()), 3), "test_logpx_se": se(log_px),
                      "train_elbo": round(float(train_elbo.mean()), 3), "seconds": round(history.seconds, 1)}
        if not course:
            course = {"elbo": test_elbo, "logpx": log_px}
        else:  # what removing the extra costs, paired over the same test images: course minus this row
            for key, v in (("elbo", test_elbo), ("logpx", log_px)):
                diff = course[key] - v
                rows[name][f"{key}_gain"] = round(float(diff.mean()), 3)
                rows[name][f"{key}_gain_se"] = se(diff)
        print(f"  {name}: test ELBO {rows[name]['test_elbo']}, log p(x) {rows[name]['test_logpx']}, "
              f"train ELBO {rows[name]['train_elbo']} ({history.seconds:.0f} s)", flush=True)
    result = {"n_steps": base.n_steps, "seed": base.seed, "logpx_samples": 1000, "elbo_samples": 100,
              "n_test": int(binary.x_test.shape[0]), "units": "nats per image", "rows": rows}
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    return result


# ----------------------------------------------------------------------------------------------
# a class on JupyterHub

HUB_NOTEBOOK_CLASS = "01_latent_variable_models.ipynb"  # what several students run at once
HUB_STUDENTS = (2, 4, 6)  # students at once: at 2 they share the 2 cores, at 4 and 6 they queue for them


def _hub_run(server, pid: int, notebook: Path, idle_limit: float) -> dict:
    """One student's run of ``notebook`` on their hub server, as a student runs it: the notebook put into
    their home (contents API), a fresh kernel started there, every code cell run in order over the kernel's
    websocket through the hub's proxy, the kernel shut down. Wall seconds from the kernel start to the last
    cell's idle status (``run_s``: the cells alone), peak memory of the server plus kernel, CPU seconds of both."""
    import psutil

    from hub.client import TreeMeter

    nb = json.loads(notebook.read_text(encoding="utf-8"))
    server.upload(f"course/{notebook.name}", nb)
    with TreeMeter(psutil.Process(pid)) as meter:
        start = time.perf_counter()
        kernel = server.start_kernel("course")
        try:
            run = kernel.run_notebook(nb, idle_limit=idle_limit, progress=meter.progress)
            wall = time.perf_counter() - start
            meter.progress()  # the kernel's last sample, before it goes
        finally:
            kernel.shutdown()
    if run.error:
        raise RuntimeError(f"{server.name} running {notebook.name} on the hub: {run.error}")
    return {"wall_s": round(wall, 2), "run_s": round(run.wall_s, 2), "peak_mib": round(meter.peak_mib),
            "cpu_s": round(meter.cpu_s, 1)}


def bench_hub(students: tuple[int, ...] = HUB_STUDENTS, class_notebook: str = HUB_NOTEBOOK_CLASS) -> dict:
    """A class on the course's JupyterHub (`python3 dev.py hub`, on a free port, state in a fresh folder whose
    shared model cache holds the course's models: the developer's cache copied, then completed by
    ``vae.trained_vae``), driven through its real interfaces (hub/client.py: the hub's REST API, each
    student's server's contents API and kernel websocket, all through the proxy):
    (a) notebooks 01-05, each by one student alone; (b) ``students`` students at once running
    ``class_notebook`` (each with their own server, all started at once, then all kernels at once);
    (c) notebooks 06 and 07 alone, with the shared cache (they load the models) and with an empty one (they
    train them). Per student: wall seconds (kernel start to the last cell), the same against the solo
    run, peak memory of their server plus kernel, CPU seconds of both. Also the servers' spawn times
    and the memory of an idle server and of the hub's own processes."""
    import threading

    import psutil

    for path in (ROOT, ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import hubs  # tests/hubs.py: start_hub runs `python3 dev.py hub --port P --state S`
    import patience
    from hub.client import UserServer

    why = hubs.hub_unavailable()
    if why:
        raise SystemExit(f"hub: {why}")
    nbs = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    limit = patience.idle_limit()
    out = {"machine": machine(), "class_notebook": class_notebook, "solo": {}, "class": {}, "trained": {}}
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        state = Path(tmp) / "state"
        cache = state / "model-cache"
        hubs._copy_models(cache)
        subprocess.run([sys.executable, "-c", "from vae_lesson import vae\nfor n in vae.RECIPES: vae.trained_vae(n, progress=False)"],
                       check=True, env={**os.environ, "VAE_LESSON_CACHE": str(cache)}, cwd=ROOT)
        start = time.perf_counter()
        hub = hubs.start_hub(state)
        out["hub_start_s"] = round(time.perf_counter() - start, 1)
        try:
            names = [f"student{i}" for i in range(1, max(students) + 1)]
            for name in names:
                hub.add_user(name)
            start = time.perf_counter()
            hub.start_servers(names[0])
            out["spawn_one_s"] = round(time.perf_counter() - start, 1)
            start = time.perf_counter()
            hub.start_servers(*names[1:])
            out["spawn_at_once"] = {"servers": len(names) - 1, "seconds": round(time.perf_counter() - start, 1)}
            servers = {n: UserServer(hub.url, n, hub.user_token(n)) for n in names}
            pids = {n: hub.server_pid(n) for n in names}
            out["idle_server_mib"] = round(statistics.median(psutil.Process(pids[n]).memory_info().rss for n in names) / 2**20)
            print(f"  hub up in {out['hub_start_s']} s; one server {out['spawn_one_s']} s, {len(names) - 1} at once "
                  f"{out['spawn_at_once']['seconds']} s; an idle server {out['idle_server_mib']} MiB", flush=True)

            solo = names[0]
            for key in ("01", "02", "03", "04", "05"):
                row = _hub_run(servers[solo], pids[solo], nbs[key], limit)
                out["solo"][nbs[key].name] = row
                print(f"  {nbs[key].name} alone: {row['wall_s']} s, {row['peak_mib']} MiB, {row['cpu_s']} CPU s", flush=True)
            reference = out["solo"][class_notebook]["wall_s"]

            for n in students:
                rows, errors = {}, []
                gate = threading.Barrier(n)

                def one(name):
                    try:
                        gate.wait()
                        rows[name] = _hub_run(servers[name], pids[name], nbs[class_notebook[:2]], limit)
                    except Exception as exc:  # noqa: BLE001 (reported below, with the student)
                        errors.append(f"{name}: {exc}")

                threads = [threading.Thread(target=one, args=(name,)) for name in names[:n]]
                start = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.perf_counter() - start
                if errors:
                    raise RuntimeError("; ".join(errors))
                walls = [r["wall_s"] for r in rows.values()]
                out["class"][str(n)] = {
                    "students": rows, "wall_mean_s": round(statistics.mean(walls), 2), "wall_max_s": round(max(walls), 2),
                    "vs_solo": round(statistics.mean(walls) / reference, 2), "all_done_s": round(elapsed, 2),
                    "notebooks_per_minute": round(60 * n / elapsed, 1),
                    "peak_mib_max": max(r["peak_mib"] for r in rows.values()),
                    "cpu_s_mean": round(statistics.mean(r["cpu_s"] for r in rows.values()), 1)}
                c = out["class"][str(n)]
                print(f"  {n} students at once on {class_notebook}: wall {c['wall_mean_s']} s mean, {c['wall_max_s']} s max "
                      f"({c['vs_solo']}x solo), {c['notebooks_per_minute']} notebooks/min, peak {c['peak_mib_max']} MiB, "
                      f"{c['cpu_s_mean']} CPU s each", flush=True)

            full = state / "model-cache.full"
            for key in ("06", "07"):
                name = nbs[key].name
                shared = _hub_run(servers[solo], pids[solo], nbs[key], limit)
                cache.rename(full)  # an empty shared cache: the notebook trains what it needs
                cache.mkdir()
                try:
                    empty = _hub_run(servers[solo], pids[solo], nbs[key], limit)
                finally:
                    shutil.rmtree(cache)
                    full.rename(cache)
                out["trained"][name] = {"shared_cache": shared, "empty_cache": empty}
                print(f"  {name} alone: {shared['wall_s']} s with the shared cache, {empty['wall_s']} s with an empty one "
                      f"(peak {shared['peak_mib']} / {empty['peak_mib']} MiB, {shared['cpu_s']} / {empty['cpu_s']} CPU s)",
                      flush=True)

            mib = {}
            for pid in hub.pids():
                try:
                    proc = psutil.Process(pid)
                    cmd = " ".join(proc.cmdline())
                    kind = ("proxy" if "configurable-http-proxy" in cmd else "idle culler" if "idle_culler" in cmd
                            else "jupyterhub" if cmd.split(" ")[1:2] and cmd.split(" ")[1].endswith("/jupyterhub") else None)
                    if kind:
                        mib[kind] = mib.get(kind, 0) + round(proc.memory_info().rss / 2**20)
                except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
                    continue
            out["hub_processes_mib"] = mib
        finally:
            hub.stop()
    return out


# ----------------------------------------------------------------------------------------------
# install


def bench_install() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True, cwd=ROOT)
        subprocess.run(pip + ["-r", "requirements.txt"], check=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    return {"seconds": round(seconds, 1), "size_mib": round(size / 2**20)}


# ----------------------------------------------------------------------------------------------
# report


# Why an update is slow, where it is: shown next to a missed target.
WIDGET_NOTES = {
    "importance_sampling_explorer": "K = 10000 evaluates 3 million importance weights; redraws on release",
}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, torch {m['torch']} "
             f"({m['torch_threads']} thread{'s' if m['torch_threads'] != 1 else ''} for training)."]
    earlier = {k: v for k, v in results.get("measured", {}).items() if v != m["date"] and k in results}
    if earlier:  # sections kept from an earlier run (maybe another machine): say when
        lines[0] += " Kept from earlier runs: " + ", ".join(f"{k} ({v})" for k, v in sorted(earlier.items())) + "."
    ok = lambda good: "✅" if good else "❌ missed"  # noqa: E731
    if "notebooks" in results:
        nbs = results["notebooks"]
        total = sum(v["seconds"] for v in nbs.values())
        lines += ["", "| notebook | seconds | peak MiB | target |", "|---|---|---|---|"]
        for name, v in nbs.items():
            limit = TARGETS["early_notebook_s"] if name[:2] <= "05" else TARGETS["notebook_s"]
            lines.append(f"| {name} | {v['seconds']:.1f} | {v['peak_mib']:.0f} | < {limit:.0f} s, "
                         f"< {TARGETS['peak_mib']:.0f} MiB {ok(v['seconds'] < limit and v['peak_mib'] < TARGETS['peak_mib'])} |")
        lines.append(f"| **all** | **{total:.1f}** | | < {TARGETS['collection_s']:.0f} s {ok(total < TARGETS['collection_s'])} |")
    suites = [(key, results[key]) for key in ("suite", "suite-loaded") if key in results]
    if suites:
        lines += ["", "| `python3 dev.py test` | wall s | CPU s | items | outcome | target |", "|---|---|---|---|---|---|"]
        for key, v in suites:
            what = "idle machine" if not v["load"] else f"{v['load']} CPU-bound processes alongside"
            lines.append(f"| {what} | {v['wall_s']:.0f} | {v['cpu_s']:.0f} | {v['items']} | {v['outcome']} | "
                         + (f"< {TARGETS['suite_s']:.0f} s {ok(v['wall_s'] < TARGETS['suite_s'])} |" if not v["load"] else "passes |"))
        slowest = results["suite"]["slowest"] if "suite" in results else suites[0][1]["slowest"]
        lines += ["", "Its ten slowest items (idle machine): " + "; ".join(
            f"{s['item'].removeprefix('notebooks.').removeprefix('tests.')} {s['seconds']:.0f} s"
            for s in slowest) + "."]
    if "notebooks-warm" in results:
        warm = results["notebooks-warm"]
        lines += ["", "With the course's models already in the cache (a student's second run): "
                  + ", ".join(f"{name[:2]} {v['seconds']:.1f} s" for name, v in warm.items())
                  + f"; all {sum(v['seconds'] for v in warm.values()):.1f} s."]
    if "first-start" in results:
        f = results["first-start"]
        rows = f.get("models", {"2d": {"idle_s": f.get("idle_s"), "loaded_s": f.get("loaded_s")}})
        lines += ["", f"First start of each model (`vae.trained_vae(name)` from an empty cache, a fresh process; idle, "
                      f"and with {f['load']} CPU-bound processes alongside): "
                  + "; ".join(f"'{name}' {r['idle_s']:.0f} s and {r['loaded_s']:.0f} s" for name, r in rows.items()) + "."]
    if "widgets" in results:
        lines += ["", "| widget update | median ms | p95 ms | continuous_update | target (30 / 100 ms) |", "|---|---|---|---|---|"]
        for name, v in results["widgets"].items():
            good = v["median_ms"] < TARGETS["widget_median_ms"] and v["p95_ms"] < TARGETS["widget_p95_ms"]
            note = ok(good) if good else "❌ missed: " + WIDGET_NOTES.get(name, "redraws on release")
            lines.append(f"| {name} (`{v['control']}`) | {v['median_ms']} | {v['p95_ms']} | {v['continuous_update']} | {note} |")
    if "explorer" in results:
        e = results["explorer"]
        old = e.get("old", {})
        fmt = lambda v: "not measured" if v is None else f"{v} ms"  # noqa: E731
        lines += ["", f"Latent explorer in headless Chromium ({e['moves']} pointer moves over the map of the exported HTML "
                      "file, offline):", "",
                  "| latent explorer | median ms | p95 ms | target |", "|---|---|---|---|",
                  f"| decode + draw in the page (JavaScript) | {e['decode_draw_median_ms']} | {e['decode_draw_p95_ms']} | "
                  f"< {TARGETS['frame_ms']:.0f} ms (one frame) {ok(e['decode_draw_p95_ms'] < TARGETS['frame_ms'])} |",
                  f"| pointer event to new pixels on the canvas (one move per frame) | {e['end_to_end_median_ms']} | "
                  f"{e['end_to_end_p95_ms']} | < {TARGETS['frame_ms']:.0f} ms (one frame) "
                  f"{ok(e['end_to_end_p95_ms'] < TARGETS['frame_ms'])} |",
                  f"| old widget: slider update in the kernel | {fmt(old.get('kernel_update_ms'))} | | |",
                  f"| old widget: key press to new pixels in Chromium (Voila, via Playwright) | {fmt(old.get('key_to_pixels_ms'))} | | |",
                  f"| this explorer: pointer move to new pixels (Voila, via Playwright) | "
                  f"{fmt(old.get('new_in_voila_pointer_to_pixels_ms'))} | | |"]
    if "vae" in results:
        v = results["vae"]
        lines += ["", f"Held-out binarized digits (360), nats per image, K = 5000; training budget {v['budget_s']:.0f} s each, "
                      "same run, same split:", "",
                  "| model | steps | test ELBO | test log p(x) |", "|---|---|---|---|",
                  f"| course VAE (`vae.Recipe`) | {v['ours']['steps']} | {v['ours']['elbo']:.2f} ± {v['ours']['elbo_se']:.2f} "
                  f"| **{v['ours']['logpx']:.2f}** ± {v['ours']['logpx_se']:.2f} |",
                  f"| reference (pytorch/examples recipe) | {v['reference']['steps']} | {v['reference']['elbo']:.2f} ± "
                  f"{v['reference']['elbo_se']:.2f} | {v['reference']['logpx']:.2f} ± {v['reference']['logpx_se']:.2f} |",
                  f"| 2-D latent model (`'2d'` recipe, {v['latent_2d']['steps']} steps) | | {v['latent_2d']['elbo']:.2f} | "
                  f"{v['latent_2d']['logpx']:.2f} (target > {TARGETS['latent_2d_logpx']} {ok(v['latent_2d']['logpx'] > TARGETS['latent_2d_logpx'])}) |"]
        if all("logpx_difference" in r for r in v["runs"]):
            lines.append(f"\nlog p(x), course VAE minus reference, paired over the 360 test images (mean ± standard error), "
                         f"{len(v['runs'])} seed{'s' if len(v['runs']) > 1 else ''}: "
                         + ", ".join(f"{r['logpx_difference']:+.2f} ± {r['logpx_difference_se']:.2f}" for r in v["runs"]) + " nats.")
    if "amortization" in results:
        a = results["amortization"]
        lines += ["", "| held-out averages (notebook 06), nats per image | value |", "|---|---|",
                  f"| encoder ELBO | {a['encoder_elbo']:.3f} ± {a['encoder_elbo_se']:.3f} |",
                  f"| refined ELBO ({a['refine_steps']} steps) | {a['refined_elbo']:.3f} ± {a['refined_elbo_se']:.3f} |",
                  f"| log p(x), K = 1000 from the refined q | {a['logpx']:.3f} ± {a['logpx_se']:.3f} |",
                  f"| approximation gap | {a['approximation_gap']:.3f} ± {a['approximation_gap_se']:.3f} |",
                  f"| amortization gap | {a['amortization_gap']:.3f} ± {a['amortization_gap_se']:.3f} |",
                  f"| time per new image: encoder / 200 refinement steps | {a['encoder_forward_ms']} ms / {a['refine_200_steps_ms']} ms |"]
    if "ablation" in results:
        a = results["ablation"]
        lines += ["", f"What each extra of the course recipe buys ({a['n_steps']} steps, seed {a['seed']}, one removed at a time; "
                      f"held-out digits, nats per image, log p(x) with K = {a['logpx_samples']}; the extra's gain = course minus "
                      "the row, paired over the same images, ± standard error):", "",
                  "| recipe | test ELBO | test log p(x) | train ELBO | gain in test ELBO | gain in test log p(x) |",
                  "|---|---|---|---|---|---|"]
        for name, r in a["rows"].items():
            gains = ("| | |" if name == "course recipe" else
                     f"| {r['elbo_gain']:+.2f} ± {r['elbo_gain_se']:.2f} | {r['logpx_gain']:+.2f} ± {r['logpx_gain_se']:.2f} |")
            lines.append(f"| {name} | {r['test_elbo']:.2f} | {r['test_logpx']:.2f} ± {r['test_logpx_se']:.2f} | "
                         f"{r['train_elbo']:.2f} {gains}")
    if "hub" in results:
        h = results["hub"]
        hm = h.get("machine", m)
        lines += ["", f"A class on JupyterHub (`python3 dev.py hub`: one local server per student; each notebook run cell by cell "
                      f"over the kernel websocket through the hub's proxy, from a fresh kernel; {hm['cpu']}, {hm['cores']} cores, "
                      f"{hm['date']}). Peak memory: the student's server plus kernel; CPU: both, in seconds:", "",
                  "| run | students at once | wall s per student (mean / max) | against alone | peak MiB per student | "
                  "CPU s per student |", "|---|---|---|---|---|---|"]
        for name, r in h["solo"].items():
            lines.append(f"| {name} | 1 | {r['wall_s']:.1f} | 1.00 | {r['peak_mib']} | {r['cpu_s']:.1f} |")
        for n, c in h["class"].items():
            lines.append(f"| {h['class_notebook']} | {n} | {c['wall_mean_s']:.1f} / {c['wall_max_s']:.1f} | {c['vs_solo']:.2f} | "
                         f"{c['peak_mib_max']} | {c['cpu_s_mean']:.1f} |")
        for name, t in h["trained"].items():
            for key, what in (("shared_cache", "shared model cache (loads)"), ("empty_cache", "empty cache (trains)")):
                r = t[key]
                lines.append(f"| {name}, {what} | 1 | {r['wall_s']:.1f} | | {r['peak_mib']} | {r['cpu_s']:.1f} |")
        if h["class"]:
            lines += ["", f"{h['class_notebook']} by several students at once, each in their own kernel, on {hm['cores']} cores: "
                      + "; ".join(f"{n} students {c['vs_solo']:.2f}x the time alone, all done in {c['all_done_s']:.0f} s "
                                  f"({c['notebooks_per_minute']:.1f} notebooks a minute)" for n, c in h["class"].items()) + "."]
        procs = ", ".join(f"{k} {v} MiB" for k, v in h.get("hub_processes_mib", {}).items())
        lines += ["", f"Hub up in {h['hub_start_s']:.0f} s; a student's server starts in {h['spawn_one_s']:.0f} s alone, "
                      f"{h['spawn_at_once']['servers']} at once in {h['spawn_at_once']['seconds']:.0f} s; an idle server holds "
                      f"{h['idle_server_mib']} MiB" + (f"; the hub's own processes: {procs}" if procs else "") + "."]
    if "install" in results:
        i = results["install"]
        lines += ["", f"Fresh install (venv + `pip install -r requirements.txt`): {i['seconds']:.0f} s, {i['size_mib']} MiB."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="notebooks,widgets,explorer,vae,amortization,ablation",
                        help=f"comma-separated sections from {', '.join(SECTIONS)}")
    parser.add_argument("--install", action="store_true", help="also time a fresh install (slow)")
    parser.add_argument("--budget", type=float, default=20.0, help="training seconds for each VAE (default 20)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat the VAE comparison with this many seeds")
    parser.add_argument("--updates", type=int, default=60, help="widget updates to time (default 60)")
    parser.add_argument("--load", type=int, default=2,
                        help="CPU-bound processes running alongside for suite-loaded and first-start (default 2)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for results.json and results.md")
    parser.add_argument("--readme", action="store_true",
                        help="also put the tables into README.md's Performance section (between its markers)")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s] + (["install"] if args.install else [])
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.budget <= 0 or args.seeds < 1 or args.updates < 50:
        parser.error("--budget must be > 0, --seeds >= 1 and --updates >= 50")
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}  # keep sections not re-run
    results["machine"] = machine()
    runners = {"notebooks": bench_notebooks, "notebooks-warm": lambda: bench_notebooks(warm=True), "suite": bench_suite, "suite-loaded": lambda: bench_suite(args.load),
               "first-start": lambda: bench_first_start(args.load), "widgets": lambda: bench_widgets(args.updates),
               "explorer": lambda: bench_explorer(results),
               "vae": lambda: bench_vae(args.budget, list(range(args.seeds))), "amortization": bench_amortization,
               "ablation": bench_ablation, "hub": bench_hub, "install": bench_install}
    for section in sections:
        print(f"{section}:", flush=True)
        results[section] = runners[section]()
        results.setdefault("measured", {})[section] = results["machine"]["date"]
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "results.md").write_text(text)
    print(text)
    if args.readme:
        update_readme(ROOT / "README.md", text)


START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def update_readme(path: Path, text: str) -> None:
    """Replace what lies between the README's benchmark markers with ``text``."""
    readme = path.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{path} has no {START} ... {END} block to update")
    head, rest = readme.split(START, 1)
    path.write_text(head + START + "\n" + text + rest[rest.index(END):])


if __name__ == "__main__":
    main()
