"""Shared fixtures: small real data (scikit-learn's bundled digits) and paths to ../shared."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def digits_small():
    """600 train / 300 test 8x8 digits as uint8 (N, 8, 8) in 0..255, int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    y = d.target.astype(np.int64)
    return X[:600], y[:600], X[600:900], y[600:900]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA
