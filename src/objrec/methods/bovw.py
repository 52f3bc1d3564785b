"""Bag of visual words: local descriptors -> k-means codebook -> word histograms -> linear SVM.

``bovw-patch`` is the single-layer network of Coates, Lee & Ng, "An Analysis of
Single-Layer Networks in Unsupervised Feature Learning" (AISTATS 2011): 6x6 patches (x3
colours) at every pixel, each brightness/contrast normalised and ZCA-whitened, k-means
words, "triangle" encoding, sum pooling over the 4 image quadrants, standardised
features and a linear classifier (77.9% on CIFAR-10 with 1,600 words in the paper).
``bovw-sift`` keeps the classic bag of words: dense SIFT, 256 words, soft assignment,
1x1 + 2x2 + 4x4 spatial pyramid, Hellinger-normalised histograms.

Pipeline of :class:`BagOfWords`:

0. images larger than the working size (``size``: at most 64 pixels a side by default)
   are shrunk with the project's resize filter, in fit and predict alike;
1. local descriptors on a dense grid: contrast-normalised, ZCA-whitened raw patches
   (``descriptor="patch"``: ``(p - mean(p)) / sqrt(var(p) + 10)`` on 0..255 pixels, then
   ZCA with eigenvalues regularised by 0.1 as in the paper's code) or dense SIFT
   (``"sift"``, RootSIFT-normalised);
2. a codebook of ``n_words`` visual words by ``MiniBatchKMeans`` (float32) on a random
   sample of ``max_descriptors`` training descriptors (``codebook_``: (n_words, D)),
   gathered chunk by chunk from a sample of the training images;
3. each image becomes a vector of pooled word activations, per region of a spatial
   pyramid (``pyramid=(2,)``: the 4 quadrants; (1, 2, 4): 1x1 + 2x2 + 4x4):
   ``encoding`` "soft" (the "triangle" encoding of Coates et al.: ``f_k = max(0,
   mean_j z_j - z_k)`` with z the Euclidean distances to the words), "counts"
   (nearest word), "binary" (presence only) or "tfidf" (counts weighted by inverse
   document frequency); activations are summed within each region;
4. ``normalize``: "standardize" (each feature to zero mean and unit variance over the
   training images, the paper's choice), "power" (square root, then L2: the Hellinger
   map, which turns a linear SVM into one with the Bhattacharyya kernel), "l1", "l2" or
   "none";
5. ``kernel``: "linear" (a linear SVM on the histograms) or "chi2" (on scikit-learn's
   additive chi-squared feature map, three times longer vectors); ``loss``: "squared"
   (one-vs-rest least-squares SVM = ridge regression on +-1 targets, closed form, no
   copy of the N x D features; ``C="auto"`` picks its regularisation on a held-out tenth
   of the training images, :class:`HoldoutRidgeClassifier`) or "hinge" (``LinearSVC``,
   which copies
   the histograms into liblinear's sparse format, ~16 bytes per value: 5 GB for 60,000
   images x 5,376 values, hence not the default).

Memory is bounded whatever the number and size of the images: descriptors are computed
and encoded in chunks of at most ``CHUNK_DESCRIPTORS`` descriptors and
``CHUNK_VALUES`` distances (descriptors x words: 32 MB of float32 at a time), the
k-means sample holds at most ``max_descriptors``, and only the pooled features of all
images (N x n_regions x n_words float32: 256 MB for 10,000 images x 4 x 1,600) are kept.
The encoding of a chunk is one float32 matrix product (descriptors x words).

:func:`encode_histograms` is the pure function behind step 3, :func:`zca_whitening`
the one behind step 1; :func:`word_images` (the de-whitened words), :func:`word_montages`
and :func:`word_histogram` are the helpers the report plots.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from objrec.errors import InputError
from objrec.features.patches import extract_patches, normalize_patches
from objrec.features.sift import dense_sift, sift_grid
from objrec.methods import register_method
from objrec.methods.base import ImageClassifier, WorkingSizeMixin
from objrec.methods.parallel import map_chunks

DESCRIPTORS = ("patch", "sift")
ENCODINGS = ("counts", "binary", "tfidf", "soft")
NORMALIZE = ("standardize", "power", "l1", "l2", "none")
KERNELS = ("linear", "chi2")
# Descriptors computed and encoded at once (100 images of 28x28 at most), and distances
# (descriptors x words) held at once: 8 million float32 = 32 MB (5,000 descriptors, about
# 7 images of 32x32, with 1,600 words).
CHUNK_DESCRIPTORS = 100_000
CHUNK_VALUES = 8_000_000
_MAX_CHUNK_IMAGES = 100
# Regularisation of the ZCA whitening of normalised patches (Coates et al.'s code: 0.1).
ZCA_EPS = 0.1


# -- pure functions --------------------------------------------------------------------
def pyramid_regions(centres: np.ndarray, height: int, width: int, levels) -> np.ndarray:
    """Region membership (R, K) float32 of K descriptor centres (row, col) in pixels.

    Level L splits the image into L x L equal cells; R = sum of L**2 over ``levels``;
    regions are listed level by level, row-major within a level.
    """
    rows, cols = centres[:, 0] / height, centres[:, 1] / width
    out = []
    for L in levels:
        r = np.minimum((rows * L).astype(int), L - 1)
        c = np.minimum((cols * L).astype(int), L - 1)
        cell = r * L + c
        out.append((cell[None, :] == np.arange(L * L)[:, None]).astype(np.float32))
    return np.concatenate(out)


def squared_distances(D: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (..., n_words) between descriptors (..., d) and words,
    in the descriptors' float dtype.

    One matrix product gives all of ``|x|^2 - 2 x.c + |c|^2``: the descriptors are
    extended by (1, |x|^2) and the words by (|c|^2, 1), so no pass over the (n, n_words)
    result is spent on adding the norms.
    """
    D = np.asarray(D)
    dt = D.dtype if D.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    flat = D.reshape(-1, D.shape[-1])
    cb = np.asarray(codebook, dtype=np.float64)
    A = np.empty((len(flat), flat.shape[1] + 2), dt)
    A[:, :-2] = flat
    A[:, -2] = 1.0
    A[:, -1] = np.einsum("ij,ij->i", A[:, :-2], A[:, :-2])
    B = np.concatenate([-2.0 * cb.T, (cb**2).sum(axis=1)[None], np.ones((1, len(cb)))])
    d2 = A @ B.astype(dt)
    return np.maximum(d2, 0.0, out=d2).reshape(*D.shape[:-1], len(codebook))


