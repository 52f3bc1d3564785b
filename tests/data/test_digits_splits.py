import numpy as np
import pytest

from objrec.data import load_dataset
from objrec.data.splits import stratified_indices, train_val_test_indices
from objrec.data.stats import channel_mean_std
from objrec.errors import DatasetError


def test_bundled_digits_contract():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.source == "scikit-learn"
    assert ds.classes == [str(i) for i in range(10)]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1257, 270, 270)
    for s in ds.splits.values():
        assert s.X.dtype == np.uint8 and s.X.shape[1:] == (8, 8)
        assert s.y.dtype == np.int64 and s.y.shape == (len(s.X),)
    assert ds.train.X.max() == 255 and ds.train.X.min() == 0
    # the three splits together are exactly sklearn's images (0..16 scaled to 0..255)
    d = load_digits()
    ref = np.round(d.images * 255 / 16).astype(np.uint8).reshape(len(d.images), -1)
    got = np.concatenate([s.X for s in ds.splits.values()]).reshape(len(d.images), -1)
    as_set = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert as_set(got) == as_set(ref)
    assert not ds.official_test


def test_digits_options_color_and_size():
    ds = load_dataset("digits", color="rgb", size=(16, 12))
    assert ds.train.X.shape[1:] == (16, 12, 3)
    assert ds.train.X.dtype == np.uint8
    mean, _ = ds.channel_stats()
    assert mean.shape == (3,) and np.allclose(mean, mean[0])


def test_split_is_deterministic_and_stratified():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, size=1000)
    a = train_val_test_indices(y, seed=3)
    b = train_val_test_indices(y.copy(), seed=3)
    c = train_val_test_indices(y, seed=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[2], c[2])
    tr, va, te = a
    assert len(tr) + len(va) + len(te) == 1000
    assert (len(va), len(te)) == (150, 150)
    assert len(np.intersect1d(tr, te)) == len(np.intersect1d(va, te)) == 0
    # each class is split in proportion (within one image of the exact share)
    n = np.bincount(y, minlength=7)
    for idx, frac in ((te, 0.15), (va, 0.15)):
        k = np.bincount(y[idx], minlength=7)
        assert np.all(np.abs(k - n * frac) <= 1.0 + 1e-9)


def test_split_exact_counts_and_pinned_values():
    y = np.repeat(np.arange(10), 6000)
    rest, val = stratified_indices(y, 10_000, seed=0)
    assert len(rest) == 50_000 and len(val) == 10_000
    # stratified: exactly 1000 per class; disjoint and covering
    np.testing.assert_array_equal(np.bincount(y[val]), np.full(10, 1000))
    assert len(np.union1d(rest, val)) == 60_000
    # PCG64 is stable across platforms: pinned picks catch any change of the algorithm
    assert stratified_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4, seed=0)[1].tolist() == [
        2,
        3,
        5,
        7,
    ]
    picks = stratified_indices(np.arange(20) % 4, 8, seed=7)[1]
    assert picks.tolist() == [6, 8, 9, 11, 13, 14, 16, 19]


def test_split_size_errors():
    y = np.arange(10) % 2
    with pytest.raises(DatasetError, match="fraction must lie"):
        train_val_test_indices(y, test_size=1.5)
    with pytest.raises(DatasetError, match="leaving none to train"):
        train_val_test_indices(y, val_size=5, test_size=5)


def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(20, 5, 6, 3), dtype=np.uint8)
    mean, std = channel_mean_std(X)
    ref = X.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(0), rtol=1e-10)
    m1, _ = channel_mean_std(X[..., 0])
    assert m1.shape == (1,) and np.isclose(m1[0], mean[0])


def test_unknown_name_is_clear():
    with pytest.raises(DatasetError, match=r"unknown dataset 'nope'.*mnist"):
        load_dataset("nope")
