"""The package's layout promises: the core never imports a screen library."""
import subprocess
import sys

CORE = ["vae_lesson.data", "vae_lesson.models", "vae_lesson.estimators", "vae_lesson.objectives",
        "vae_lesson.training", "vae_lesson.seeding", "vae_lesson.notation", "vae_lesson.checks",
        "vae_lesson.bernoulli_mixture", "vae_lesson.missing_half", "vae_lesson.variational", "vae_lesson.gradients",
        "vae_lesson.checkpoints", "vae_lesson.vae", "vae_lesson.latent_grid", "vae_lesson.references"]


def test_core_imports_no_matplotlib_or_ipywidgets():
    code = (f"import sys; import {', '.join(CORE)}; "
            "bad = [m for m in ('matplotlib', 'ipywidgets') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"the core imported {result.stdout.strip()} {result.stderr[-500:]}"
