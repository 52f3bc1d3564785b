"""A per-pixel random forest on a filter bank (the TextonBoost idea, without boosting).

Features of every pixel, from the image in CIE Lab: the three channels, and at each
scale sigma in ``scales`` (pixels) the Gaussian-smoothed L, a, b, the gradient
magnitude, the Laplacian of Gaussian and the difference of Gaussians (sigma, 2 sigma)
of L: ``3 + 6 * len(scales)`` features. Training samples up to ``pixels_per_image``
pixels of each image, half of them from objects when there are enough; the forest's
probabilities are then corrected from the sampled label frequencies back to the
training masks' pixel frequencies (Bayes' rule), so over-sampling objects does not make
the forest over-predict them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from objrec.errors import ModelFileError
from objrec.segmentation.base import (
    IGNORE,
    Segmenter,
    _number,
    _optional,
    _whole,
    check_images,
    check_masks,
)

#: the forest's file in the model folder: skops, {"forest_": RandomForestClassifier,
#: "prior_ratio_": float32 (L,)}
FOREST_NAME = "forest.skops"


def filter_bank(images: np.ndarray, scales=(1.0, 2.0, 4.0, 8.0)) -> np.ndarray:
    """Features float32 (N, H, W, 3 + 6 * len(scales)) of uint8 RGB images (N, H, W, 3)."""
    from scipy import ndimage
    from skimage.color import rgb2lab

    N, H, W, _ = images.shape
    F = np.empty((N, H, W, 3 + 6 * len(scales)), np.float32)
    for i in range(N):
        lab = rgb2lab(images[i]).astype(np.float32)
        F[i, ..., :3] = lab
        L = lab[..., 0]
        k = 3
        for s in scales:
            for ch in range(3):
                F[i, ..., k] = ndimage.gaussian_filter(lab[..., ch], s)
                k += 1
            F[i, ..., k] = ndimage.gaussian_gradient_magnitude(L, s)
            F[i, ..., k + 1] = ndimage.gaussian_laplace(L, s) * s * s
            F[i, ..., k + 2] = F[i, ..., k - 3] - ndimage.gaussian_filter(L, 2 * s)
            k += 3
    return F


class FilterBankForest(Segmenter):
    """Random forest over :func:`filter_bank` features, one prediction per pixel."""

    method = "forest"
    _state_attributes = ("forest_", "prior_ratio_")
    _state_file = FOREST_NAME
    _param_rules: ClassVar[dict] = {
        "n_estimators": ("a whole number >= 1", _whole(1)),
        "max_depth": ("a whole number >= 1 or null", _optional(_whole(1))),
        "min_samples_leaf": ("a whole number >= 1", _whole(1)),
        "pixels_per_image": ("a whole number >= 2", _whole(2)),
        "scales": (
            "a list of positive numbers (pixels)",
            lambda v: isinstance(v, list) and bool(v) and all(map(_number(0, strict=True), v)),
        ),
        "n_labels": ("a whole number >= 2 or null", _optional(_whole(2))),
        "n_jobs": ("a whole number", _whole(-(2**31))),
        "seed": ("a whole number >= 0", _whole(0)),
    }

    def __init__(
        self,
        n_estimators: int = 30,
        max_depth: int | None = 16,
        min_samples_leaf: int = 3,
        pixels_per_image: int = 300,
        scales=(1.0, 2.0, 4.0, 8.0),
        n_labels: int | None = None,
        n_jobs: int = -1,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.pixels_per_image = pixels_per_image
        self.scales = tuple(float(s) for s in scales)
        self.n_labels = n_labels
        self.n_jobs = n_jobs
        self.seed = seed

    def _sample(self, rng, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, row, col) indices of the training pixels."""
        out = []
        k = self.pixels_per_image
        for i in range(len(Y)):
            y = Y[i].ravel()
            fg = np.flatnonzero((y > 0) & (y != IGNORE))
            bg = np.flatnonzero(y == 0)
            n_fg = min(len(fg), k // 2)
            pick = np.concatenate(
                [
                    rng.choice(fg, n_fg, replace=False) if n_fg else fg[:0],
                    rng.choice(bg, min(len(bg), k - n_fg), replace=False),
                ]
            )
            out.append(np.stack([np.full(len(pick), i), *np.unravel_index(pick, Y.shape[1:])]))
        return tuple(np.concatenate(out, 1))

    def fit(self, images, masks, *, batch: int = 256) -> FilterBankForest:
        """Fit on uint8 images (N, H, W, 3) and label masks (N, H, W), 0 = background;
        pixels labelled :data:`~objrec.segmentation.base.IGNORE` are never sampled."""
        from sklearn.ensemble import RandomForestClassifier

        X = check_images(images)
        Y, self.n_labels_ = check_masks(X, masks, self.n_labels)
        self._fitted_on(X)
        rng = np.random.default_rng(self.seed)
        idx = self._sample(rng, Y)
        feats = []
        for s in range(0, len(X), batch):
            F = filter_bank(X[s : s + batch], self.scales)
            sel = (idx[0] >= s) & (idx[0] < s + batch)
            feats.append(F[idx[0][sel] - s, idx[1][sel], idx[2][sel]])
        feats = np.concatenate(feats)
        labels = Y[idx]
        self.forest_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        ).fit(feats, labels)
        full = np.bincount(Y.ravel(), minlength=self.n_labels_)[: self.n_labels_].astype(np.float64)
        sampled = np.bincount(labels, minlength=self.n_labels_).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(sampled > 0, (full / full.sum()) / (sampled / sampled.sum()), 0.0)
        self.prior_ratio_ = ratio.astype(np.float32)
        return self

    def predict_proba(self, images, *, batch: int = 64) -> np.ndarray:
        """Label probabilities float32 (N, L, H, W)."""
        self._check_fitted()
        X = check_images(images)
        N, H, W, _ = X.shape
        out = np.zeros((N, self.n_labels_, H, W), np.float32)
        cols = self.forest_.classes_.astype(int)
        for s in range(0, N, batch):
            F = filter_bank(X[s : s + batch], self.scales)
            P = self.forest_.predict_proba(F.reshape(-1, F.shape[-1])).astype(np.float32)
            P = P.reshape(len(F), H, W, -1).transpose(0, 3, 1, 2)
            out[s : s + batch, cols] = P
        out *= self.prior_ratio_[None, :, None, None]
        out /= np.maximum(out.sum(1, keepdims=True), 1e-12)
        return out

    # ----------------------------------------------------------------- model file
    def _check_state(self, folder, meta, file) -> None:
        """The forest's labels, features and prior correction fit the metadata."""
        from sklearn.ensemble import RandomForestClassifier

        from objrec.metadata import META_NAME

        forest, ratio = self.forest_, self.prior_ratio_
        if not isinstance(forest, RandomForestClassifier) or not isinstance(ratio, np.ndarray):
            raise ModelFileError(f"{file}: not a forest segmenter's file (forest_, prior_ratio_)")
        where = Path(folder) / META_NAME
        L = self.n_labels_
        labels = np.asarray(getattr(forest, "classes_", []))
        if (
            labels.ndim != 1
            or not np.issubdtype(labels.dtype, np.integer)
            or labels.min(initial=0) < 0
            or labels.max(initial=0) >= L
            or ratio.shape != (L,)
        ):
            top = int(labels.max(initial=0)) if np.issubdtype(labels.dtype, np.integer) else "?"
            raise ModelFileError(
                f"{where}: field 'classes' holds {L} labels, but the forest in {file.name} "
                f"predicts labels up to {top} with {ratio.shape[0] if ratio.ndim else 0} "
                "prior weights; the model file was edited"
            )
        if not (np.isfinite(ratio).all() and (ratio >= 0).all()):
            raise ModelFileError(f"{file}: prior_ratio_ must be finite and >= 0")
        features = 3 + 6 * len(self.scales)
        if getattr(forest, "n_features_in_", None) != features:
            raise ModelFileError(
                f"{where}: field 'params.scales' gives {features} features per pixel, the "
                f"forest takes {getattr(forest, 'n_features_in_', '?')}; the model file was edited"
            )
        self.prior_ratio_ = ratio.astype(np.float32)
