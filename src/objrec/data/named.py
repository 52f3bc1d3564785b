"""Datasets known by name: where their files are looked for and how they are read.

``digits`` is scikit-learn's bundled 8x8 set (needs nothing). ``mnist``, ``fashion-mnist``
and ``kmnist`` are the four-file IDX sets (60,000 train / 10,000 official test, 28x28);
``orl-faces`` is the AT&T face database (40 people x 10 grey 92x112 PGM images).
"""

from __future__ import annotations

import numpy as np

from objrec.data.dataset import Dataset, from_pool


def load_digits(*, seed: int = 0, val_size=None, test_size=None) -> Dataset:
    """scikit-learn's 1,797 8x8 digits, scaled from 0..16 to uint8 0..255, split 70/15/15."""
    from sklearn.datasets import load_digits as _sk_load_digits

    d = _sk_load_digits()
    X = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return from_pool(
        "digits",
        [str(c) for c in d.target_names],
        X,
        d.target,
        source="scikit-learn",
        seed=seed,
        val_size=val_size,
        test_size=test_size,
    )
