"""Fixtures for the serving tests: small fitted models following objrec's estimator contracts.

``TinyCNN`` follows the CNNClassifier contract (``model_``, ``preprocessing_``,
``to_tensor``, ``classes_``, ``input_shape_``); ``PixelsLogReg`` is a classic pipeline
(raw pixels + logistic regression) exposing its scikit-learn part as ``clf_``.
"""

from __future__ import annotations

import numpy as np
import pytest

from objrec.methods.base import ImageClassifier


class TinyCNN(ImageClassifier):
    def __init__(self, steps: int = 25, seed: int = 0):
        self.steps = steps
        self.seed = seed

    def to_tensor(self, X):
        import torch

        X = np.asarray(X, np.float32) / 255.0
        X = X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2)
        mean = np.asarray(self.preprocessing_["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.preprocessing_["std"], np.float32).reshape(1, -1, 1, 1)
        return torch.from_numpy(np.ascontiguousarray((X - mean) / std))

    def fit(self, X, y):
        import torch
        from torch import nn

        X, y = self._check_fit(X, y)
        c = 1 if X.ndim == 3 else X.shape[-1]
        axes = (0, 1, 2)  # per channel: over images, rows, columns
        self.preprocessing_ = {
            "mean": (X / 255.0).mean(axis=axes).reshape(-1).tolist(),
            "std": ((X / 255.0).std(axis=axes).reshape(-1) + 1e-3).tolist(),
            "channels": c,
            "input_size": list(X.shape[1:3]),
        }
        torch.manual_seed(self.seed)
        self.model_ = nn.Sequential(
            nn.Conv2d(c, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * (X.shape[1] // 2) * (X.shape[2] // 2), len(self.classes_)),
        )
        xt = self.to_tensor(X)
        yt = torch.as_tensor(np.searchsorted(self.classes_, y))
        opt = torch.optim.Adam(self.model_.parameters(), lr=1e-2)
        for _ in range(self.steps):
            opt.zero_grad()
            nn.functional.cross_entropy(self.model_(xt), yt).backward()
            opt.step()
        self.model_.eval()
        return self

    def predict_proba(self, X):
        import torch

        X = self._check_predict(X)
        with torch.no_grad():
            return torch.softmax(self.model_(self.to_tensor(X)), 1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


class PixelsLogReg(ImageClassifier):
    def __init__(self, features: str = "pixels", C: float = 1.0):
        self.features = features
        self.C = C

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        X, y = self._check_fit(X, y)
        self.clf_ = LogisticRegression(C=self.C, max_iter=500).fit(X.reshape(len(X), -1) / 255.0, y)
        return self

    def predict_proba(self, X):
        X = self._check_predict(X)
        return self.clf_.predict_proba(X.reshape(len(X), -1) / 255.0)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


@pytest.fixture(scope="session")
def digits_16():
    """Digits upscaled to 16x16: 300 train, 100 test, uint8, labels 0..9."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    X = np.stack([cv2.resize(x, (16, 16), interpolation=cv2.INTER_LINEAR) for x in X])
    y = d.target.astype(np.int64)
    return X[:300], y[:300], X[300:400], y[300:400]


@pytest.fixture(scope="session")
def tiny_cnn(digits_16):
    X, y, _, _ = digits_16
    return TinyCNN().fit(X, y)


@pytest.fixture(scope="session")
def pixels_logreg(digits_16):
    X, y, _, _ = digits_16
    return PixelsLogReg().fit(X, y)