def encode_histograms(
    descriptors: np.ndarray,
    codebook: np.ndarray,
    regions: np.ndarray,
    *,
    encoding: str = "counts",
) -> np.ndarray:
    """Pooled word histograms of images.

    Parameters
    ----------
    descriptors : (N, K, d) float
        K local descriptors per image.
    codebook : (n_words, d) float
    regions : (R, K) 0/1
        Which descriptors fall in each pooling region (:func:`pyramid_regions`).
    encoding : {"counts", "binary", "soft", "tfidf"}
        "tfidf" gives counts here; the idf weighting is learnt by the estimator.

    Returns
    -------
    (N, R * n_words) float32: region by region, n_words values each.
    """
    n, k, _ = descriptors.shape
    n_words = len(codebook)
    d2 = squared_distances(np.asarray(descriptors, np.float32), np.asarray(codebook, np.float32))
    if encoding == "soft":  # f_k = max(0, mean(z) - z_k), in place
        z = np.sqrt(d2, out=d2)
        act = np.subtract(z.mean(axis=-1, keepdims=True), z, out=z)
        np.maximum(act, 0.0, out=act)
    else:
        act = np.zeros((n, k, n_words), np.float32)
        np.put_along_axis(act, d2.argmin(axis=-1)[..., None], 1.0, axis=-1)
    # sum pooling, one batched product without copying the activations:
    # (R, K) @ (N, K, n_words) -> (N, R, n_words)
    R = np.asarray(regions, np.float32)
    hist = np.matmul(R, act)
    if encoding == "binary":
        hist = (hist > 0).astype(np.float32)
    return hist.reshape(n, -1).astype(np.float32)


def normalize_histograms(H: np.ndarray, method: str) -> np.ndarray:
    """Normalise histograms (N, D) >= 0 image by image: "power" (sqrt then L2), "l1",
    "l2" or "none" ("standardize" too: it works across images, the estimator's scaler
    applies it).

    Returns a new float32 array (N, D); the input is left unchanged.
    """
    H = np.array(H, dtype=np.float32, copy=True)
    if method in ("none", "standardize"):
        return H
    if method == "power":
        np.sqrt(H, out=H)
    if method == "l1":
        H /= np.maximum(H.sum(axis=1, keepdims=True), 1e-12)
    else:
        H /= np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
    return H


