"""The named sets on the real files (skipped where the files are not installed)."""

from pathlib import Path

import numpy as np
import pytest

from objrec.data import load_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("OBJREC_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def check_reference_split(ds):
    assert (len(ds.train), len(ds.val), len(ds.test)) == (50_000, 10_000, 10_000)
    assert ds.official_test and ds.image_shape == (28, 28)
    full = np.bincount(np.concatenate([ds.train.y, ds.val.y]), minlength=10)
    # validation is a stratified sixth of the official training split, per class
    assert np.all(np.abs(np.bincount(ds.val.y, minlength=10) - full / 6) <= 1)


def test_mnist_from_shared_data(shared_data):
    ds = load_dataset("mnist", data_dir=shared_data / "mnist", download=False, progress=False)
    check_reference_split(ds)
    assert ds.source == str((shared_data / "mnist").resolve())
    assert np.bincount(ds.test.y).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    mean, std = ds.channel_stats()
    assert abs(mean[0] - 0.1307) < 0.002 and abs(std[0] - 0.3081) < 0.002  # the well-known values


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_system_folder():
    ds = load_dataset("fashion-mnist", download=False, progress=False)
    check_reference_split(ds)
    assert ds.source == str(FASHION)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert np.bincount(ds.test.y).tolist() == [1000] * 10
