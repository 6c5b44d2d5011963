"""Checkpoints: round trip, atomic writes, weights_only loading, and clear errors."""
import pickle

import pytest
import torch
from torch import nn

from vae_lesson import checkpoints
from vae_lesson.models import LatentGaussianModel


def build(config):
    return LatentGaussianModel(latent_dim=config["latent_dim"], data_dim=2, hidden=config["hidden"])


def test_round_trip(tmp_path):
    model = build({"latent_dim": 1, "hidden": 8})
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model, {"latent_dim": 1, "hidden": 8})
    loaded, config = checkpoints.load_checkpoint(path, build)
    assert config == {"latent_dim": 1, "hidden": 8}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left


def test_missing_file_says_train_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the model first"):
        checkpoints.load_checkpoint(tmp_path / "nope.pt", build)


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoints.load_checkpoint(path, build)


def test_truncated_file(tmp_path):
    model = build({"latent_dim": 1, "hidden": 8})
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model, {"latent_dim": 1, "hidden": 8})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoints.load_checkpoint(path, build)


class Evil:
    def __reduce__(self):
        return (print, ("code ran while loading!",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "config": {}, "state_dict": {}, "x": Evil()}, path,
               pickle_module=pickle)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoints.load_checkpoint(path, build)
    assert "code ran" not in capsys.readouterr().out


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": nn.Linear(2, 2).state_dict()}, path)
    with pytest.raises(ValueError, match="not a vae-lesson checkpoint"):
        checkpoints.load_checkpoint(path, build)


def test_mismatched_sizes_name_the_parameter(tmp_path):
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", build({"latent_dim": 1, "hidden": 8}), {"latent_dim": 1, "hidden": 8})
    with pytest.raises(ValueError, match=r"decoder\.net\.0\.weight has shape \(8, 1\) in the file but \(16, 1\)"):
        checkpoints.load_checkpoint(path, lambda config: build({"latent_dim": 1, "hidden": 16}))


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = build({"latent_dim": 1, "hidden": 8})
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model, {"latent_dim": 1, "hidden": 8})
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, model, {"latent_dim": 1, "hidden": 8})
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_LESSON_CACHE", str(tmp_path / "cache"))
    assert checkpoints.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