def zca_whitening(S: np.ndarray, eps: float = ZCA_EPS) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening of descriptors S (M, d): ``(mean (d,), W (d, d))`` float32 such that
    ``(S - mean) @ W`` has covariance ``V diag(e / (e + eps)) V^T`` (the identity where
    the eigenvalues e of the covariance ``V diag(e) V^T`` are large next to ``eps``).
    W is symmetric (``V diag(1 / sqrt(e + eps)) V^T``): whitened patches stay patches
    (rotated back to pixel space), unlike PCA whitening."""
    S = np.asarray(S, np.float32)
    mean = S.mean(axis=0, dtype=np.float64)
    cov = np.cov(S - mean.astype(np.float32), rowvar=False).reshape(S.shape[1], S.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    W = (evecs / np.sqrt(np.maximum(evals, 0.0) + eps)) @ evecs.T
    return mean.astype(np.float32), W.astype(np.float32)


def _patch_descriptors(X, size, step, mean, zca):
    P, _ = extract_patches(X, size=size, step=step)  # (n, K, size*size*C)
    P = normalize_patches(P)
    if zca is not None:
        P = (P - mean) @ zca
    return P


def _sift_descriptors(X, patch_size, step):
    D = dense_sift(X, patch_size=patch_size, step=step)  # (n, K, 128)
    D = D / np.maximum(D.sum(axis=-1, keepdims=True), 1e-6)  # RootSIFT: L1 then sqrt
    return np.sqrt(D)


def _encode_chunk(X, describe, codebook, regions, encoding):
    return encode_histograms(describe(X), codebook, regions, encoding=encoding)


def _chunk_images(k_per_image: int, n_words: int = 1) -> int:
    """Images per chunk so that a chunk holds at most about :data:`CHUNK_DESCRIPTORS`
    descriptors and :data:`CHUNK_VALUES` distances to ``n_words`` words."""
    per_chunk = min(CHUNK_DESCRIPTORS, CHUNK_VALUES // max(1, n_words))
    return int(np.clip(per_chunk // max(1, k_per_image), 1, _MAX_CHUNK_IMAGES))


class Standardize(TransformerMixin, BaseEstimator):
    """Each feature to zero mean and unit variance, ``(x - mean) / sqrt(var + eps)`` with
    Coates et al.'s ``eps = 0.01``, computed and applied in chunks of rows, in place on
    float32 input (scikit-learn's ``StandardScaler`` takes several temporary copies of
    the whole matrix while fitting: 2.5 GB for 50,000 x 6,400 float32 features).

    Attributes: ``mean_`` (D,) and ``scale_`` (D,) float32.
    """

    def __init__(self, eps: float = 0.01):
        self.eps = eps

    def fit(self, X, y=None):
        """Mean and variance of the columns of X (N, D), accumulated in float64."""
        X = np.asarray(X)
        total, sq = np.zeros(X.shape[1]), np.zeros(X.shape[1])
        for s in range(0, len(X), 1024):
            block = X[s : s + 1024].astype(np.float64)
            total += block.sum(axis=0)
            sq += np.einsum("ij,ij->j", block, block)
        n = max(len(X), 1)
        mean = total / n
        var = np.maximum(sq / n - mean**2, 0.0)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.sqrt(var + self.eps).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Standardised X (N, D) float32: X itself when it is a writable float32 array."""
        X = np.asarray(X)
        if X.dtype != np.float32 or not X.flags.writeable:
            X = X.astype(np.float32)
        for s in range(0, len(X), 4096):
            block = X[s : s + 4096]
            block -= self.mean_
            block /= self.scale_
        return X


def _ridge_problem(X: np.ndarray, rows: np.ndarray, Y: np.ndarray):
    """The ridge regression of targets Y (n, K) on ``X[rows]`` (n, D), centred.

    Returns ``(solve, mu, y_mean)``: ``solve(r)`` gives the weights W (D, K) float64 for
    ``alpha = r * solve.scale`` (``scale``: the mean diagonal of the centred X^T X), by a
    Cholesky solve of the primal (D, D) system when n >= D, else of the dual (n, n)
    system ``W = X^T (X X^T + alpha I)^-1 Y``. The Gram matrix is built from chunks of
    rows, so no centred copy of X is held.
    """
    from scipy.linalg import cho_factor, cho_solve

    n, d = len(rows), X.shape[1]
    total = np.zeros(d)
    for s in range(0, n, 4096):
        total += X[rows[s : s + 4096]].sum(axis=0, dtype=np.float64)
    mu = (total / max(n, 1)).astype(X.dtype)
    ym = Y.mean(axis=0)
    Yc = Y - ym
    step = 4096
    if n >= d:
        G = np.zeros((d, d))
        XtY = np.zeros((d, Y.shape[1]))
        for s in range(0, n, step):
            Xc = X[rows[s : s + step]] - mu
            G += Xc.T @ Xc
            XtY += Xc.T @ Yc[s : s + step].astype(Xc.dtype)
    else:
        Xc = (X[rows] - mu).astype(np.float64)
        G = Xc @ Xc.T
    scale = max(float(np.trace(G)) / d, 1e-12)

    def solve(r: float) -> np.ndarray:
        A = G.copy()
        A.flat[:: len(A) + 1] += r * scale
        factor = cho_factor(A, overwrite_a=True, check_finite=False)
        if n >= d:
            return cho_solve(factor, XtY)
        return Xc.T @ cho_solve(factor, Yc)

    solve.scale = scale
    return solve, mu, ym


