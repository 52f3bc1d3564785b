"""The contract every objrec estimator follows, on top of scikit-learn's.

``fit`` validates the images, sets ``classes_`` and ``input_shape_`` (the (H, W[, C]) the
model was trained on) and returns ``self``; prediction checks that new images have that
shape, so a mismatch is a clear error rather than a silent wrong answer.

Classic methods also have an internal working size (:class:`WorkingSizeMixin`,
:func:`working_shape`): they resize what they are given to at most a few tens of pixels a
side, so that their time and memory stay bounded on photo-sized input.
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


def working_shape(shape, size) -> tuple[int, int]:
    """The (height, width) a method works at, for input images of ``shape`` (H, W[, C]).

    ``size``:

    - ``None``: the input size, unchanged;
    - an int ``s``: the longest side at most ``s`` pixels, the aspect ratio kept (each side
      rounded, at least 1); images already that small are left as they are (no upscaling);
    - ``(h, w)``: exactly that size, shrinking or enlarging (for descriptors that need a
      fixed grid).
    """
    h, w = int(shape[0]), int(shape[1])
    if size is None:
        return h, w
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        s = int(size)
        if s < 1:
            raise InputError(f"size={size!r}: give the longest side in pixels (>= 1), or None")
        if max(h, w) <= s:
            return h, w
        scale = s / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    try:
        sh, sw = (int(v) for v in size) if not isinstance(size, str) else (0, 0)
    except (TypeError, ValueError):
        sh = sw = 0
    if sh < 1 or sw < 1:
        raise InputError(
            f"size={size!r}: give an int (longest side in pixels), (height, width), or None"
        )
    return sh, sw


class WorkingSizeMixin:
    """Internal working size of a classic method.

    ``fit`` calls :meth:`_set_working_shape` once (after ``_check_fit``), and every path
    that looks at pixels (fit, predict, decision_function, predict_proba, the report
    helpers) passes its images through :meth:`to_working_size`, which resizes them with
    :func:`objrec.data.transforms.resize_batch` (the project's one resize filter) when they
    differ from ``work_shape_``. ``input_shape_`` stays the size the caller gives, so the
    preprocessing recorded with the model does not change.
    """

    def _set_working_shape(self, X: np.ndarray, size) -> tuple[int, int]:
        self.work_shape_ = working_shape(X.shape[1:3], size)
        return self.work_shape_

    def to_working_size(self, X: np.ndarray) -> np.ndarray:
        """Images (N, H, W[, C]) uint8 resized to the fitted ``work_shape_`` (unchanged when
        they already have it; models saved before working sizes existed keep their input)."""
        shape = tuple(getattr(self, "work_shape_", None) or X.shape[1:3])
        if tuple(X.shape[1:3]) == shape:
            return X
        from objrec.data.transforms import resize_batch

        if X.ndim == 4 and X.shape[-1] == 1:  # one channel: resize the plane, keep the axis
            return resize_batch(X[..., 0], shape)[..., None]
        return resize_batch(X, shape)
