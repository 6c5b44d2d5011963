"""Shared fixtures for the unit tests of ``vae_lesson``.

The Agg backend is selected here, before anything imports ``matplotlib.pyplot``, so the tests
never need a display and never open windows.
"""
import os

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import vae_lesson  # noqa: E402


@pytest.fixture(autouse=True)
def seeded() -> torch.Generator:
    """Seed Python, NumPy and torch (seed 0, one torch thread) before every test; the returned
    generator is a private stream for tests that want one."""
    return vae_lesson.seed_everything(0)


@pytest.fixture(autouse=True)
def _close_figures():
    """No figure outlives its test."""
    yield
    plt.close("all")


def bent_latent_model(seed: int, hidden: int, std_bias: float):
    """A small untrained LatentGaussianModel whose output layer is scaled up, so that its
    Gaussians' centres move with z, with their stds set by ``std_bias`` (softplus(std_bias) + 0.05):
    a curved, narrow density, a harder target than the default initialization."""
    from vae_lesson.models import LatentGaussianModel

    torch.manual_seed(seed)
    model = LatentGaussianModel(latent_dim=1, data_dim=2, hidden=hidden)
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(3.0)
        model.decoder.net[-1].bias[2:] = std_bias
    return model.requires_grad_(False)
