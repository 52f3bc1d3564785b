"""Features + classifier: a hand-crafted descriptor fed to a standard classifier.

Descriptors: raw pixels (the naive baseline), HOG (multi-cell-size concatenation by
default) and dense SIFT. Classifiers: linear SVM, RBF SVM, k nearest neighbours,
logistic regression, random forest. ``make_method("hog-svm")`` etc. build them by name.

The RBF SVM is exact (libsvm's ``SVC``) up to ``max_exact_samples`` training images;
above that the kernel is approximated by a Nystroem feature map of ``n_components``
landmarks followed by a linear least-squares SVM (:class:`~objrec.methods.kernel.
NystroemClassifier`), which keeps fits on 60,000 images within minutes and a few GB (an
exact SVC grows quadratically in time with the number of images).

Every method works at an internal size (``size``, default "auto": raw pixels at most 32
pixels a side, HOG and SIFT at most 64): larger images are shrunk with the project's resize
filter in fit and predict, so that time and memory grow with the number of images, not
with their resolution; 28x28 digits and smaller are used as they are. HOG cells and SIFT
grids scale with the image (:func:`auto_hog_cells`, :func:`auto_sift_grid`), so the
descriptor length stays about the same at any size (1620 values of HOG on 28x28, 2160 on
64x49).

``hog-svm`` is the recommended default: HOG at two cell sizes and an RBF-kernel SVM
(``kernel="rbf"``); it equals ``hog-rbf``, and ``make_method("hog-svm", kernel="linear")``
gives the linear SVM. ``pixels-svm`` and ``sift-svm`` are linear.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.utils.metaestimators import available_if

from objrec.errors import InputError
from objrec.features.hog import hog_multi
from objrec.features.pixels import pixels
from objrec.features.sift import dense_sift
from objrec.methods import register_method
from objrec.methods.base import ImageClassifier, WorkingSizeMixin
from objrec.methods.parallel import map_chunks

FEATURES = ("pixels", "hog", "sift")
# Longest side in pixels each descriptor works at when ``size="auto"``.
AUTO_SIZE = {"pixels": 32, "hog": 64, "sift": 64}
# Pixels per extraction chunk: bounds the temporary memory (HOG: ~100 bytes per pixel).
_CHUNK_PIXELS = 2_000_000
CLASSIFIERS = ("svm", "rbf", "knn", "logreg", "rf")


def auto_hog_cells(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """Default HOG (pixels_per_cell, cells_per_block) pairs for images of this size.

    Two cell sizes, about a seventh and a quarter of the shorter side, each with 2x2-cell
    blocks: (4, 2) and (7, 2) on 28x28 images (1296 + 324 values); never smaller than 2
    pixels. On 8x8 images this gives (2, 2) only, plus (4, 1): one histogram per quadrant.
    """
    s = min(height, width)
    small, large = max(2, round(s / 7)), max(2, round(s / 4))
    cells = [(small, 2)]
    if large != small and s // large >= 2:
        cells.append((large, 2))
    elif s // (2 * small) >= 1:
        cells.append((2 * small, 1))
    return tuple(cells)


def auto_sift_grid(height: int, width: int) -> tuple[int, int]:
    """Default dense-SIFT (patch_size, step) in pixels: patches of about 3/7 of the shorter
    side, 1/7 of it apart (at least 4 and 2 pixels): (12, 4) on 28x28 images, a 5x5 grid of
    descriptors; (4, 2) on 8x8, a 3x3 grid.
    """
    s = min(height, width)
    patch = max(4, round(s * 3 / 7))
    step = max(2, round(s / 7))
    return patch, step


def _hog_chunk(X, cells, orientations, block_norm, transform_sqrt):
    return hog_multi(
        X,
        cells=cells,
        orientations=orientations,
        block_norm=block_norm,
        transform_sqrt=transform_sqrt,
    )


def _sift_chunk(X, patch_size, step):
    D = dense_sift(X, patch_size=patch_size, step=step)  # (n, K, 128), norms about 512
    return (D / np.float32(512)).reshape(len(D), -1)


def _pixels_chunk(X):
    return pixels(X)


class FeatureClassifier(WorkingSizeMixin, ImageClassifier):
    """A descriptor (pixels, HOG or dense SIFT) followed by a classifier.

    Parameters
    ----------
    features : {"pixels", "hog", "sift"}
    size : "auto", int, (height, width) or None
        Working size: images are resized to it in fit and predict (``work_shape_``).
        An int is the longest side in pixels (aspect kept, smaller images untouched);
        (h, w) an exact size; None the input size. "auto": :data:`AUTO_SIZE` (32 pixels
        for raw pixels, 64 for HOG and SIFT).
    classifier : {"svm", "rbf", "knn", "logreg", "rf"}
        "svm": SVM with the given ``kernel``; "rbf": RBF-kernel SVM (``kernel`` ignored),
        exact or Nystroem-approximated (see ``max_exact_samples``); "knn": k nearest
        neighbours; "logreg": multinomial logistic regression; "rf": random forest.
    kernel : {"linear", "rbf"}
        Kernel of the "svm" classifier: ``LinearSVC`` or the RBF SVM.
    hog_cells : "auto" or sequence of (pixels_per_cell, cells_per_block)
        HOG cell sizes to concatenate; "auto" scales them to the image size
        (:func:`auto_hog_cells`: (4, 2) + (7, 2) on 28x28, (2, 2) + (4, 1) on 8x8).
    orientations, block_norm, transform_sqrt
        HOG options, as in :func:`skimage.feature.hog`; the square root of the pixels
        (gamma compression) is on by default: +0.4 points on Fashion-MNIST.
    sift_patch, sift_step : "auto" or int
        Dense SIFT patch side and grid stride in pixels ("auto": :func:`auto_sift_grid`).
    C : float or None
        Inverse regularisation of "svm", "rbf" and "logreg"; None: 1 for linear models
        and logistic regression, 10 for the exact RBF SVM, 50 for the Nystroem one.
    gamma : "scale" or float
        RBF width; "scale" is 1 / (n_features * X.var()) as in ``SVC``.
    max_exact_samples : int
        "rbf" uses an exact ``SVC`` up to this many training images, Nystroem + linear
        SVM above it.
    n_components : int
        Nystroem landmarks for the approximate RBF SVM.
    n_neighbors, weights : kNN options.
    n_estimators : random forest size.
    n_jobs : int or None
        Workers for feature extraction (and kNN / random forest).
    verbose : bool
        Show progress bars while extracting features.
    random_state : int
    """

    def __init__(
        self,
        features: str = "hog",
        classifier: str = "svm",
        *,
        kernel: str = "linear",
        size="auto",
        hog_cells="auto",
        orientations: int = 9,
        block_norm: str = "L2-Hys",
        transform_sqrt: bool = True,
        sift_patch="auto",
        sift_step="auto",
        C: float | None = None,
        gamma="scale",
        max_exact_samples: int = 20000,
        n_components: int = 4000,
        n_neighbors: int = 5,
        weights: str = "distance",
        n_estimators: int = 200,
        n_jobs: int | None = None,
        verbose: bool = False,
        random_state: int | None = 0,
    ):
        self.features = features
        self.classifier = classifier
        self.kernel = kernel
        self.size = size
        self.hog_cells = hog_cells
        self.orientations = orientations
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.sift_patch = sift_patch
        self.sift_step = sift_step
        self.C = C
        self.gamma = gamma
        self.max_exact_samples = max_exact_samples
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.n_estimators = n_estimators
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    @property
    def method_name(self) -> str:
        """Registry name of this configuration, e.g. "hog-svm"."""
        return f"{self.features}-{self.classifier}"

    def _check_predict(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classes_")
        return super()._check_predict(X)

    # -- descriptor ---------------------------------------------------------------------
    def _resolve_features(self, shape) -> dict:
        h, w = shape[:2]
        if self.features == "pixels":
            return {}
        if self.features == "hog":
            cells = auto_hog_cells(h, w) if self.hog_cells == "auto" else self.hog_cells
            cells = tuple((int(p), int(b)) for p, b in cells)
            for ppc, cpb in cells:
                if min(h, w) < ppc * cpb:
                    raise InputError(
                        f"X: images are {h}x{w} pixels, HOG cells of {ppc} pixels in blocks of {cpb} "
                        f"need at least {ppc * cpb}x{ppc * cpb}; set hog_cells (e.g. hog_cells=[(2, 2)]) "
                        "or resize the images"
                    )
            return {"cells": cells}
        patch, step = auto_sift_grid(h, w)
        patch = patch if self.sift_patch == "auto" else int(self.sift_patch)
        step = step if self.sift_step == "auto" else int(self.sift_step)
        if min(h, w) < patch:
            raise InputError(
                f"X: images are {h}x{w} pixels, smaller than one SIFT patch of {patch}x{patch}; "
                "set sift_patch smaller or resize the images"
            )
        if patch < 4:
            raise InputError(f"sift_patch={patch}: a SIFT patch needs at least 4 pixels")
        return {"patch_size": patch, "step": step}

    def _chunk_func(self):
        if self.features == "pixels":
            return _pixels_chunk
        if self.features == "hog":
            return functools.partial(
                _hog_chunk,
                cells=self.feature_params_["cells"],
                orientations=self.orientations,
                block_norm=self.block_norm,
                transform_sqrt=self.transform_sqrt,
            )
        return functools.partial(_sift_chunk, **self.feature_params_)

    def transform_features(self, X) -> np.ndarray:
        """Descriptors (N, D) float32 of images X (N, H, W[, C]) as the model sees them."""
        X = self.to_working_size(self._check_predict(X))
        return self._extract(X)

    def _extract(self, X) -> np.ndarray:
        per_chunk = max(1, _CHUNK_PIXELS // int(np.prod(X.shape[1:3])))
        return map_chunks(
            self._chunk_func(),
            X,
            n_jobs=self.n_jobs,
            chunk_size=min(per_chunk, 2000 if self.features != "sift" else 500),
            progress=self.verbose,
            desc=f"{self.features} features",
        )

    # -- classifier ---------------------------------------------------------------------
    def _make_classifier(self, F: np.ndarray):
        n = len(F)
        rs = self.random_state
        rbf = self.classifier == "rbf" or (self.classifier == "svm" and self.kernel == "rbf")
        if self.classifier == "svm" and not rbf:
            from sklearn.svm import LinearSVC

            return LinearSVC(C=1.0 if self.C is None else self.C, dual="auto", random_state=rs)
        if rbf:
            if n <= self.max_exact_samples:
                from sklearn.svm import SVC

                C = 10.0 if self.C is None else self.C
                return SVC(kernel="rbf", C=C, gamma=self.gamma, cache_size=1000)
            from objrec.methods.kernel import NystroemClassifier

            return NystroemClassifier(
                gamma=self.gamma,
                n_components=self.n_components,
                C=50.0 if self.C is None else self.C,
                random_state=rs,
            )
        if self.classifier == "knn":
            from sklearn.neighbors import KNeighborsClassifier

            return KNeighborsClassifier(
                n_neighbors=min(self.n_neighbors, n), weights=self.weights, n_jobs=self.n_jobs
            )
        if self.classifier == "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=1.0 if self.C is None else self.C, max_iter=500)
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators, n_jobs=self.n_jobs, random_state=rs
        )

    def fit(self, X, y):
        """Extract descriptors of X (N, H, W[, C]) uint8 and fit the classifier to labels y (N,)."""
        if self.features not in FEATURES:
            raise InputError(f"features must be one of {FEATURES}, got {self.features!r}")
        if self.classifier not in CLASSIFIERS:
            raise InputError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.kernel not in ("linear", "rbf"):
            raise InputError(f"kernel must be 'linear' or 'rbf', got {self.kernel!r}")
        X, y = self._check_fit(X, y)
        size = (
            AUTO_SIZE[self.features]
            if isinstance(self.size, str) and self.size == "auto"
            else self.size
        )
        self._set_working_shape(X, size)
        X = self.to_working_size(X)
        self.feature_params_ = self._resolve_features(X.shape[1:])
        F = self._extract(X)
        self.n_features_ = int(F.shape[1])
        self.classifier_ = self._make_classifier(F).fit(F, y)
        return self

    def predict(self, X) -> np.ndarray:
        """Labels (N,) of images X (N, H, W[, C])."""
        F = self.transform_features(X)
        return self.classifier_.predict(F)

    def _has_scores(self):
        return self.classifier in ("svm", "rbf", "logreg")

    def _has_proba(self):
        return self.classifier in ("knn", "logreg", "rf")

    @available_if(_has_scores)
    def decision_function(self, X) -> np.ndarray:
        """Per-class scores (N, n_classes) ((N,) for two classes) of the SVMs and logistic
        regression; kNN and random forests have ``predict_proba`` instead."""
        F = self.transform_features(X)
        return self.classifier_.decision_function(F)

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, n_classes) of "knn", "logreg" and "rf".

        SVMs give no probabilities (Platt scaling would cost five more fits): use
        ``decision_function``.
        """
        F = self.transform_features(X)
        return self.classifier_.predict_proba(F)


