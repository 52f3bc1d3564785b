"""The contract every objrec estimator follows, on top of scikit-learn's.

``fit`` validates the images, sets ``classes_`` and ``input_shape_`` (the (H, W[, C]) the
model was trained on) and returns ``self``; prediction checks that new images have that
shape, so a mismatch is a clear error rather than a silent wrong answer.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from objrec.errors import InputError
from objrec.validation import check_fit_input, check_images


class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Base class: shared input checks for estimators over uint8 images (N, H, W[, C])."""

    def _check_fit(self, X, y, *, min_size=None) -> tuple[np.ndarray, np.ndarray]:
        X, y = check_fit_input(X, y, min_size=min_size)
        self.classes_ = np.unique(y)
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        return X, y

    def _check_predict(self, X) -> np.ndarray:
        X = check_images(X)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise InputError(
                f"X: images are {X.shape[1:]}, the model was trained on {self.input_shape_}; "
                "resize them (objrec predict does this with the model's own preprocessing)"
            )
        return X
