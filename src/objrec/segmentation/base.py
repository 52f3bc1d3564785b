"""What every segmenter shares: input checks, ``predict`` from ``predict_proba``, the
panoptic output, and saving as an objrec model folder (:mod:`objrec.artifact`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from objrec.errors import InputError, ModelFileError

#: The mask value that is no label (Pascal VOC's object borders and "difficult" regions):
#: such pixels are left out of training and of every metric.
IGNORE = 255


def check_images(images) -> np.ndarray:
    """uint8 (N, H, W, 3) images; grey (N, H, W) are tripled."""
    X = np.asarray(images)
    if X.ndim == 3:
        X = np.repeat(X[..., None], 3, axis=3)
    if X.ndim != 4 or X.shape[3] != 3:
        raise InputError(f"images must be (N, H, W, 3) or (N, H, W), got {X.shape}")
    if X.dtype != np.uint8:
        raise InputError(f"images must be uint8 0..255, got {X.dtype}")
    return X


#: images per chunk of ``predict`` and ``predict_panoptic``, whose probabilities (N, L, H, W)
#: float32 are held one chunk at a time: 256 scenes of 96x96 with 11 labels are 104 MB,
#: where 10,000 at once would be 4 GB
CHUNK = 256


def chunks(X: np.ndarray, size: int | None = None) -> list[np.ndarray]:
    """``X`` (N, ...) cut into consecutive pieces of at most ``size`` (default
    :data:`CHUNK`) along N; one empty piece when N is 0, so that the caller's output keeps
    its shape."""
    size = size or CHUNK
    return [X[s : s + size] for s in range(0, len(X), size)] or [X[:0]]


def check_masks(images: np.ndarray, masks, n_labels: int | None) -> tuple[np.ndarray, int]:
    """uint8 masks (N, H, W) matching ``images``, and the number of labels (given, or
    the largest label + 1, at least 2). :data:`IGNORE` (255) is kept as it is and is
    no label."""
    Y = np.asarray(masks)
    if Y.shape != images.shape[:3]:
        raise InputError(f"masks {Y.shape} do not match the images {images.shape[:3]}")
    if not np.issubdtype(Y.dtype, np.integer):
        raise InputError(f"masks must hold integer labels, got {Y.dtype}")
    if Y.size and Y.min() < 0:
        raise InputError("masks hold negative labels")
    if Y.size and Y.max() > IGNORE:
        raise InputError(f"masks hold label {int(Y.max())}; labels are 0..254, {IGNORE} = ignore")
    top = int(np.where(Y == IGNORE, 0, Y).max(initial=0))
    n = max(top + 1, 2) if n_labels is None else int(n_labels)
    if top >= n:
        raise InputError(f"masks hold label {top}, but n_labels={n} (labels 0..{n - 1})")
    return Y.astype(np.uint8), n


def _whole(lo: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _number(lo: float, *, strict: bool = False):
    def ok(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        try:
            x = float(v)
        except OverflowError:
            return False
        return math.isfinite(x) and (x > lo if strict else x >= lo)

    return ok


def _optional(check):
    return lambda v: v is None or check(v)


class Segmenter(BaseEstimator):
    """Base class: subclasses define ``fit`` (setting ``n_labels_`` and ``input_shape_``),
    ``predict_proba``, ``_save_artifact`` and ``_load_artifact``.

    A fitted segmenter is an objrec model (``task`` "segment"): :meth:`save` writes the
    model folder through :func:`objrec.artifact.save`, ``objrec.load(folder)`` reads it.
    By default its weight file is a skops file (``_state_file``) of the fitted attributes
    named in ``_state_attributes`` (their types skops' own or in
    :data:`objrec.skops_types.TRUSTED_TYPES`), checked on load by ``_check_state``; a
    segmenter may instead define its own ``_save_artifact``/``_load_artifact`` (the U-Net).
    """

    task = "segment"
    #: the registered name ("forest", "slic", "unet"), recorded as the metadata's method
    method = ""
    #: constructor argument -> (what it must be, check), applied to a model file's params
    _param_rules: ClassVar[dict] = {}
    #: the fitted attributes the default weight file holds, and its name
    _state_attributes: ClassVar[tuple[str, ...]] = ()
    _state_file: ClassVar[str] = "segmenter.skops"
    n_labels_: int
    input_shape_: tuple[int, int, int]

    @property
    def method_name(self) -> str:
        """The name the metadata records (``method``)."""
        return self.method

    @property
    def classes_(self) -> np.ndarray:
        """The labels int64 (L,): 0 (background), 1, ..., L - 1 (the objects' classes)."""
        n = self.__dict__.get("n_labels_")
        if n is None:
            raise AttributeError(f"{type(self).__name__} is not fitted: no classes_")
        return np.arange(n)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise InputError(f"{type(self).__name__} is not fitted: call fit(images, masks) first")

    def _fitted_on(self, X: np.ndarray) -> None:
        """Record the image shape (H, W, 3) of the training images ``X`` (N, H, W, 3)."""
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])

    def save(self, folder, **metadata) -> Path:
        """Save as an objrec model folder (:func:`objrec.artifact.save`: ``objrec.json`` and
        the weights, all or nothing); ``metadata``: ``dataset``, ``class_names`` (one per
        label, background first), ``training``, ``metrics``, ... Returns the folder."""
        from objrec.artifact import save

        self._check_fitted()
        return save(self, folder, **metadata)

    def _save_artifact(self, folder) -> dict:
        """Write ``{name: value}`` of the ``_state_attributes`` to ``_state_file`` (skops)."""
        import skops.io as sio

        if not self._state_attributes:
            raise NotImplementedError(f"{type(self).__name__} names no _state_attributes")
        state = {a: getattr(self, a) for a in self._state_attributes}
        sio.dump(state, Path(folder) / self._state_file)
        return {"weights": self._state_file}

    @classmethod
    def _load_artifact(cls, folder, meta):
        """The segmenter saved by the default :meth:`_save_artifact` in model folder
        ``folder`` (``meta``: its validated metadata), its state checked by ``_check_state``."""
        from objrec.artifact import load_skops, model_file

        est = cls._from_metadata(folder, meta)
        file = model_file(folder, meta.weights or cls._state_file)
        state = load_skops(file)
        if not isinstance(state, dict) or set(state) != set(cls._state_attributes):
            held = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ModelFileError(
                f"{file}: not a {cls.__name__} file (holds {held}, expected "
                f"{sorted(cls._state_attributes)})"
            )
        for name, value in state.items():
            setattr(est, name, value)
        est._check_state(folder, meta, file)
        return est

    def _check_state(self, folder, meta, file) -> None:
        """Check the state loaded from ``file`` against the metadata ``meta``; raise
        :class:`ModelFileError` naming the field that does not fit."""

    @classmethod
    def _from_metadata(cls, folder, meta):
        """A segmenter built from the validated metadata ``meta`` of model folder ``folder``:
        its checked ``params``, ``n_labels_`` and ``input_shape_`` (weights not yet set)."""
        from objrec.metadata import META_NAME

        where = Path(folder) / META_NAME
        params = dict(meta.params)
        for name, (want, ok) in cls._param_rules.items():
            if name in params and not ok(params[name]):
                raise ModelFileError(
                    f"{where}: field 'params.{name}' must be {want}, got {params[name]!r}; "
                    "the model file was edited"
                )
        n = params.get("n_labels")
        if n is not None and n != len(meta.classes):
            raise ModelFileError(
                f"{where}: field 'classes' holds {len(meta.classes)} labels but params.n_labels "
                f"is {n}; the model file was edited"
            )
        est = cls(**params)
        est.n_labels_ = len(meta.classes)
        est.input_shape_ = tuple(meta.input_shape)
        return est

    def predict(self, images) -> np.ndarray:
        """Semantic masks uint8 (N, H, W): the most probable label of every pixel (the
        probabilities computed :data:`CHUNK` images at a time)."""
        X = check_images(images)
        parts = [self.predict_proba(c).argmax(1).astype(np.uint8) for c in chunks(X)]
        return np.concatenate(parts)

    def predict_panoptic(self, images, **kw):
        """(semantic uint8 (N, H, W), instances uint16 (N, H, W), scores [{id: score}])
        from :func:`objrec.segmentation.postprocess.panoptic_batch`, :data:`CHUNK` images
        at a time."""
        from objrec.segmentation.postprocess import join_panoptic, panoptic_batch

        X = check_images(images)
        return join_panoptic([panoptic_batch(self.predict_proba(c), **kw) for c in chunks(X)])