class HoldoutRidgeClassifier(ClassifierMixin, BaseEstimator):
    """One-vs-rest least-squares classifier (ridge regression on +-1 targets, the
    "least-squares SVM") whose regularisation is chosen on a held-out part of the
    training set, then refitted on all of it.

    ``alpha`` of ``|Y - X W - b|^2 + alpha |W|^2`` is tried at ``alphas`` times the
    mean diagonal of the centred ``X^T X`` (N for standardised features), each by one
    Cholesky solve of the (D, D) normal equations (of the (N, N) dual ones when N < D);
    the best held-out accuracy wins (ties: the smaller squared error). The data are read
    in chunks for ``X^T X``: no copy of X is made, and memory is that of X plus two
    float64 (D, D) matrices (330 MB for D = 6,400).

    Attributes: ``classes_`` (K,), ``coef_`` (K, D) float32, ``intercept_`` (K,) float32,
    ``alpha_`` (the chosen alpha, absolute), ``holdout_accuracy_`` {relative alpha:
    held-out accuracy}.
    """

    def __init__(
        self,
        alphas=(3e-3, 1e-2, 3e-2, 0.1, 0.3),
        *,
        holdout: float = 0.1,
        random_state: int | None = 0,
    ):
        self.alphas = alphas
        self.holdout = holdout
        self.random_state = random_state

    def fit(self, X, y):
        """Train on features X (N, D) float and labels y (N,)."""
        from objrec.data.splits import stratified_indices

        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)
        y = np.asarray(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError("y: a classifier needs at least 2 classes")
        Y = np.where(yi[:, None] == np.arange(len(self.classes_))[None], 1.0, -1.0)
        n = len(X)
        alphas = [float(a) for a in np.atleast_1d(self.alphas)]
        n_hold = round(self.holdout * n) if len(alphas) > 1 and n >= 20 else 0
        seed = 0 if self.random_state is None else int(self.random_state)
        fit_rows, hold_rows = stratified_indices(yi, n_hold, seed)  # sorted, stratified
        self.holdout_accuracy_ = {}
        best = alphas[len(alphas) // 2]
        if n_hold:
            solve, mu, ym = _ridge_problem(X, fit_rows, Y[fit_rows])
            Xh = (X[hold_rows] - mu).astype(np.float64)
            scores = []
            for a in alphas:
                P = Xh @ solve(a) + ym
                acc = float((P.argmax(axis=1) == yi[hold_rows]).mean())
                self.holdout_accuracy_[a] = acc
                scores.append((-acc, float(((P - Y[hold_rows]) ** 2).mean())))
            best = alphas[min(range(len(alphas)), key=scores.__getitem__)]
            del solve, Xh  # frees the (D, D) system before the next is built
        solve, mu, ym = _ridge_problem(X, np.arange(n), Y)  # refit on every training image
        W = solve(best)
        self.alpha_ = best * solve.scale
        self.coef_ = W.T.astype(np.float32)
        self.intercept_ = (ym - mu.astype(np.float64) @ W).astype(np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Scores (N, K) float32 (two classes: (N,), second minus first)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "coef_")
        S = np.asarray(X, dtype=np.float32) @ self.coef_.T + self.intercept_
        return S[:, 1] - S[:, 0] if len(self.classes_) == 2 else S

    def predict(self, X) -> np.ndarray:
        """Labels (N,): the class of the largest score."""
        S = self.decision_function(X)
        if S.ndim == 1:
            return self.classes_[(S > 0).astype(int)]
        return self.classes_[S.argmax(axis=1)]


class BagOfWords(WorkingSizeMixin, ImageClassifier):
    """Bag of visual words over patches or dense SIFT, classified by a linear SVM.

    Parameters
    ----------
    descriptor : {"patch", "sift"}
    n_words : int
        Codebook size k. 1,600 (the paper's: 77.9% on CIFAR-10; 4,000 gave it 79.6%);
        the encoding costs descriptors x words, so 400 words encode four times faster
        (the ``quick`` budget of ``objrec compare``) for a few points less.
    size : int, (height, width) or None
        Working size (``work_shape_``): an int is the longest side in pixels (aspect kept,
        smaller images untouched), (h, w) an exact size, None the input size. The default
        64 keeps about 2,500 patches per 64x49 image; 32x32 CIFAR and 28x28 digits are
        used as they are.
    patch_size, step : "auto" or int
        Descriptor side and grid stride in pixels. "auto": for patches 6 pixels (3 on
        images under 16 pixels) every pixel (729 patches of 6x6 on 32x32, as in the
        paper); for SIFT the :func:`auto_sift_grid` default halved (8-pixel patches
        every 2 pixels on 28x28, 4 every 1 on 8x8).
    whiten : bool
        ZCA-whiten normalised patches before clustering (patch descriptor only).
    encoding : {"soft", "counts", "binary", "tfidf"}
        "soft": the triangle encoding (default).
    normalize : {"standardize", "power", "l1", "l2", "none"}
    pyramid : tuple of int
        Pooling regions: (2,) = the 4 quadrants (default), (1, 2, 4) = 1x1 + 2x2 + 4x4
        spatial pyramid, (1,) = a plain bag.
    kernel : {"linear", "chi2"}
    loss : {"squared", "hinge"}
        Least-squares SVM (ridge, default) or ``LinearSVC``.
    C : float or "auto"
        SVM inverse regularisation (ridge ``alpha = 1 / (2 C)``); "auto" (squared loss):
        alpha chosen on held-out training images (:class:`HoldoutRidgeClassifier`), with
        the hinge loss C = 10.
    max_descriptors : int
        Training descriptors sampled for the whitening and k-means (from at most
        4 * ceil(max_descriptors / descriptors per image) images, computed in chunks);
        ``n_sampled_`` records how many were used.
    n_jobs : int or None
        Workers for descriptor extraction and encoding.
    verbose : bool
        Progress bars.
    random_state : int
    """

    def __init__(
        self,
        descriptor: str = "patch",
        n_words: int = 1600,
        *,
        size=64,
        patch_size="auto",
        step="auto",
        whiten: bool = True,
        encoding: str = "soft",
        normalize: str = "standardize",
        pyramid=(2,),
        kernel: str = "linear",
        loss: str = "squared",
        C="auto",
        max_descriptors: int = 400_000,
        n_jobs: int | None = None,
        verbose: bool = False,
        random_state: int | None = 0,
    ):
        self.descriptor = descriptor
        self.n_words = n_words
        self.size = size
        self.patch_size = patch_size
        self.step = step
        self.whiten = whiten
        self.encoding = encoding
        self.normalize = normalize
        self.pyramid = pyramid
        self.kernel = kernel
        self.loss = loss
        self.C = C
        self.max_descriptors = max_descriptors
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    @property
    def method_name(self) -> str:
        """ "bovw-patch" or "bovw-sift"."""
        return f"bovw-{self.descriptor}"

    def _check_predict(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classes_")
        return super()._check_predict(X)

    def _check_params(self):
        for name, value, allowed in [
            ("descriptor", self.descriptor, DESCRIPTORS),
            ("encoding", self.encoding, ENCODINGS),
            ("normalize", self.normalize, NORMALIZE),
            ("kernel", self.kernel, KERNELS),
            ("loss", self.loss, ("squared", "hinge")),
        ]:
            if value not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {value!r}")
        if int(self.n_words) < 2:
            raise InputError(f"n_words={self.n_words}: a codebook needs at least 2 words")
        if isinstance(self.C, str) and self.C != "auto":
            raise InputError(f'C must be a positive number or "auto", got {self.C!r}')
        if not self.pyramid or any(int(L) < 1 for L in self.pyramid):
            raise InputError(f"pyramid={self.pyramid!r}: give levels >= 1, e.g. (1, 2, 4)")

    def _grid(self, h: int, w: int) -> tuple[int, int, np.ndarray]:
        """(size, step, centres (K, 2) as row, col) of the descriptor grid."""
        s = min(h, w)
        if self.descriptor == "patch":
            size = (6 if s >= 16 else 3) if self.patch_size == "auto" else int(self.patch_size)
            step = 1 if self.step == "auto" else int(self.step)
            if h < size or w < size:
                raise InputError(
                    f"X: images are {h}x{w} pixels, smaller than one {size}x{size} patch; "
                    "set patch_size smaller or resize the images"
                )
            rows = np.arange(0, h - size + 1, step) + (size - 1) / 2
            cols = np.arange(0, w - size + 1, step) + (size - 1) / 2
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            return size, step, np.stack([rr.ravel(), cc.ravel()], 1)
        size = max(4, round(s * 2 / 7)) if self.patch_size == "auto" else int(self.patch_size)
        step = max(1, round(s / 14)) if self.step == "auto" else int(self.step)
        if h < size or w < size or size < 4:
            raise InputError(
                f"X: images are {h}x{w} pixels, a SIFT patch of {size}x{size} does not fit "
                "(SIFT needs 4 to min(H, W) pixels); set patch_size or resize the images"
            )
        xy = sift_grid(h, w, patch_size=size, step=step) + 0.5
        return size, step, xy[:, ::-1].copy()

    def _describe_func(self):
        if self.descriptor == "patch":
            return functools.partial(
                _patch_descriptors,
                size=self.patch_size_,
                step=self.step_,
                mean=self.zca_mean_,
                zca=self.zca_,
            )
        return functools.partial(_sift_descriptors, patch_size=self.patch_size_, step=self.step_)

    def describe(self, X) -> np.ndarray:
        """Local descriptors (N, K, d) float32 of images X (at the input size) as the
        codebook sees them (computed at the working size)."""
        return self._describe_func()(self.to_working_size(self._check_predict(X)))

    def _sample_descriptors(self, X, sample_idx, pick, describe) -> np.ndarray:
        """Descriptors ``pick`` (flat indices into the K descriptors of each image of
        ``X[sample_idx]``, in that order) as an (len(pick), d) float32 array, computed in
        chunks of images so that the descriptors of the whole sample are never held."""
        k = len(self.centres_)
        step = _chunk_images(k)
        img_of = pick // k
        out = None
        for s in range(0, len(sample_idx), step):
            D = describe(X[sample_idx[s : s + step]])
            D = D.reshape(-1, D.shape[-1])
            sel = (img_of >= s) & (img_of < s + step)
            if out is None:
                out = np.empty((len(pick), D.shape[1]), np.float32)
            out[sel] = D[pick[sel] - s * k]
        return out

    def _histograms(self, X: np.ndarray, desc: str = "encode") -> np.ndarray:
        enc = self.encoding if self.encoding != "tfidf" else "counts"
        H = self._histograms_raw(X, enc, desc)
        if self.encoding == "tfidf":
            H = H * np.tile(self.idf_, len(self.regions_))
        return self._normalize(H)

    def _normalize(self, H: np.ndarray) -> np.ndarray:
        """Per-image normalisation; "standardize" and "none" keep H itself (it is ours)."""
        if self.normalize in ("standardize", "none"):
            return H
        return normalize_histograms(H, self.normalize)  # a new array: the raw one is freed

    def fit(self, X, y):
        """Learn the codebook and the SVM from images X (N, H, W[, C]) and labels y (N,)."""
        from sklearn.cluster import MiniBatchKMeans

        self._check_params()
        X, y = self._check_fit(X, y)
        self._set_working_shape(X, self.size)
        X = self.to_working_size(X)
        h, w = X.shape[1:3]
        self.patch_size_, self.step_, self.centres_ = self._grid(h, w)
        self.regions_ = pyramid_regions(self.centres_, h, w, tuple(int(L) for L in self.pyramid))
        rng = np.random.default_rng(self.random_state)
        k_per_image = len(self.centres_)
        # sample of training descriptors for the whitening and the codebook
        n_img = min(len(X), max(1, int(np.ceil(self.max_descriptors / k_per_image)) * 4))
        sample_idx = rng.choice(len(X), n_img, replace=False)
        n_all = n_img * k_per_image
        pick = rng.choice(n_all, min(n_all, int(self.max_descriptors)), replace=False)
        self.zca_mean_, self.zca_ = None, None
        # unwhitened descriptors: zca_ is still None here
        S = self._sample_descriptors(X, sample_idx, pick, self._describe_func())
        self.n_sampled_ = len(S)
        if self.descriptor == "patch":
            if self.whiten:
                self.zca_mean_, self.zca_ = zca_whitening(S)
                S -= self.zca_mean_
                S = S @ self.zca_
        n_words = int(self.n_words)
        if n_words > len(S):
            raise InputError(
                f"n_words={n_words} is more than the {len(S)} training descriptors; "
                "choose fewer words or train on more images"
            )
        km = MiniBatchKMeans(
            n_clusters=n_words,
            batch_size=4096,
            n_init=1,
            max_iter=20,
            random_state=self.random_state,
        ).fit(S)  # float32: half the memory of float64, the BLAS products twice as fast
        self.codebook_ = km.cluster_centers_.astype(np.float32)
        del S, km  # the sample is not needed to encode
        enc = self.encoding if self.encoding != "tfidf" else "counts"
        H = self._histograms_raw(X, enc, desc="encode")
        if self.encoding == "tfidf":
            # the regions of one pyramid level cover the image once: their sum is the
            # whole image's counts
            first = int(self.pyramid[0]) ** 2
            counts = H[:, : first * n_words].reshape(len(H), first, n_words).sum(axis=1)
            df = (counts > 0).sum(axis=0)
            self.idf_ = np.log((1.0 + len(X)) / (1.0 + df)).astype(np.float32) + 1.0
            H = H * np.tile(self.idf_, len(self.regions_))
        H = self._normalize(H)
        self.svm_ = self._make_svm().fit(H, y)
        return self

    def _histograms_raw(self, X, enc, desc="encode"):
        func = functools.partial(
            _encode_chunk,
            describe=self._describe_func(),
            codebook=self.codebook_,
            regions=self.regions_,
            encoding=enc,
        )
        return map_chunks(
            func,
            X,
            n_jobs=self.n_jobs,
            chunk_size=_chunk_images(len(self.centres_), len(self.codebook_)),
            progress=self.verbose,
            desc=desc,
        )

    def _make_svm(self):
        from sklearn.pipeline import make_pipeline

        auto = isinstance(self.C, str)
        if self.loss == "hinge":
            from sklearn.svm import LinearSVC

            C = 10.0 if auto else float(self.C)
            svm = LinearSVC(C=C, dual="auto", random_state=self.random_state)
        elif auto:
            svm = HoldoutRidgeClassifier(random_state=self.random_state)
        else:
            from sklearn.linear_model import RidgeClassifier

            svm = RidgeClassifier(alpha=1.0 / (2.0 * float(self.C)))
        steps = []
        if self.kernel == "chi2":
            from sklearn.kernel_approximation import AdditiveChi2Sampler

            steps.append(AdditiveChi2Sampler(sample_steps=2))
        if self.normalize == "standardize":
            steps.append(Standardize())  # in place: the features are our own copy
        return make_pipeline(*steps, svm) if steps else svm

    def histograms(self, X) -> np.ndarray:
        """Normalised word histograms (N, n_regions * n_words) float32 of images X."""
        return self._histograms(self.to_working_size(self._check_predict(X)), desc="encode")

    def predict(self, X) -> np.ndarray:
        """Labels (N,) of images X (N, H, W[, C])."""
        H = self.histograms(X)
        return self.svm_.predict(H)

    def decision_function(self, X) -> np.ndarray:
        """SVM scores (N, n_classes) ((N,) for two classes). No ``predict_proba``: an SVM
        gives margins, not probabilities."""
        H = self.histograms(X)
        return self.svm_.decision_function(H)


# -- helpers for the report ---------------------------------------------------------------
def word_histogram(est: BagOfWords, image: np.ndarray) -> np.ndarray:
    """How often each visual word occurs in one image (whole image, hard assignment).

    Parameters
    ----------
    image : (H, W[, C]) uint8, at the model's input size

    Returns
    -------
    (n_words,) int64 counts, summing to the number of descriptors per image.
    """
    return word_counts(est, np.asarray(image)[None])


def word_counts(est: BagOfWords, X: np.ndarray) -> np.ndarray:
    """How often each visual word occurs in images X (N, H, W[, C]) uint8, all together
    (hard assignment), computed in chunks of images.

    Returns
    -------
    (n_words,) int64 counts, summing to N times the descriptors per image.
    """
    X = est.to_working_size(est._check_predict(X))
    describe = est._describe_func()
    step = _chunk_images(len(est.centres_), len(est.codebook_))
    counts = np.zeros(len(est.codebook_), np.int64)
    for s in range(0, len(X), step):
        D = describe(X[s : s + step])
        idx = squared_distances(D.reshape(-1, D.shape[-1]), est.codebook_).argmin(axis=1)
        counts += np.bincount(idx, minlength=len(est.codebook_))
    return counts


def dewhiten(est: BagOfWords, descriptors: np.ndarray) -> np.ndarray:
    """Whitened patch descriptors (..., d) back in normalised-patch space (..., d) float32:
    ``D @ inv(zca_) + zca_mean_`` (unchanged when the model does not whiten)."""
    D = np.asarray(descriptors, np.float32)
    if getattr(est, "zca_", None) is None:
        return D.copy()
    return (D @ np.linalg.inv(est.zca_.astype(np.float64)).astype(np.float32)) + est.zca_mean_


def word_images(est: BagOfWords) -> np.ndarray:
    """Each visual word of a patch codebook as a picture.

    The k-means centres live in whitened space; they are de-whitened (:func:`dewhiten`)
    to normalised patches and each is stretched symmetrically around mid-grey
    (``128 + 127 * p / max|p|``), as the word images of Coates et al. are shown.

    Returns
    -------
    (n_words, s, s[, C]) uint8, s the patch side; C as the images (absent for grey).
    """
    if est.descriptor != "patch":
        raise InputError(f"{est.method_name}: only patch words can be shown as pictures")
    P = dewhiten(est, est.codebook_)
    P = P - P.mean(axis=1, keepdims=True)
    P = 128.0 + 127.0 * P / np.maximum(np.abs(P).max(axis=1, keepdims=True), 1e-6)
    s = est.patch_size_
    c = P.shape[1] // (s * s)
    shape = (len(P), s, s) if c == 1 else (len(P), s, s, c)
    return np.clip(np.round(P), 0, 255).astype(np.uint8).reshape(shape)


def word_montages(
    est: BagOfWords,
    X: np.ndarray,
    *,
    n_patches: int = 16,
    max_images: int = 500,
    words: np.ndarray | None = None,
) -> np.ndarray:
    """Each visual word shown as the image patches nearest to it.

    Parameters
    ----------
    X : (N, H, W[, C]) uint8, at the model's input size
        Images to take patches from (the first ``max_images`` are used, at the model's
        working size, in chunks).
    n_patches : int
        Patches per word.
    words : (n_words,) int, optional
        Indices of the codebook words to show (default: every word). Only their distances
        are computed: 16 words of a 1,600-word codebook cost 1% of the whole codebook.

    Returns
    -------
    (n_words, n_patches, s, s[, C]) uint8 raw pixel patches (s = the descriptor's patch
    side), nearest first; a word with fewer candidates repeats its last patch.
    """
    X = est.to_working_size(est._check_predict(X)[:max_images])
    codebook = est.codebook_ if words is None else est.codebook_[np.asarray(words, np.int64)]
    describe = est._describe_func()
    k = len(est.centres_)
    step = _chunk_images(k, len(codebook))
    # running n_patches nearest descriptors of every word: flat index img * K + pos, distance
    best_i = np.zeros((0, len(codebook)), np.int64)
    best_d = np.zeros((0, len(codebook)), np.float32)
    for s in range(0, len(X), step):
        D = describe(X[s : s + step])
        d2 = squared_distances(D.reshape(-1, D.shape[-1]), codebook)  # (n*K, n_words)
        # each word's n_patches nearest, unordered: a partition, linear, no sort
        top = np.argpartition(d2, min(n_patches, len(d2)) - 1, axis=0)[:n_patches]
        cand_i = np.concatenate([best_i, top + s * k])
        cand_d = np.concatenate([best_d, np.take_along_axis(d2, top, axis=0)])
        keep = np.argsort(cand_d, axis=0, kind="stable")[:n_patches]
        best_i = np.take_along_axis(cand_i, keep, axis=0)
        best_d = np.take_along_axis(cand_d, keep, axis=0)
    order = best_i.T  # (n_words, n_patches)
    if order.shape[1] < n_patches:  # fewer descriptors than n_patches: repeat the last one
        order = np.concatenate(
            [order, np.repeat(order[:, -1:], n_patches - order.shape[1], axis=1)], axis=1
        )
    s = est.patch_size_
    img_idx, pos_idx = np.divmod(order, k)
    centres = est.centres_[pos_idx]  # (n_words, n_patches, 2) row, col
    top = np.round(centres - (s - 1) / 2).astype(int)
    h, w = X.shape[1:3]
    top[..., 0] = np.clip(top[..., 0], 0, h - s)
    top[..., 1] = np.clip(top[..., 1], 0, w - s)
    out = np.empty((*order.shape, s, s, *X.shape[3:]), np.uint8)
    for wi in range(order.shape[0]):
        for j in range(order.shape[1]):
            r, c = top[wi, j]
            out[wi, j] = X[img_idx[wi, j], r : r + s, c : c + s]
    return out


# bovw-sift: the classic bag of words of its own (the defaults above are bovw-patch's).
SIFT_DEFAULTS = {
    "n_words": 256,
    "pyramid": (1, 2, 4),
    "normalize": "power",
    "C": 10.0,
    "max_descriptors": 100_000,
}


@register_method(
    "bovw-patch",
    approach="bovw",
    description="Coates et al. 2011: 1,600 k-means words of whitened 6x6 patches, triangle "
    "encoding, 4-quadrant pooling, standardised, linear least-squares SVM",
)
def make_bovw_patch(**params) -> BagOfWords:
    return BagOfWords("patch", **params)


@register_method(
    "bovw-sift",
    approach="bovw",
    description="bag of words: 256 words of dense SIFT, soft assignment, 1+2x2+4x4 pyramid, linear SVM",
)
def make_bovw_sift(**params) -> BagOfWords:
    return BagOfWords("sift", **{**SIFT_DEFAULTS, **params})