def _factory(features: str, classifier: str, **defaults):
    def make(**params):
        return FeatureClassifier(features, classifier, **{**defaults, **params})

    return make


_DESCRIPTIONS = {
    "svm": "linear SVM",
    "svm-rbf": "RBF-kernel SVM (exact up to 20k images, Nystroem + least-squares SVM above)",
    "rbf": "RBF-kernel SVM (exact up to 20k images, Nystroem + least-squares SVM above)",
    "knn": "5 nearest neighbours, distance-weighted",
    "logreg": "logistic regression",
    "rf": "random forest (200 trees)",
}
_FEATURE_NAMES = {
    "pixels": "raw pixels",
    "hog": "HOG at two cell sizes",
    "sift": "dense SIFT",
}
for _f, _c, _kw in [
    ("pixels", "knn", {}),
    ("pixels", "svm", {}),
    ("pixels", "rbf", {}),
    ("pixels", "logreg", {}),
    ("pixels", "rf", {}),
    ("hog", "svm", {"kernel": "rbf"}),
    ("hog", "rbf", {}),
    ("hog", "knn", {}),
    ("sift", "svm", {}),
]:
    _d = _DESCRIPTIONS["svm-rbf" if _kw.get("kernel") == "rbf" else _c]
    register_method(f"{_f}-{_c}", approach="features", description=f"{_FEATURE_NAMES[_f]} + {_d}")(
        _factory(_f, _c, **_kw)
    )


def hog_picture(est: FeatureClassifier, image: np.ndarray, *, cell: int = 0) -> np.ndarray:
    """The HOG a fitted "hog-*" model sees in one image, as a picture.

    Parameters
    ----------
    est : fitted :class:`FeatureClassifier` with ``features="hog"``
    image : (H, W[, C]) uint8, the model's input size
    cell : index into the model's cell sizes (``est.feature_params_["cells"]``)

    Returns
    -------
    (h, w) float64 at the model's working size (``est.work_shape_``): scikit-image's HOG
    visualisation (line segments per cell and bin).
    """
    from objrec.features.hog import hog_visualization

    if est.features != "hog":
        raise InputError(f"hog_picture needs a HOG model, got {est.method_name}")
    img = est.to_working_size(est._check_predict(np.asarray(image)[None]))[0]
    ppc, cpb = est.feature_params_["cells"][cell]
    if est.transform_sqrt:
        img = np.sqrt(img.astype(np.float64))
    return hog_visualization(
        img,
        orientations=est.orientations,
        pixels_per_cell=ppc,
        cells_per_block=cpb,
        block_norm=est.block_norm,
    )
