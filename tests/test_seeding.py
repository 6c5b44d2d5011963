import random

import numpy as np
import pytest
import torch

from vae_lesson import seed_everything


def _draws():
    return (torch.rand(5), np.random.rand(5), [random.random() for _ in range(5)])


def _assert_same(a, b):
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_same_seed_same_draws():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    second = _draws()
    _assert_same(first, second)


def test_different_seed_different_draws():
    seed_everything(1)
    a = _draws()
    seed_everything(2)
    b = _draws()
    assert not torch.equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])
    assert a[2] != b[2]


def test_seeds_each_library_like_its_own_seed_function():
    seed_everything(7)
    got = _draws()
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    _assert_same(got, _draws())


def test_numpy_integer_seed_and_large_seed_accepted():
    seed_everything(np.int64(5))
    a = _draws()
    seed_everything(5)
    _assert_same(a, _draws())
    seed_everything(2**40)  # beyond NumPy's 32-bit seed range: still fine
    torch.rand(1), np.random.rand(1)


def test_returned_generator_is_seeded():
    g = seed_everything(11)
    assert isinstance(g, torch.Generator)
    assert g.initial_seed() == 11
    expected = torch.randn(4, generator=torch.Generator().manual_seed(11))
    assert torch.equal(torch.randn(4, generator=g), expected)


def test_sets_thread_count():
    try:
        seed_everything(0, threads=2)
        assert torch.get_num_threads() == 2
        seed_everything(0)
        assert torch.get_num_threads() == 1  # the default is one thread
    finally:
        seed_everything(0, threads=1)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None, True, [0]])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)


@pytest.mark.parametrize("threads", [0, -2, 1.0, "1", None, True])
def test_bad_threads(threads):
    with pytest.raises(ValueError, match="threads"):
        seed_everything(0, threads=threads)


# --- the package's training chooses its own thread count ------------------------------------------

def _fit_seen_threads(monkeypatch=None):
    from vae_lesson import training

    model = torch.nn.Linear(2, 1)
    seen = []

    def loss(step):
        seen.append(torch.get_num_threads())
        return model(torch.ones(1, 2)).pow(2).sum()

    training.fit(model, loss, n_steps=3, progress=False)
    return seen


def test_training_runs_single_threaded_whatever_the_caller_set():
    """A script or an app that never called seed_everything leaves torch at its default (several threads):
    fit, train_vae, refine and fit_encoder set one thread for their work and put the caller's back."""
    from vae_lesson import vae

    torch.set_num_threads(2)
    try:
        assert set(_fit_seen_threads()) == {1}
        assert torch.get_num_threads() == 2  # restored
        model = vae.VAE(latent_dim=2, hidden=8, layers=1)
        x = (torch.rand(4, 64) < 0.5).float()
        seen = []
        model.decoder.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
        vae.refine(model, x, n_steps=2, eval_samples=2)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        for name in ("train_vae", "refine", "fit_encoder"):  # each decorated with with_training_threads
            assert getattr(vae, name).__wrapped__ is not None
    finally:
        torch.set_num_threads(1)


def test_the_thread_count_can_be_set_and_is_checked(monkeypatch):
    from vae_lesson import seeding

    monkeypatch.setenv("VAE_LESSON_THREADS", "2")
    assert set(_fit_seen_threads()) == {2}
    monkeypatch.setenv("VAE_LESSON_THREADS", "zero")
    with pytest.raises(ValueError, match="VAE_LESSON_THREADS must be a positive integer"):
        seeding.training_thread_count()
    monkeypatch.setenv("VAE_LESSON_THREADS", "0")
    with pytest.raises(ValueError, match="positive integer"):
        seeding.training_thread_count()
