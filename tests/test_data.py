import numpy as np
import pytest
import torch
from sklearn import datasets

from vae_lesson.data import TOY_DATASETS, binarize, load_digits, make_toy_2d


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def raw_digits():
    bunch = datasets.load_digits()
    return bunch.data, bunch.target


def test_shapes_and_dtypes(digits):
    assert digits.x_train.shape == (1437, 64)
    assert digits.x_test.shape == (360, 64)
    assert digits.y_train.shape == (1437,)
    assert digits.y_test.shape == (360,)
    assert digits.x_train.dtype == digits.x_test.dtype == torch.float32
    assert digits.y_train.dtype == digits.y_test.dtype == torch.int64
    assert digits.binarized is False


def test_grey_levels_in_unit_interval(digits):
    for x in (digits.x_train, digits.x_test):
        assert x.min() >= 0 and x.max() <= 1
    # scaled by 16, not merely clipped: the raw levels 0..16 come back as integers, and 1 is reached
    levels = torch.cat([digits.x_train, digits.x_test]) * 16
    assert torch.equal(levels, levels.round())
    assert levels.max() == 16


def test_split_is_a_partition_of_the_raw_digits(digits, raw_digits):
    raw_x, raw_y = raw_digits
    ours = np.concatenate([
        np.c_[(digits.x_train.numpy() * 16).round(), digits.y_train.numpy()],
        np.c_[(digits.x_test.numpy() * 16).round(), digits.y_test.numpy()],
    ])
    theirs = np.c_[raw_x, raw_y]

    def lex_sorted(a):
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_array_equal(lex_sorted(ours), lex_sorted(theirs))


def test_binarized_values_are_0_or_1(digits):
    b = load_digits(binarized=True)
    assert b.binarized is True
    for xb, x in ((b.x_train, digits.x_train), (b.x_test, digits.x_test)):
        assert xb.dtype == torch.float32
        assert set(torch.unique(xb).tolist()) == {0.0, 1.0}
        assert torch.equal(xb, (x >= 0.5).float())
    assert torch.equal(b.y_train, digits.y_train)


def test_split_is_fixed_across_calls(digits):
    again = load_digits()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(again, name), getattr(digits, name)), name


def test_split_is_stratified(digits, raw_digits):
    _, raw_y = raw_digits
    total = np.bincount(raw_y, minlength=10)
    test_counts = np.bincount(digits.y_test.numpy(), minlength=10)
    assert (test_counts > 0).all(), "every digit must appear in the test set"
    # stratified: each class gets its share of the 20% test set, up to rounding
    assert np.all(np.abs(test_counts - 0.2 * total) <= 1), (test_counts, 0.2 * total)


def test_binarize_threshold_semantics():
    x = torch.tensor([0.0, 0.49, 0.5, 0.51, 1.0])
    assert binarize(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert binarize(x, threshold=0.75).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert binarize(x).dtype == torch.float32


def test_binarize_rejects_raw_levels(raw_digits):
    raw_x, _ = raw_digits
    with pytest.raises(ValueError, match="divide") as info:
        binarize(torch.as_tensor(raw_x[:5]))
    assert "by 16" in str(info.value)


def test_binarize_rejects_negative_values():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(torch.tensor([-0.1, 0.5]))


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5, 2.0])
def test_binarize_rejects_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        binarize(torch.tensor([0.2, 0.8]), threshold=threshold)


EXPECTED_LABELS = {"mixture": {0, 1, 2}, "moons": {0, 1}, "rings": {0, 1}, "spiral": {0, 1}}


def test_toy_names_are_documented():
    assert set(TOY_DATASETS) == set(EXPECTED_LABELS)


@pytest.mark.parametrize("name", sorted(EXPECTED_LABELS))
@pytest.mark.parametrize("n", [1, 301])
def test_make_toy_2d_shapes(name, n):
    x, labels = make_toy_2d(name, n=n)
    assert x.shape == (n, 2) and x.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert torch.isfinite(x).all()
    assert set(labels.tolist()) <= EXPECTED_LABELS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_LABELS))
def test_make_toy_2d_labels_and_seed(name):
    x, labels = make_toy_2d(name, n=600, seed=3)
    assert set(labels.tolist()) == EXPECTED_LABELS[name]
    x2, labels2 = make_toy_2d(name, n=600, seed=3)
    assert torch.equal(x, x2) and torch.equal(labels, labels2)
    x3, _ = make_toy_2d(name, n=600, seed=4)
    assert not torch.equal(x, x3)
    # the groups are genuinely different sets of points: their centres or spreads differ
    stats = [(x[labels == k].mean(0), x[labels == k].norm(dim=1).mean()) for k in EXPECTED_LABELS[name]]
    for i in range(len(stats)):
        for j in range(i + 1, len(stats)):
            centre_gap = (stats[i][0] - stats[j][0]).norm()
            radius_gap = (stats[i][1] - stats[j][1]).abs()
            assert max(centre_gap, radius_gap) > 0.3


def test_make_toy_2d_unknown_name_lists_names():
    with pytest.raises(ValueError) as info:
        make_toy_2d("spirals")
    msg = str(info.value)
    assert "spirals" in msg
    for name in EXPECTED_LABELS:
        assert name in msg


@pytest.mark.parametrize("kwargs, word", [
    ({"n": 0}, "n"), ({"n": -5}, "n"), ({"n": 2.5}, "n"), ({"noise": -0.1}, "noise"),
])
def test_make_toy_2d_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        make_toy_2d("moons", **kwargs)


def test_spiral_labels_inner_and_outer_half():
    x, labels = make_toy_2d("spiral", n=2000, noise=0.0, seed=1)
    r = x.norm(dim=1)
    # without noise, label 1 (the outer half of the arm) is exactly the points farther out
    assert r[labels == 1].min() > r[labels == 0].max()
    assert 0.3 < labels.float().mean() < 0.7
    # one arm: the angle turns steadily, always the same way, as the radius grows, over more than a turn
    order = torch.argsort(r)
    turned = np.unwrap(torch.atan2(x[order, 1], x[order, 0]).numpy())
    assert np.all(np.diff(turned) >= -1e-4)
    assert turned[-1] - turned[0] > 2 * np.pi
