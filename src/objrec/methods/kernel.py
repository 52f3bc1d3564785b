"""An RBF-kernel classifier that scales to tens of thousands of images.

An exact kernel SVM (libsvm's ``SVC``) costs time quadratic in the number of training
images and evaluates every support vector at prediction: on 60,000 descriptors it runs
for tens of minutes. :class:`NystroemClassifier` instead maps the descriptors through a
Nystroem approximation of the RBF kernel (``n_components`` landmark images: an explicit
feature map whose inner products approximate the kernel) and fits a linear classifier
there, in chunks so that memory stays at about ``N * n_components * 4`` bytes:

- ``loss="squared"`` (default): one-vs-rest least-squares SVM, i.e. ridge regression on
  +-1 targets (``RidgeClassifier``), solved in closed form: the fastest and, with 4000
  landmarks, within about a point of the hinge-loss SVM;
- ``loss="hinge"``: ``LinearSVC`` (squared hinge), slower and about 2x the memory.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

_CHUNK = 5000


class NystroemClassifier(ClassifierMixin, BaseEstimator):
    """RBF kernel (Nystroem approximation) + linear classifier over (N, D) float features.

    Parameters
    ----------
    gamma : "scale" or float
        RBF width, ``exp(-gamma * ||a - b||^2)``; "scale" is 1 / (D * X.var()), as ``SVC``.
    n_components : int
        Landmarks (sampled training rows) of the Nystroem map.
    loss : {"squared", "hinge"}
        Least-squares SVM (ridge) or ``LinearSVC``.
    C : float
        Inverse regularisation (ridge ``alpha = 1 / (2 C)``).
    random_state : int
    """

    def __init__(self, gamma="scale", n_components=4000, loss="squared", C=50.0, random_state=0):
        self.gamma = gamma
        self.n_components = n_components
        self.loss = loss
        self.C = C
        self.random_state = random_state

    def _map(self, F: np.ndarray) -> np.ndarray:
        out = np.empty((len(F), self.nystroem_.components_.shape[0]), np.float32)
        for s in range(0, len(F), _CHUNK):
            out[s : s + _CHUNK] = self.nystroem_.transform(F[s : s + _CHUNK])
        return out

    def fit(self, F, y):
        """Fit on features F (N, D) and labels y (N,)."""
        from sklearn.kernel_approximation import Nystroem

        F, y = validate_data(self, F, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        F = F.astype(np.float32, copy=False)
        gamma = self.gamma
        if gamma == "scale":
            var = float(F.var())
            gamma = 1.0 / (F.shape[1] * var) if var > 0 else 1.0
        self.gamma_ = float(gamma)
        self.nystroem_ = Nystroem(
            gamma=self.gamma_,
            n_components=min(int(self.n_components), len(F)),
            random_state=self.random_state,
        ).fit(F)
        Z = self._map(F)
        if self.loss == "hinge":
            from sklearn.svm import LinearSVC

            self.linear_ = LinearSVC(C=self.C, dual="auto", random_state=self.random_state)
        else:
            from sklearn.linear_model import RidgeClassifier

            self.linear_ = RidgeClassifier(alpha=1.0 / (2.0 * self.C))
        self.linear_.fit(Z, y)
        self.classes_ = self.linear_.classes_
        return self

    def decision_function(self, F) -> np.ndarray:
        """Per-class scores (N, n_classes) ((N,) for two classes)."""
        check_is_fitted(self)
        F = validate_data(self, F, reset=False, dtype=[np.float32, np.float64])
        F = F.astype(np.float32, copy=False)
        return np.concatenate(
            [
                self.linear_.decision_function(self._map(F[s : s + _CHUNK]))
                for s in range(0, len(F), _CHUNK)
            ]
        )

    def predict(self, F) -> np.ndarray:
        """Labels (N,)."""
        scores = self.decision_function(F)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]
