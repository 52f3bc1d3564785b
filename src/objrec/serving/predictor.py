"""Top-k predictions for image files and arrays, through ONNX Runtime or the estimator itself.

    >>> p = Predictor.from_path("runs/mnist-cnn")       # run folder or model folder
    >>> p.top_k(images, k=3)                            # images: any size / colour mode
    [[{'label': '7', 'index': 7, 'probability': 0.998}, ...], ...]

``backend="auto"`` exports the model to ONNX in memory and runs it with ONNX Runtime when
that works and matches the estimator (a quick parity check on random images at start-up);
otherwise it runs the estimator natively (HOG, SIFT and bag-of-words pipelines always do).
Estimators without ``predict_proba`` report a softmax of their ``decision_function``
(``scores_are`` says which).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from objrec.cpu import usable_cores
from objrec.errors import InputError, ObjrecError
from objrec.serving import ood
from objrec.serving.preprocess import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    spec_for_model,
    to_model_input,
)

log = logging.getLogger("objrec.serving")

BACKENDS = ("auto", "onnxruntime", "native")


def class_names(meta, classes) -> list[str]:
    """Human-readable names of ``classes``: those the model's metadata records (a
    :class:`~objrec.metadata.ModelMetadata`, or a dict's ``class_names``, one per class),
    else the class labels as strings."""
    from objrec.metadata import ModelMetadata, class_names_for

    if isinstance(meta, ModelMetadata):
        return class_names_for(classes, meta.class_names)
    return class_names_for(classes, (meta or {}).get("class_names"))


@dataclass
class FileResult:
    """The outcome for one input file: its top-k, or the reason it could not be read."""

    path: str
    top_k: list[dict] | None = None
    error: str | None = None
    #: out-of-distribution check (:func:`objrec.serving.ood.assess`): max_probability,
    #: unknown, warning
    ood: dict | None = None


class Predictor:
    """Wraps a fitted objrec estimator for prediction on raw images.

    Parameters
    ----------
    estimator : fitted estimator (with ``classes_`` and ``input_shape_``).
    metadata : the model's ``objrec.json`` (default: ``estimator.objrec_metadata_``).
    backend : "auto", "onnxruntime" or "native".
    threads : ONNX Runtime: threads a batch is split across, each running the session on
        its own share of the images, one thread per call (None: one per core).
    """

    task = "classify"

    def __init__(self, estimator, *, metadata=None, backend: str = "auto", threads=None):
        if getattr(estimator, "task", "classify") != "classify":
            raise ObjrecError(
                f"{type(estimator).__name__} is a segmentation model, not a classifier: "
                "objrec serve answers it on /v1/segment, objrec segment evaluates it"
            )
        if backend not in BACKENDS:
            raise ObjrecError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.estimator = estimator
        meta = metadata if metadata is not None else getattr(estimator, "objrec_metadata_", None)
        self.metadata = dict(meta or {})
        self.input_shape = tuple(int(s) for s in estimator.input_shape_)
        # how images are brought to the input: the model's recorded spec (fit policy)
        self.image_spec = spec_for_model(self.metadata, self.input_shape)
        self.classes = class_names(meta, estimator.classes_)
        from objrec.serving.export import has_proba

        self._proba = has_proba(estimator)
        self.scores_are = "probabilities" if self._proba else "softmax(decision_function)"
        self._session = None
        self._pool = None  # threads sharing out a batch's chunks (None: the calling thread)
        self.threads = 1
        self.chunk_size: int | None = None  # images per ONNX Runtime call (None: all at once)
        self.backend = "native"
        self.backend_note = ""
        if backend != "native":
            try:
                self._session = self._make_session(threads)
                self.backend = "onnxruntime"
            except Exception as e:
                if backend == "onnxruntime":
                    raise ObjrecError(f"cannot run this model with ONNX Runtime: {e}") from e
                self.backend_note = f"native (ONNX Runtime not used: {e})"
                log.info("objrec: running the model natively: %s", e)

    @classmethod
    def from_path(cls, path, **kw) -> Predictor:
        """Load a run folder or model folder (``objrec.load``) and wrap it."""
        import objrec

        return cls(objrec.load(path), **kw)

    def _make_session(self, threads):
        from objrec.serving.export import (
            compare_outputs,
            onnx_chunk_size,
            onnx_session,
            reference_scores,
            run_onnx,
            to_onnx_bytes,
        )

        self.chunk_size = onnx_chunk_size(self.estimator)
        # Data-parallel: one intra-op thread per call, the batch split across ``threads``
        # calls at once. ONNX Runtime's own 2-thread operators synchronise after every layer;
        # for simple_cnn at batch 256 this ran 1.12-1.13x as fast as one 2-thread session in
        # the median round on two AMD machines, 0.96x on an Intel Xeon (benchmarks/serving.py).
        session = onnx_session(to_onnx_bytes(self.estimator), threads=1)
        self.threads = int(threads or usable_cores())
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="objrec-onnx")
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, size=(8, *self.input_shape), dtype=np.uint8)
        report = compare_outputs(
            reference_scores(self.estimator, X), run_onnx(session, X), "onnxruntime"
        )
        if not report.passed:
            raise ObjrecError(f"exported model does not match the estimator ({report})")
        return session

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, K)`` float32 for uint8 images already at ``input_shape``."""
        if self._session is not None:
            out = self._run_onnx(X)
            if self._proba:
                return np.asarray(out, np.float32)
            s = np.asarray(out, np.float64)
        elif self._proba:
            return np.asarray(self.estimator.predict_proba(X), np.float32)
        else:
            s = np.asarray(self.estimator.decision_function(X), np.float64)
            if s.ndim == 1:
                s = np.column_stack([-s, s])
        s = np.exp(s - s.max(axis=1, keepdims=True))  # softmax of decision scores
        return (s / s.sum(axis=1, keepdims=True)).astype(np.float32)

    def _run_onnx(self, X: np.ndarray) -> np.ndarray:
        """The session's output for ``X``: contiguous shares of the batch, one per pool thread,
        each run in chunks of ``chunk_size``; a batch of one chunk runs on the calling thread."""
        from objrec.serving.export import run_onnx

        n, chunk = len(X), self.chunk_size or len(X)
        shares = min(self.threads, -(-n // max(chunk, 1)))
        if shares <= 1:
            return run_onnx(self._session, X, batch_size=self.chunk_size)
        bounds = np.linspace(0, n, shares + 1).astype(int)
        parts = self._pool.map(
            lambda a, b: run_onnx(self._session, X[a:b], batch_size=self.chunk_size),
            bounds[:-1],
            bounds[1:],
        )
        return np.concatenate(list(parts))

    def predict_proba(self, images) -> np.ndarray:
        """Probabilities ``(N, K)`` for images of any size and colour mode (list or array)."""
        return self.scores(to_model_input(images, self.input_shape, self.image_spec))

    def top_k(self, images, k: int = 5) -> list[list[dict]]:
        """The ``k`` most likely classes per image (k capped at the class count), best first."""
        return self.format_top_k(self.predict_proba(images), k)

    def assess(
        self,
        X: np.ndarray,
        proba: np.ndarray,
        reject_below: float | None = None,
        top_k: list[list[dict]] | None = None,
    ) -> list[dict]:
        """Per image of ``X`` (uint8 at ``input_shape``) with probabilities ``proba``: its
        out-of-distribution score and polarity warning (:func:`objrec.serving.ood.assess`,
        against the training images' ``input_stats`` in the metadata, when recorded).
        ``top_k``: :meth:`format_top_k` of ``proba``, whose first entries are the top
        probabilities (not recomputed then)."""
        top = None if top_k is None else [tk[0]["probability"] for tk in top_k]
        return ood.assess(proba, X, self.metadata.get(ood.INPUT_STATS_KEY), reject_below, top)

    def format_top_k(self, proba: np.ndarray, k: int) -> list[list[dict]]:
        if k < 1:
            raise InputError(f"top_k must be at least 1, got {k}")
        k = min(int(k), self.n_classes)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k].tolist()
        names = self.classes
        # Python ints and floats at once (tolist): the same values as int(j), float(p[j])
        return [
            [{"label": names[j], "index": j, "probability": p[j]} for j in row]
            for p, row in zip(np.asarray(proba).tolist(), order, strict=True)
        ]

    def predict_files(
        self,
        paths: Iterable,
        *,
        k: int = 5,
        batch_size: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        reject_below: float | None = None,
    ) -> Iterator[FileResult]:
        """Top-k for each file, in order, in batches; unreadable files give an error result.
        Each result's ``ood`` says how sure the model is (``unknown`` below ``reject_below``)."""
        batch: list[tuple[str, np.ndarray]] = []

        def flush():
            X = to_model_input([a for _, a in batch], self.input_shape, self.image_spec)
            proba = self.scores(X)
            tops = self.format_top_k(proba, k)
            checks = self.assess(X, proba, reject_below, tops)
            for (name, _), tk, check in zip(batch, tops, checks, strict=True):
                yield FileResult(name, top_k=tk, ood=check)
            batch.clear()

        for p in paths:
            name = str(p)
            try:
                if Path(p).is_dir():
                    raise InputError(f"{name}: is a folder")
                img = decode_image(Path(p), max_pixels=max_pixels)
            except (InputError, OSError) as e:
                msg = str(e) if isinstance(e, InputError) else f"{name}: {e.strerror or e}"
                yield FileResult(name, error=msg)
                continue
            batch.append((name, img))
            if len(batch) >= batch_size:
                yield from flush()
        if batch:
            yield from flush()

    def info(self) -> dict:
        """What a client needs to know about the model (for ``GET /v1/model``)."""
        m = self.metadata
        keep = ("method", "created", "params", "metrics", "training", "preprocessing", "versions")
        return {
            **{k: m[k] for k in keep if k in m},
            "classes": self.classes,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "image": self.image_spec.to_dict(),
            "backend": self.backend,
            "scores": self.scores_are,
            "task": self.task,
        }
