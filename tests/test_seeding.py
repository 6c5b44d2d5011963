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
