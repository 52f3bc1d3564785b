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

import json
from pathlib import Path

import numpy as np

from objrec.errors import ModelFileError
from objrec.segmentation.base import IGNORE, Segmenter, check_images, check_masks


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

    def params(self) -> dict:
        return {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf,
            "pixels_per_image": self.pixels_per_image,
            "scales": list(self.scales),
            "n_labels": self.n_labels,
            "seed": self.seed,
        }

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

    def save(self, folder) -> Path:
        """Write ``segmenter.json`` and ``forest.skops`` into ``folder``."""
        import skops.io as sio

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(self.forest_, folder / "forest.skops")
        meta = {
            "method": self.method,
            "params": self.params(),
            "n_labels": self.n_labels_,
            "prior_ratio": self.prior_ratio_.tolist(),
        }
        (folder / "segmenter.json").write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder) -> FilterBankForest:
        from objrec.artifact import load_skops  # size limits and the one type allow-list

        folder = Path(folder)
        try:
            meta = json.loads((folder / "segmenter.json").read_text())
        except Exception as e:
            raise ModelFileError(f"{folder}: cannot load the forest segmenter ({e})") from e
        forest = load_skops(folder / "forest.skops")
        est = cls(**meta["params"])
        est.forest_, est.n_labels_ = forest, int(meta["n_labels"])
        est.prior_ratio_ = np.asarray(meta["prior_ratio"], np.float32)
        return est
