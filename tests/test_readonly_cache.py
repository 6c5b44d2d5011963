"""A class hub's shared model cache (VAE_LESSON_CACHE = STATE/model-cache for every server) that a student may only
read: the instructor filled it, so notebooks 06 and 07 load the models from it, never train them; a model missing
from it is trained in memory with a clear warning, never a crash (the lock and the save cannot write there).

Read-only for real: as root (containers, CI) permissions do not stop writes, so the folder is made immutable
(chattr +i); as another user, chmod does it."""
from __future__ import annotations

import contextlib
import os
import subprocess
import warnings

import pytest
import torch
from vae_lesson import vae
from vae_lesson.checkpoints import CACHE_ENV

TINY = vae.Recipe(latent_dim=2, hidden=8, layers=1, n_steps=3, batch_size=16)


@contextlib.contextmanager
def read_only(folder):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: cannot make a folder read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A small recipe "tiny" among the course's, a cache folder of its own, and a count of trainings."""
    monkeypatch.setitem(vae.RECIPES, "tiny", TINY)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "model-cache"))
    trained = []
    train = vae._train_by_recipe
    monkeypatch.setattr(vae, "_train_by_recipe", lambda *a, **k: trained.append(1) or train(*a, **k))
    return tmp_path / "model-cache", trained


def test_a_read_only_cache_holding_the_model_is_loaded_not_trained(tiny):
    cache, trained = tiny
    first = vae.trained_vae("tiny", progress=False)  # the instructor fills the cache
    assert trained == [1] and (cache / "vae-tiny.pt").is_file()
    (cache / "vae-tiny.pt.lock").unlink()  # a cache copied to the hub without its lock files
    with read_only(cache):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to warn about: the model is there
            loaded = vae.trained_vae("tiny", progress=False)
    assert trained == [1], "the model in the read-only cache was trained again instead of loaded"
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


def test_a_model_missing_from_a_read_only_cache_is_trained_in_memory_with_a_warning(tiny):
    cache, trained = tiny
    cache.mkdir()
    with read_only(cache):
        with pytest.warns(UserWarning, match="could not be saved in .*kept in memory") as said:
            model = vae.trained_vae("tiny", progress=False)
    assert trained == [1] and isinstance(model, vae.VAE)
    assert "prepare-models" in str(said[0].message)
    assert not list(cache.iterdir()), "wrote into the read-only cache"
