"""Eigenfaces (PCA) and Fisherfaces (PCA then LDA) with nearest-template or
nearest-neighbour classification, and an open-set "unknown" answer.

Images larger than the working size (``size``: at most 32 pixels a side by default) are
shrunk first, with the project's resize filter, in fit and predict alike: PCA then costs
N x (32 x 32 at most) pixels whatever the photos' resolution (scikit-learn's "auto" solver
uses a randomized SVD when few components are kept from many images and pixels).

An image x (flattened, pixels scaled to 0..1) is represented by its weights
``w = V^T (x - mean)`` on the leading principal components V; it is approximately the
mean plus ``V w``. Classification compares weight vectors: to the mean weight vector
of each class ("template") or to every training image ("knn").

The module-level helpers (:func:`mean_image`, :func:`component_images`,
:func:`reconstruct`, :func:`explained_variance`) return plain arrays for plotting.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.metaestimators import available_if

from objrec.errors import InputError
from objrec.methods import register_method
from objrec.methods.base import ImageClassifier, WorkingSizeMixin

CLASSIFY = ("template", "knn")
UNKNOWN_BY = ("distance", "reconstruction")


class EigenClassifier(WorkingSizeMixin, ImageClassifier):
    """PCA (optionally + LDA) on pixels, classified in weight space.

    Parameters
    ----------
    n_components : int or float or None
        Principal components kept: an int, a fraction of variance in (0, 1), or None for
        min(n_images, n_pixels). With ``fisher`` the count is capped at
        n_images - n_classes, which keeps the within-class scatter non-singular; the
        ``fisher`` method uses 80 rather than that textbook maximum, which leaves LDA
        fitting noise (ORL faces 5/5 split: 41.5% with n_images - n_classes = 160
        components, 93% with 80).
    whiten : bool
        Divide each weight by its component's standard deviation.
    fisher : bool
        Follow PCA with linear discriminant analysis (at most n_classes - 1 axes).
    classify : {"template", "knn"}
        Nearest class template (mean weight vector) or k nearest training images.
    n_neighbors : int or "auto"
        k for "knn"; "auto": 5, or 1 when a class has fewer than 10 training images
        (faces: 1-NN scores 89% on ORL 5/5 where 5-NN scores 83%).
    metric : str
        Distance in weight space ("euclidean", "cosine", "manhattan" ...).
    unknown_threshold : float or None
        Open set: answer ``unknown_label`` when the nearest distance (``unknown_by=
        "distance"``) or the reconstruction error (``"reconstruction"``: root mean squared
        pixel error on the 0..1 scale) exceeds it. None: always answer a known class.
    unknown_by : {"distance", "reconstruction"}
    unknown_label : int or str
        The answer for unknown images (-1 by default; it is not one of ``classes_``).
    svd_solver : str
        PCA solver ("auto", "full", "randomized").
    size : int, (height, width) or None
        Working size (``work_shape_``): an int is the longest side in pixels (aspect kept,
        smaller images untouched), (h, w) an exact size, None the input size. The default
        32 leaves 28x28 digits as they are and brings ORL's 112x92 faces to 32x26 (ORL 5/5:
        eigen 89.0% at 32 as at the full size, fisher 93.0% as at the full size; on
        photos, 32 pixels scored higher than 64 or the full size). The plotting helpers
        return images at this size.
    random_state : int
    """

    def __init__(
        self,
        n_components=64,
        *,
        whiten: bool = False,
        fisher: bool = False,
        classify: str = "knn",
        n_neighbors="auto",
        metric: str = "euclidean",
        unknown_threshold: float | None = None,
        unknown_by: str = "distance",
        unknown_label=-1,
        svd_solver: str = "auto",
        size=32,
        n_jobs: int | None = None,
        random_state: int | None = 0,
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.fisher = fisher
        self.classify = classify
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.unknown_threshold = unknown_threshold
        self.unknown_by = unknown_by
        self.unknown_label = unknown_label
        self.svd_solver = svd_solver
        self.size = size
        self.n_jobs = n_jobs
        self.random_state = random_state

    @property
    def method_name(self) -> str:
        """ "fisher" with LDA, "eigen" without."""
        return "fisher" if self.fisher else "eigen"

    def _check_predict(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classes_")
        return super()._check_predict(X)

    @staticmethod
    def _flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1).astype(np.float32) / np.float32(255)

    def _n_components(self, n: int, d: int, k: int):
        nc = self.n_components
        limit = min(n, d)
        if nc is None:
            return min(n - k, d) if self.fisher else limit
        if self.fisher and isinstance(nc, int | np.integer) and not isinstance(nc, bool):
            limit = max(1, min(limit, n - k))
            if 1 <= nc and nc > limit:
                return limit
        if isinstance(nc, float) and 0 < nc < 1:
            return nc
        if isinstance(nc, bool) or not isinstance(nc, int | np.integer) or nc < 1:
            raise InputError(
                f"n_components={nc!r}: give a positive int, a variance fraction in (0, 1), or None"
            )
        if nc > limit:
            raise InputError(
                f"n_components={nc} is more than min(n_images, n_pixels) = min({n}, {d}); "
                f"choose n_components <= {limit} or train on more images"
            )
        return int(nc)

    def fit(self, X, y):
        """Fit PCA (and LDA) on images X (N, H, W[, C]) and store the class templates."""
        from sklearn.decomposition import PCA
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        if self.classify not in CLASSIFY:
            raise InputError(f"classify must be one of {CLASSIFY}, got {self.classify!r}")
        if self.unknown_by not in UNKNOWN_BY:
            raise InputError(f"unknown_by must be one of {UNKNOWN_BY}, got {self.unknown_by!r}")
        X, y = self._check_fit(X, y)
        self._set_working_shape(X, self.size)
        A = self._flat(self.to_working_size(X))
        nc = self._n_components(len(A), A.shape[1], len(self.classes_))
        self.pca_ = PCA(
            n_components=nc,
            whiten=self.whiten,
            svd_solver=self.svd_solver,
            random_state=self.random_state,
        ).fit(A)
        W = self.pca_.transform(A)
        self.lda_ = None
        if self.fisher:
            self.lda_ = LinearDiscriminantAnalysis(solver="svd").fit(W, y)
            W = self.lda_.transform(W)
        W = W.astype(np.float32)
        self.templates_ = np.stack([W[y == c].mean(axis=0) for c in self.classes_])
        if self.classify == "knn":
            from sklearn.neighbors import KNeighborsClassifier

            k = self.n_neighbors
            if k == "auto":
                k = 5 if np.bincount(np.searchsorted(self.classes_, y)).min() >= 10 else 1
            k = min(int(k), len(W))
            self.knn_ = KNeighborsClassifier(
                n_neighbors=k, metric=self.metric, weights="distance", n_jobs=self.n_jobs
            ).fit(W, y)
        else:
            self.knn_ = None
        return self

    # -- projections ----------------------------------------------------------------------
    def _work_flat(self, X) -> np.ndarray:
        """Checked images X at the input size -> (N, working pixels) float32 in 0..1."""
        return self._flat(self.to_working_size(self._check_predict(X)))

    def project(self, X) -> np.ndarray:
        """Weights (N, n_components) of images X in the eigen (or Fisher) space, float32."""
        A = self._work_flat(X)
        W = self.pca_.transform(A)
        if self.lda_ is not None:
            W = self.lda_.transform(W)
        return W.astype(np.float32)

    def reconstruction_error(self, X) -> np.ndarray:
        """Root mean squared pixel error (N,) on the 0..1 scale of the PCA reconstruction
        (at the working size)."""
        A = self._work_flat(X)
        R = self.pca_.inverse_transform(self.pca_.transform(A))
        return np.sqrt(((A - R) ** 2).mean(axis=1))

    def _template_distances(self, W: np.ndarray) -> np.ndarray:
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(W, self.templates_, metric=self.metric)

    def nearest_distance(self, X) -> np.ndarray:
        """Distance (N,) in weight space to the nearest template ("template") or training
        image ("knn"): what ``unknown_threshold`` is compared with for ``unknown_by="distance"``."""
        W = self.project(X)
        if self.knn_ is not None:
            d, _ = self.knn_.kneighbors(W, n_neighbors=1)
            return d[:, 0]
        return self._template_distances(W).min(axis=1)

    # -- prediction -----------------------------------------------------------------------
    def _known_predict(self, W: np.ndarray) -> np.ndarray:
        if self.knn_ is not None:
            return self.knn_.predict(W)
        return self.classes_[self._template_distances(W).argmin(axis=1)]

    def _unknown_mask(self, X) -> np.ndarray | None:
        if self.unknown_threshold is None:
            return None
        if self.unknown_by == "distance":
            score = self.nearest_distance(X)
        else:
            score = self.reconstruction_error(X)
        return score > self.unknown_threshold

    def predict(self, X) -> np.ndarray:
        """Labels (N,) of images X; ``unknown_label`` where the open-set test rejects them."""
        pred = self._known_predict(self.project(X))
        mask = self._unknown_mask(X)
        if mask is not None and mask.any():
            out_dtype = np.result_type(pred.dtype, np.asarray(self.unknown_label).dtype)
            pred = pred.astype(out_dtype)
            pred[mask] = self.unknown_label
        return pred

    def decision_function(self, X) -> np.ndarray:
        """Negative distance (N, n_classes) to each class template: larger is more likely."""
        return -self._template_distances(self.project(X))

    def _has_knn(self):
        return self.classify == "knn"

    @available_if(_has_knn)
    def predict_proba(self, X) -> np.ndarray:
        """Distance-weighted vote of the k neighbours (N, n_classes); only for
        ``classify="knn"`` (templates give distances: see ``decision_function``)."""
        W = self.project(X)
        return self.knn_.predict_proba(W)


# -- helpers for plots: plain arrays, image-shaped ----------------------------------------
def _image_shape(est: EigenClassifier) -> tuple[int, ...]:
    """(h, w[, C]) of the working size the components live at."""
    work = tuple(getattr(est, "work_shape_", None) or est.input_shape_[:2])
    return (*work, *est.input_shape_[2:])


def mean_image(est: EigenClassifier) -> np.ndarray:
    """The mean training image, (h, w[, C]) float32 in 0..1 at the working size."""
    return est.pca_.mean_.reshape(_image_shape(est)).astype(np.float32)


def component_images(est: EigenClassifier, k: int | None = None) -> np.ndarray:
    """The first ``k`` principal components ("eigenfaces") as images, (k, h, w[, C]) float32
    at the working size.

    Each has unit L2 norm over the pixels, values of both signs: plot with a diverging
    colour map, or rescale each to 0..1.
    """
    comps = est.pca_.components_[:k]
    return comps.reshape((len(comps), *_image_shape(est))).astype(np.float32)


def fisher_images(est: EigenClassifier, k: int | None = None) -> np.ndarray:
    """The first ``k`` discriminant axes mapped back to pixels ("Fisherfaces"),
    (k, h, w[, C]) float32 at the working size, each scaled to unit L2 norm. Needs
    ``fisher=True``."""
    if est.lda_ is None:
        raise InputError("fisher_images needs a model fitted with fisher=True (method 'fisher')")
    axes = est.lda_.scalings_[:, : est.lda_._max_components].T  # (k, n_pca)
    if est.pca_.whiten:
        axes = axes / np.sqrt(est.pca_.explained_variance_)
    pix = axes @ est.pca_.components_  # (k, D)
    pix = pix / np.linalg.norm(pix, axis=1, keepdims=True)
    pix = pix[:k]
    return pix.reshape((len(pix), *_image_shape(est))).astype(np.float32)


def reconstruct(est: EigenClassifier, X, k: int | None = None) -> np.ndarray:
    """Images X (N, H, W[, C]) rebuilt from the mean and their first ``k`` weights.

    Returns
    -------
    (N, h, w[, C]) float32 in 0..1 units (not clipped) at the working size:
    ``mean + sum_{i<k} w_i v_i``.
    """
    pca = est.pca_
    A = est._work_flat(X)
    k = pca.n_components_ if k is None else int(k)
    if not 0 <= k <= pca.n_components_:
        raise InputError(f"k={k}: the model has {pca.n_components_} components")
    V = pca.components_[:k]
    W = (A - pca.mean_) @ V.T
    R = pca.mean_ + W @ V
    return R.reshape((len(A), *_image_shape(est))).astype(np.float32)


def explained_variance(est: EigenClassifier) -> np.ndarray:
    """Fraction of the pixel variance (n_components,) each component explains (sums to <= 1)."""
    return np.asarray(est.pca_.explained_variance_ratio_, dtype=np.float64)


@register_method(
    "eigen",
    approach="eigen",
    description="eigenfaces: 64 principal components, nearest neighbours (5, or 1 with few images per class) in weight space",
)
def make_eigen(**params) -> EigenClassifier:
    return EigenClassifier(**params)


@register_method(
    "fisher",
    approach="eigen",
    description="Fisherfaces: PCA (80) then LDA, nearest class mean by cosine distance",
)
def make_fisher(**params) -> EigenClassifier:
    params.setdefault("n_components", 80)
    params.setdefault("classify", "template")
    params.setdefault("metric", "cosine")
    return EigenClassifier(fisher=True, **params)
