"""Export a trained model to ONNX or TorchScript, with the preprocessing inside the graph.

The exported model takes raw images exactly as objrec holds them, uint8
``(N, H, W)`` (grey) or ``(N, H, W, C)`` (colour) at the model's ``input_shape``, and
returns class probabilities ``(N, K)`` float32 (input ``images``, output
``probabilities``; the class names are in the ONNX metadata as ``classes``, the image
spec as ``image``). The arrays fed to it come from the one image pipeline,
:mod:`objrec.data.images`, with the model's recorded spec (:func:`input_images`: decode,
colour, resize filter and aspect policy exactly as training saw the files), so a
consumer needs no other knowledge of the training set.

Every export runs a parity check on real images before it is accepted: the
probabilities of the original estimator (PyTorch or scikit-learn) and of the exported
model (ONNX Runtime; TorchScript reloaded) must differ by at most ``tolerance``
(default 1e-4) and agree on the top-1 class for every image, otherwise
:class:`ExportError` is raised and no file is left behind. ONNX files of CNNs are also
loaded and run with OpenCV's ``cv2.dnn``, an independent consumer, under the same rule.

What can be exported
--------------------
* CNNs (``CNNClassifier``): ONNX (legacy TorchScript-based ``torch.onnx.export``, opset
  17 by default, dynamic batch axis optional), TorchScript (``torch.jit.trace``) and
  ExecuTorch (``torch.export`` lowered to an XNNPACK-delegated ``.pte``, batch 1 to
  :data:`EXECUTORCH_MAX_BATCH`; the optional ``executorch`` package, whose
  ``executorch.runtime`` runs the parity check).
* Any ONNX-exportable model as a Triton model repository (``NAME/1/model.onnx`` and
  ``NAME/config.pbtxt``, ONNX Runtime backend, dynamic batching).
* CNNs to LiteRT (``.tflite``, ``litert-torch``, batch 1; run by ``ai-edge-litert``'s
  interpreter for the check; its own environment, ``make litert-env``).
* int8 (CNNs; ONNX, Triton, ExecuTorch, LiteRT): static quantisation calibrated on training
  images. A quantised model is a different model, so the 1e-4 parity is replaced by
  :data:`MIN_TOP1_AGREEMENT` with the float model and :data:`MAX_ACCURACY_LOSS_POINTS` of
  test accuracy (:class:`objrec.metadata.QuantizationRecord`).
* Classic pipelines whose every step skl2onnx can convert: raw pixels (flatten, scale
  to 0..1) followed by logistic regression, a multi-class linear SVM, an exact RBF SVM,
  a random forest, or kNN (``pixels-logreg``, ``pixels-svm``, ``pixels-rbf``,
  ``pixels-rf``, ``pixels-knn``). Graphs run in float64 where the converter allows, so
  tree branches and neighbour ranks match. kNN with ``weights="distance"`` (objrec's
  default), whose votes skl2onnx's converter does not weigh, is built here from ONNX
  operators (:func:`knn_distance_graph`); uniform-weight kNN goes through skl2onnx.
  Not exportable, with a clear error: a model that resizes its input internally (a
  working ``size`` below the input's: fit at that size, or ``size=None``); two-class SVM
  scores (skl2onnx's sign/shape convention differs); the Nystroem-approximated RBF SVM
  used above 20,000 training images (objrec's ``NystroemClassifier`` has no converter); ``eigen``/``fisher``
  (nearest class template in PCA/LDA space is custom code); HOG (scikit-image's ``hog`` has no
  ONNX operator set equivalent: per-cell orientation histograms with bilinear vote
  splitting and block normalisation would have to be rebuilt from primitive ops), SIFT
  (OpenCV's keypoint detector and descriptor are not ONNX operators), and the bags of
  visual words (their encoders - dense descriptor extraction, nearest-word assignment,
  histograms, spatial pyramids - are custom Python code with no skl2onnx converter).
  These run natively (``objrec predict``/``objrec serve`` handle them).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from objrec.errors import ObjrecError

if TYPE_CHECKING:
    from objrec.metadata import QuantizationRecord

DEFAULT_OPSET = 17
TOLERANCE = 1e-4
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


class ExportError(ObjrecError):
    """A model cannot be exported, or the exported model does not match the original."""


@dataclass
class ParityReport:
    """Result of comparing the original model's outputs with an exported model's."""

    runtime: str  # "onnxruntime", "opencv-dnn", "torchscript", "executorch"
    n_images: int
    max_abs_diff: float
    top1_agreement: float  # fraction of images with the same top-1 class
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.runtime}: {verdict} on {self.n_images} images, max |diff| of probabilities "
            f"{self.max_abs_diff:.2e} (limit {self.tolerance:.0e}), same top-1 for "
            f"{self.top1_agreement:.2%}"
        )


def compare_outputs(
    expected: np.ndarray, got: np.ndarray, runtime: str, tolerance: float = TOLERANCE
) -> ParityReport:
    """Compare two ``(N, K)`` output arrays: max absolute difference and top-1 agreement."""
    expected = np.asarray(expected, np.float64)
    got = np.asarray(got, np.float64)
    if expected.shape != got.shape:
        raise ExportError(
            f"{runtime}: exported model returned shape {got.shape}, expected {expected.shape}"
        )
    return ParityReport(
        runtime=runtime,
        n_images=len(expected),
        max_abs_diff=float(np.abs(expected - got).max()) if expected.size else 0.0,
        top1_agreement=float(np.mean(expected.argmax(1) == got.argmax(1))) if len(got) else 1.0,
        tolerance=tolerance,
    )


def input_images(est, images, metadata: dict | None = None) -> np.ndarray:
    """The exported graph's input for ``images``: uint8 ``(N, *est.input_shape_)``.

    ``images`` are image files (paths or bytes), decoded by :mod:`objrec.data.images`, or
    uint8 arrays; both are brought to the model's recorded
    :class:`~objrec.data.images.ImageSpec` (``metadata["image"]``, default
    ``est.objrec_metadata_``), as ``objrec predict`` and the server do.
    """
    import os

    from objrec.serving.preprocess import decode_image, spec_for_model, to_model_input

    meta = metadata if metadata is not None else getattr(est, "objrec_metadata_", {}) or {}
    shape = tuple(int(s) for s in est.input_shape_)
    spec = spec_for_model(meta, shape)
    arrays = [
        decode_image(x) if isinstance(x, str | bytes | os.PathLike) else np.asarray(x)
        for x in images
    ]
    return to_model_input(arrays, shape, spec)


def _image_metadata(est) -> dict:
    """The model's image spec for the ONNX metadata (``image``), when it records one."""
    import json

    from objrec.serving.preprocess import spec_for_model

    meta = getattr(est, "objrec_metadata_", {}) or {}
    try:
        return {"image": json.dumps(spec_for_model(meta, est.input_shape_).to_dict())}
    except Exception:  # an unusual estimator without an input shape: leave it out
        return {}


def is_cnn(est) -> bool:
    """True for networks following the CNNClassifier contract (``model_``, ``preprocessing_``)."""
    return hasattr(est, "model_") and hasattr(est, "preprocessing_")


def has_proba(est) -> bool:
    """Whether ``est`` gives probabilities: ``predict_proba`` exists and does not raise
    ``AttributeError`` (objrec's SVM pipelines define it but refuse)."""
    if not hasattr(est, "predict_proba"):
        return False
    inner = getattr(est, "classifier_", None)
    if inner is not None:
        return hasattr(inner, "predict_proba")
    try:
        est.predict_proba(np.zeros((1, *est.input_shape_), np.uint8))
    except AttributeError:
        return False
    return True


def reference_scores(est, X: np.ndarray) -> np.ndarray:
    """What the original estimator answers, ``(N, K)``: ``predict_proba`` where it gives
    probabilities, else ``decision_function`` (two-class scores s as ``[-s, s]``)."""
    if has_proba(est):
        return np.asarray(est.predict_proba(X))
    scores = np.asarray(est.decision_function(X))
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


# ----------------------------------------------------------------------------- CNNs


def images_to_proba_module(est):
    """A ``torch.nn.Module``: uint8 images ``(N, *input_shape)`` -> probabilities ``(N, K)``.

    Applies the estimator's preprocessing (``(X/255 - mean)/std``, as one multiply and one
    add, channels first, and a bilinear resize when the network's ``input_size`` differs
    from ``input_shape_``), the network, and a softmax.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    pre = est.preprocessing_
    shape = tuple(int(s) for s in est.input_shape_)
    size = tuple(int(s) for s in pre.get("input_size", shape[:2]))
    mean = torch.tensor(pre["mean"], dtype=torch.float64).reshape(1, -1, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float64).reshape(1, -1, 1, 1)
    scale, shift = (1 / (255 * std)).float(), (-mean / std).float()  # x*scale + shift

    class ImagesToProba(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("scale", scale)
            self.register_buffer("shift", shift)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = images.to(torch.float32)  # (N, H, W) or (N, H, W, C), 0..255
            x = x.unsqueeze(1) if len(shape) == 2 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
            if size != shape[:2]:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = x * self.scale + self.shift
            return torch.softmax(self.net(x), dim=1)  # (N, K)

    return ImagesToProba(est.model_).eval()


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def cnn_to_onnx_bytes(
    est, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True, metadata: dict | None = None
) -> bytes:
    """Serialised ONNX model of a CNN with its preprocessing and softmax inside."""
    import io

    import torch

    module = images_to_proba_module(est)
    example = torch.zeros((2 if dynamic_batch else 1, *est.input_shape_), dtype=torch.uint8)
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            if dynamic_batch
            else None,
        )
    return _with_metadata(buf.getvalue(), est, metadata)


def _with_metadata(model_bytes: bytes, est, metadata: dict | None) -> bytes:
    import json

    import onnx

    model = onnx.load_from_string(model_bytes)
    props = {
        "classes": json.dumps([_plain(c) for c in est.classes_]),
        "input_shape": json.dumps([int(s) for s in est.input_shape_]),
        "input_dtype": "uint8",
        "producer": "objrec",
        **_image_metadata(est),
    }
    for k, v in (metadata or {}).items():
        props[k] = v if isinstance(v, str) else json.dumps(v, default=str)
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def _plain(c):
    return c.item() if hasattr(c, "item") else c


# ---------------------------------------------------------------------- int8 (ONNX)

#: A quantised model is a different model: instead of the 1e-4 parity it must give the
#: float model's top-1 class on this fraction of the test images, and lose at most this
#: many points of test accuracy.
MIN_TOP1_AGREEMENT = 0.99
MAX_ACCURACY_LOSS_POINTS = 0.5
QUANT_SCHEME = "onnxruntime-static-qdq"


def quantize_onnx_int8(model_bytes: bytes, calibration_images: np.ndarray) -> bytes:
    """Static int8 quantisation of an objrec ONNX model (ONNX Runtime, QDQ format).

    Weights int8 per output channel, activations int8 with ranges measured (min/max) on
    ``calibration_images``, uint8 ``(N, *input_shape)`` (training images, not the test
    split the result is checked on). The uint8 input, preprocessing and softmax stay as
    they are; Conv, MatMul and Gemm run in int8. The model's metadata is kept.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    X = np.ascontiguousarray(calibration_images)
    if len(X) == 0:
        raise ExportError("int8 quantisation needs calibration images, got none")

    original = onnx.load_from_string(model_bytes)
    dim = original.graph.input[0].type.tensor_type.shape.dim[0]
    fixed = dim.HasField("dim_value")
    step = dim.dim_value if fixed else 32  # a fixed batch: exactly that many per run
    starts = range(0, len(X) - step + 1 if fixed else len(X), step)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([X[i : i + step] for i in starts])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, pre, dst = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model_bytes)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        quantized = onnx.load(str(dst))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    return quantized.SerializeToString()


def quantization_check(
    float_proba: np.ndarray,
    int8_proba: np.ndarray,
    *,
    labels: np.ndarray | None,
    classes,
    calibration_images: int,
    scheme: str = QUANT_SCHEME,
):
    """:class:`~objrec.metadata.QuantizationRecord` of an int8 model against its float model.

    ``float_proba``/``int8_proba``: ``(N, K)`` probabilities on the same test images;
    ``labels``: their true classes ``(N,)`` (values of ``classes``), or None (no accuracy).
    """
    from objrec.metadata import QuantizationRecord

    f, q = np.asarray(float_proba).argmax(1), np.asarray(int8_proba).argmax(1)
    acc_f = acc_q = None
    if labels is not None:
        truth = np.asarray(labels)
        cls = np.asarray(classes)
        acc_f = float(np.mean(cls[f] == truth))
        acc_q = float(np.mean(cls[q] == truth))
    return QuantizationRecord(
        precision="int8",
        scheme=scheme,
        calibration_images=int(calibration_images),
        test_images=len(f),
        top1_agreement=float(np.mean(f == q)),
        accuracy_float=acc_f,
        accuracy_quantized=acc_q,
        min_top1_agreement=MIN_TOP1_AGREEMENT,
        max_accuracy_loss_points=MAX_ACCURACY_LOSS_POINTS,
    )


def _set_metadata(model_bytes: bytes, key: str, value: str) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
    return model.SerializeToString()


# ----------------------------------------------------------------------- ExecuTorch

#: Largest batch an ExecuTorch program takes: its memory plan is sized for this many images
#: (the runtime refuses larger inputs), so :func:`run_executorch` feeds chunks of it.
EXECUTORCH_MAX_BATCH = 256


def _require_executorch():
    try:
        import executorch.exir
        import executorch.runtime  # noqa: F401
    except ImportError as e:
        raise ExportError(
            f"ExecuTorch export needs the executorch package ({e}); "
            "pip install 'objrec[executorch]'"
        ) from e


EXECUTORCH_QUANT_SCHEME = "xnnpack-pt2e-static-symmetric"


def module_to_executorch_bytes(module, example_item) -> bytes:
    """An ExecuTorch program (``.pte`` bytes) of any ``torch.nn.Module`` taking one tensor.

    ``torch.export`` with a dynamic batch axis (1 to :data:`EXECUTORCH_MAX_BATCH`),
    lowered with the XNNPACK partitioner. ``example_item``: one input without its batch
    axis (its dtype and shape, e.g. float32 ``(C, H, W)``); the memory plan is sized for
    :data:`EXECUTORCH_MAX_BATCH` of them.
    """
    _require_executorch()
    import torch

    example = torch.zeros((EXECUTORCH_MAX_BATCH, *example_item.shape), dtype=example_item.dtype)
    with _quiet(), torch.no_grad():
        return _lower_executorch(module.eval(), example)


def _lower_executorch(module, example) -> bytes:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    batch = torch.export.Dim("batch", min=1, max=EXECUTORCH_MAX_BATCH)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return bytes(lowered.to_executorch().buffer)


def cnn_to_executorch_bytes(est, *, calibration_images: np.ndarray | None = None) -> bytes:
    """An ExecuTorch program (``.pte`` bytes) of a CNN with its preprocessing and softmax.

    ``torch.export`` of :func:`images_to_proba_module` with a dynamic batch axis (1 to
    :data:`EXECUTORCH_MAX_BATCH`), lowered with the XNNPACK partitioner: input uint8
    ``(N, *input_shape)``, output float32 probabilities ``(N, K)``. With
    ``calibration_images`` (uint8 training images) the network is quantised to int8 first
    (PT2E with XNNPACK's quantiser: symmetric per-channel int8 weights, int8 activations
    whose ranges are measured on those images).
    """
    _require_executorch()
    import torch

    module = images_to_proba_module(est)
    # the memory plan follows the example's batch: give the largest one
    example = torch.zeros((EXECUTORCH_MAX_BATCH, *est.input_shape_), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=EXECUTORCH_MAX_BATCH)
    with _quiet(), torch.no_grad():
        if calibration_images is not None:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            graph = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            quantizer = XNNPACKQuantizer().set_global(
                get_symmetric_quantization_config(is_per_channel=True)
            )
            prepared = prepare_pt2e(graph.module(), quantizer)
            C = np.ascontiguousarray(calibration_images)
            for i in range(0, len(C), 64):
                prepared(torch.as_tensor(C[i : i + 64]))
            module = convert_pt2e(prepared)
        return _lower_executorch(module, example)


def executorch_method(path):
    """The ``forward`` method of the ExecuTorch program at ``path``, loaded by ``executorch.runtime``."""
    _require_executorch()
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path)).load_method("forward")


def run_executorch(method, X: np.ndarray) -> np.ndarray:
    """Run an ExecuTorch ``method`` on a batch ``X`` ``(N, ...)`` (for objrec's CNN programs
    uint8 images; for :func:`module_to_executorch_bytes` the module's input dtype): its
    first output ``(N, K)`` (probabilities, or the module's logits), in chunks of at most
    :data:`EXECUTORCH_MAX_BATCH`."""
    import torch

    parts = [
        method.execute([torch.as_tensor(np.ascontiguousarray(X[i : i + EXECUTORCH_MAX_BATCH]))])[
            0
        ].numpy()
        for i in range(0, len(X), EXECUTORCH_MAX_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------- classic pipelines

_NOT_EXPORTABLE = {
    "hog": "HOG (scikit-image's hog: orientation histograms per cell with vote splitting "
    "and block normalisation) has no ONNX converter",
    "sift": "SIFT (OpenCV's detector and descriptor) is not expressible in ONNX operators",
    "eigen": "eigen/fisher classify by distance to class templates in PCA (and LDA) "
    "space, custom code without a skl2onnx converter",
    "fisher": "fisher classifies by distance to class templates in PCA + LDA space, "
    "custom code without a skl2onnx converter",
    "bovw": "bag-of-visual-words encoders (dense descriptors, nearest-word assignment, "
    "histograms, spatial pyramid) are custom code without a skl2onnx converter",
}


def _classic_parts(est):
    """(kind, sklearn estimator) for the part of a classic method skl2onnx can convert.

    ``kind`` is "pixels": the sklearn estimator takes flattened pixels scaled to 0..1.
    Raises :class:`ExportError` naming the step that cannot be converted.
    """
    from sklearn.base import BaseEstimator

    name = str(getattr(est, "method_name", "") or type(est).__name__)
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    feature = str(params.get("features", params.get("descriptor", "")) or name.split("-")[0])
    for key, why in _NOT_EXPORTABLE.items():
        if key in feature.lower() or name.lower().startswith(key):
            raise ExportError(
                f"{name}: cannot export to ONNX: {why}. Use the model natively "
                "(objrec predict / objrec serve run it without ONNX)"
            )
    hook = getattr(est, "_onnx_parts", None)
    if callable(hook):  # an estimator may declare its own convertible parts
        return hook()
    for attr in ("pipeline_", "classifier_", "clf_", "estimator_"):
        inner = getattr(est, attr, None)
        if isinstance(inner, BaseEstimator):
            if feature.lower() in ("pixels", "pixel", "raw", ""):
                return "pixels", inner
    raise ExportError(
        f"{name}: cannot export to ONNX: no skl2onnx-convertible pipeline found in "
        f"{type(est).__name__} (supported: raw pixels or PCA followed by a scikit-learn "
        "classifier). Use the model natively (objrec predict / objrec serve)"
    )


def classic_to_onnx_bytes(est, *, opset: int = DEFAULT_OPSET, metadata: dict | None = None):
    """Serialised ONNX model of a classic (scikit-learn) method over raw uint8 images.

    The graph: Cast to float32, Reshape to ``(N, H*W*C)``, divide by 255 (bit for bit what
    :func:`objrec.features.pixels.pixels` computes), then the skl2onnx conversion of the
    scikit-learn part, in float64 where its converter allows it (kNN distances and tree
    thresholds in float32 change neighbours and branches near ties), else float32.
    Output ``probabilities`` (or decision scores for SVMs).
    """
    import onnx
    from onnx import TensorProto, helper

    kind, skl = _classic_parts(est)
    distance_knn = _is_distance_knn(skl)
    if len(est.classes_) == 2 and not has_proba(est):
        raise ExportError(
            f"{type(est).__name__}: two-class SVM decision scores are not exported to ONNX "
            "(skl2onnx's sign and shape conventions for them differ from scikit-learn's); "
            "use the model natively, or a classifier with probabilities (logreg, rf)"
        )
    if kind != "pixels":
        raise ExportError(f"cannot export {kind} features to ONNX")
    work = tuple(getattr(est, "work_shape_", None) or est.input_shape_[:2])
    if work != tuple(est.input_shape_[:2]):
        raise ExportError(
            f"{getattr(est, 'method_name', type(est).__name__)} resizes its "
            f"{est.input_shape_[0]}x{est.input_shape_[1]} input to {work[0]}x{work[1]} "
            "internally, which the ONNX graph does not reproduce; fit with size=None (or on "
            "images of that size) to export, or use the model natively (objrec predict / serve)"
        )
    n_features = int(np.prod(est.input_shape_))
    if distance_knn:
        skl_onnx, double = knn_distance_graph(skl, n_features, opset), True
    else:
        skl_onnx, double = _convert_sklearn(skl, n_features, opset)
    outputs = [o.name for o in skl_onnx.graph.output]
    score_out = outputs[1] if len(outputs) > 1 else outputs[0]

    # prefix graph: uint8 images -> float pixels in 0..1
    shape = ["batch", *(int(s) for s in est.input_shape_)]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["as_float", "flat_shape"], ["flat"]),
        helper.make_node("Div", ["flat", "c255"], ["pixels32"]),
    ]
    last = "pixels32"
    if double:
        nodes.append(helper.make_node("Cast", ["pixels32"], ["pixels64"], to=TensorProto.DOUBLE))
        last = "pixels64"
    pre = helper.make_graph(
        nodes,
        "objrec_preprocess",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, shape)],
        [
            helper.make_tensor_value_info(
                last, TensorProto.DOUBLE if double else TensorProto.FLOAT, ["batch", n_features]
            )
        ],
        initializer=[
            helper.make_tensor("flat_shape", TensorProto.INT64, [2], [-1, n_features]),
            helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0]),
        ],
    )
    pre_model = helper.make_model(pre, opset_imports=list(skl_onnx.opset_import))
    pre_model.ir_version = skl_onnx.ir_version
    merged = onnx.compose.merge_models(
        pre_model, skl_onnx, io_map=[(last, "pixels")], outputs=[score_out]
    )
    raw = "scores_raw" if double else OUTPUT_NAME
    for node in merged.graph.node:
        node.input[:] = [raw if i == score_out else i for i in node.input]
        node.output[:] = [raw if o == score_out else o for o in node.output]
    if double:  # the common output type: float32 probabilities
        merged.graph.node.append(
            helper.make_node("Cast", [raw], [OUTPUT_NAME], to=TensorProto.FLOAT)
        )
    out_info = merged.graph.output[0]
    out_info.name = OUTPUT_NAME
    out_info.type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.checker.check_model(merged)
    return _with_metadata(merged.SerializeToString(), est, metadata)


def _convert_sklearn(skl, n_features: int, opset: int):
    """skl2onnx conversion of ``skl`` (float64 input if supported): (ModelProto, is_double)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    errors = []
    for double in (True, False):
        tensor = DoubleTensorType if double else FloatTensorType
        for options in ({id(m): {"zipmap": False} for m in _final_classifiers(skl)}, None):
            try:
                with _quiet():
                    model = convert_sklearn(
                        skl,
                        initial_types=[("pixels", tensor([None, n_features]))],
                        target_opset={"": opset, "ai.onnx.ml": 3},
                        options=options,
                    )
                return model, double
            except Exception as e:
                errors.append(str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
    raise ExportError(
        f"cannot export {type(skl).__name__} to ONNX: skl2onnx says: {errors[-1]}. "
        "Use the model natively (objrec predict / objrec serve)"
    )


def _is_distance_knn(skl) -> bool:
    """Whether ``skl`` is a fitted distance-weighted ``KNeighborsClassifier`` (Euclidean)."""
    from sklearn.neighbors import KNeighborsClassifier

    if not isinstance(skl, KNeighborsClassifier) or skl.weights != "distance":
        return False
    if skl.effective_metric_ != "euclidean":
        raise ExportError(
            f"kNN with metric {skl.effective_metric_!r} and distance weights is not exported "
            "(only Euclidean); use the model natively (objrec predict / serve)"
        )
    return True


def knn_distance_graph(knn, n_features: int, opset: int = DEFAULT_OPSET):
    """ONNX model of a fitted distance-weighted Euclidean ``KNeighborsClassifier``.

    Input ``pixels`` float64 (N, n_features); output ``probabilities`` float64 (N, K),
    computed as scikit-learn's ``predict_proba``: the k nearest training points by
    Euclidean distance (``|x|^2 - 2 x.t + |t|^2``, in float64), votes weighted by
    1 / distance, and when a point lies at distance 0 only the points at distance 0 vote
    (with weight 1); the votes of each class summed and divided by their total.
    """
    from onnx import TensorProto, helper, numpy_helper

    T = np.asarray(knn._fit_X, dtype=np.float64)  # (M, D) training features
    if T.shape[1] != n_features:
        raise ExportError(f"kNN was fitted on {T.shape[1]} features, the input has {n_features}")
    labels = np.asarray(knn._y, dtype=np.int64).reshape(-1)  # (M,) class indices
    k = int(min(knn.n_neighbors, len(T)))
    n_classes = len(knn.classes_)
    init = [
        numpy_helper.from_array(np.ascontiguousarray(T.T), "train_T"),  # (D, M)
        numpy_helper.from_array((T**2).sum(1)[None, :], "train_sq"),  # (1, M)
        numpy_helper.from_array(labels, "train_labels"),
        numpy_helper.from_array(np.array([k], np.int64), "k"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(0.0), "zero"),
        numpy_helper.from_array(np.array([n_classes], np.int64), "depth"),
        numpy_helper.from_array(np.array([0, 1], np.int64), "onehot_values"),
        numpy_helper.from_array(np.array([-1, k, 1], np.int64), "col_shape"),
    ]
    n = helper.make_node
    nodes = [
        n("Mul", ["pixels", "pixels"], ["x2"]),
        n("ReduceSum", ["x2", "axis1"], ["x_sq"], keepdims=1),  # (N, 1)
        n("MatMul", ["pixels", "train_T"], ["xt"]),  # (N, M)
        n("Add", ["xt", "xt"], ["xt2"]),
        n("Sub", ["x_sq", "xt2"], ["d2a"]),
        n("Add", ["d2a", "train_sq"], ["d2b"]),
        n("Max", ["d2b", "zero"], ["d2"]),
        n("Sqrt", ["d2"], ["dist"]),
        n("TopK", ["dist", "k"], ["nd", "ni"], axis=1, largest=0, sorted=1),  # (N, k)
        n("Equal", ["nd", "zero"], ["is0"]),
        n("Cast", ["is0"], ["z"], to=TensorProto.DOUBLE),
        n("ReduceMax", ["z"], ["any0"], axes=[1], keepdims=1),
        n("Add", ["nd", "z"], ["nd_safe"]),  # distance 0 -> 1 (weight replaced below)
        n("Reciprocal", ["nd_safe"], ["inv"]),
        n("Cast", ["any0"], ["any0_b"], to=TensorProto.BOOL),
        n("Where", ["any0_b", "z", "inv"], ["w"]),  # (N, k)
        n("Gather", ["train_labels", "ni"], ["nl"], axis=0),  # (N, k) class indices
        n("OneHot", ["nl", "depth", "onehot_values"], ["oh_i"], axis=-1),  # (N, k, K)
        n("Cast", ["oh_i"], ["oh"], to=TensorProto.DOUBLE),
        n("Reshape", ["w", "col_shape"], ["w3"]),  # (N, k, 1)
        n("Mul", ["oh", "w3"], ["votes"]),
        n("ReduceSum", ["votes", "axis1"], ["per_class"], keepdims=0),  # (N, K)
        n("ReduceSum", ["per_class", "axis1"], ["total"], keepdims=1),
        n("Div", ["per_class", "total"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "objrec_knn_distance",
        [helper.make_tensor_value_info("pixels", TensorProto.DOUBLE, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, ["batch", n_classes])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", min(opset, 17))])
    model.ir_version = 8
    return model


def _final_classifiers(skl):
    from sklearn.pipeline import Pipeline

    if isinstance(skl, Pipeline):
        return [skl.steps[-1][1]]
    return [skl]


# ------------------------------------------------------------------------- export


def to_onnx_bytes(est, *, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> bytes:
    """Serialised ONNX model of any exportable estimator (no parity check; see :func:`export`)."""
    if is_cnn(est):
        return cnn_to_onnx_bytes(est, opset=opset, dynamic_batch=dynamic_batch)
    return classic_to_onnx_bytes(est, opset=opset)


def onnx_session(model_bytes: bytes, *, threads: int | None = None):
    """An ONNX Runtime CPU session tuned for small CPUs (``threads`` intra-op threads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


#: Activation bytes one ONNX Runtime call should keep in flight: a batch is run in chunks
#: whose largest layer output fits about twice the per-core L2 cache. For ``simple_cnn`` the
#: first convolution's output is 86.5 kB per image, so 256 images are run as chunks of 24:
#: its memory-bound max-pooling then works from cache (ONNX Runtime's profiler: 3.8 -> 1.3
#: ms per 256 images, the whole graph 15.2 -> 12.4 ms on 2 threads).
CHUNK_ACTIVATION_BYTES = 2 << 20


def onnx_chunk_size(est) -> int | None:
    """Images per ONNX Runtime call for ``est`` (None: the whole batch at once).

    CNNs: ``CHUNK_ACTIVATION_BYTES`` over the largest layer output of one image (float32,
    from :func:`objrec.nets.summary.summarize`), at least 1. Classic pipelines keep small
    per-image intermediates and run whole.
    """
    if not is_cnn(est):
        return None
    from objrec.nets.summary import summarize

    pre = est.preprocessing_  # the network's input: pre["channels"] x pre["input_size"]
    rows = summarize(est.model_, (int(pre["channels"]), *(int(s) for s in pre["input_size"])))
    largest = max(int(np.prod(r.output_shape)) for r in rows) * 4
    return max(1, CHUNK_ACTIVATION_BYTES // largest)


def run_onnx(session, X: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """Run an objrec ONNX model on uint8 images, in batches (one at a time for a fixed batch)."""
    dim = session.get_inputs()[0].shape[0]
    if isinstance(dim, int):
        batch_size = dim
    batch_size = batch_size or len(X)
    if len(X) <= batch_size:
        return session.run([OUTPUT_NAME], {INPUT_NAME: X})[0]
    parts = [
        session.run([OUTPUT_NAME], {INPUT_NAME: X[i : i + batch_size]})[0]
        for i in range(0, len(X), batch_size)
    ]
    return np.concatenate(parts)


def run_opencv(model_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Run an ONNX model with OpenCV's ``cv2.dnn`` (an independent ONNX consumer), image by image."""
    import cv2

    net = cv2.dnn.readNetFromONNX(np.frombuffer(model_bytes, np.uint8))
    out = []
    for i in range(len(X)):
        net.setInput(np.ascontiguousarray(X[i : i + 1]))
        out.append(np.array(net.forward()).reshape(1, -1))
    return np.concatenate(out)


@dataclass
class ExportResult:
    path: Path
    format: str
    reports: list[ParityReport]
    quantization: object = None  # objrec.metadata.QuantizationRecord of an int8 export

    def as_dict(self) -> dict:
        out = {
            "path": str(self.path),
            "format": self.format,
            "checks": [r.as_dict() for r in self.reports],
        }
        if self.quantization is not None:
            out["quantization"] = self.quantization.to_json()
        return out


def _require_cnn(est, fmt: str) -> None:
    """Refuse a scikit-learn pipeline for ``fmt``, a format only networks export to."""
    if not is_cnn(est):
        raise ExportError(
            f"{fmt} export is for CNNs; {type(est).__name__} is a scikit-learn "
            "pipeline: use --format onnx"
        )


def export(
    est,
    out,
    *,
    format: str = "onnx",
    check_images: np.ndarray,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    tolerance: float = TOLERANCE,
    opencv: bool | None = None,
    quantize: str | None = None,
    calibration_images: np.ndarray | None = None,
    check_labels: np.ndarray | None = None,
) -> ExportResult:
    """Export ``est`` to ``out`` and verify it on ``check_images``.

    Parameters
    ----------
    est : fitted objrec estimator (``objrec.load(...)``).
    out : file to write (``.onnx``, ``.pt``, ``.pte`` or ``.tflite``); written only if every
        check passes.
    format : "onnx", "torchscript" (CNNs only), "executorch" (CNNs only), "tflite" (CNNs
        only, litert-torch's environment) or "triton" (``out`` a folder: a Triton model
        repository, :func:`export_triton`).
    check_images : uint8 ``(N, *est.input_shape_)``, real images (e.g. the test split).
    opencv : also run the ONNX file in ``cv2.dnn``; default: for CNNs (classic graphs use
        the ``ai.onnx.ml`` operators OpenCV does not implement).
    quantize : None (float) or "int8" (CNNs; ONNX, Triton, ExecuTorch, LiteRT). ONNX: the
        float graph passes the parity check, is quantised (:func:`quantize_onnx_int8`) on
        ``calibration_images`` (uint8 training images); ExecuTorch and LiteRT quantise the
        network by PT2E on those images. The int8 model must then agree with the float one on the
        top-1 class of >= 99% of ``check_images`` and lose <= 0.5 points of accuracy
        against ``check_labels`` (true classes, ``(N,)``; None skips the accuracy limit);
        the :class:`~objrec.metadata.QuantizationRecord` is returned (and stored in the
        ONNX metadata as ``quantization``; ``objrec export`` writes it to the side file
        ``<file>.json`` for every format).

    Raises
    ------
    ExportError
        The model cannot be exported, or a parity check fails (nothing is written then).
    """
    from objrec.validation import check_images as _check

    out = Path(out)
    X = _check(check_images, what="check images")
    if tuple(X.shape[1:]) != tuple(est.input_shape_):
        raise ExportError(
            f"check images are {X.shape[1:]}, the model takes {tuple(est.input_shape_)}"
        )
    expected = reference_scores(est, X)
    reports: list[ParityReport] = []
    if quantize not in (None, "int8"):
        raise ExportError(f"unknown quantisation {quantize!r}; use int8")
    if format == "triton":
        return export_triton(
            est,
            out,
            check_images=check_images,
            opset=opset,
            tolerance=tolerance,
            opencv=opencv,
            quantize=quantize,
            calibration_images=calibration_images,
            check_labels=check_labels,
        )
    if quantize and (format not in ("onnx", "executorch", "tflite") or not is_cnn(est)):
        raise ExportError(
            "--quantize int8 is for CNNs exported to ONNX, Triton, ExecuTorch or LiteRT "
            "(--format onnx, triton, executorch or tflite)"
        )
    if quantize and calibration_images is None:
        raise ExportError("int8 quantisation needs calibration images (training images)")
    if check_labels is not None and len(check_labels) != len(X):
        raise ExportError(f"{len(check_labels)} check labels for {len(X)} check images")
    if format == "onnx":
        data = to_onnx_bytes(est, opset=opset, dynamic_batch=dynamic_batch)
        session = onnx_session(data)
        reports.append(compare_outputs(expected, run_onnx(session, X), "onnxruntime", tolerance))
        if opencv is None:
            opencv = is_cnn(est)
        if opencv:
            try:
                got = run_opencv(data, X)
            except Exception as e:  # cv2.error: the graph uses an op OpenCV lacks
                raise ExportError(f"opencv-dnn could not run the exported model: {e}") from e
            reports.append(compare_outputs(expected, got, "opencv-dnn", tolerance))
        _fail_on(reports, out)
        record = None
        if quantize:
            calib = _check(calibration_images, what="calibration images")
            data = quantize_onnx_int8(data, calib)
            got = run_onnx(onnx_session(data), X)
            record = quantization_check(
                expected,
                got,
                labels=check_labels,
                classes=est.classes_,
                calibration_images=len(calib),
            )
            if not record.passed:
                raise ExportError(f"int8 check failed, {out} not written: {record}")
            import json

            data = _set_metadata(data, "quantization", json.dumps(record.to_json()))
        from objrec.io import atomic_write_bytes

        atomic_write_bytes(out, data)
        return ExportResult(out, format, reports, record)
    elif format == "torchscript":
        _require_cnn(est, "TorchScript")
        import torch

        module = images_to_proba_module(est)
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(module, torch.as_tensor(X[: min(len(X), 2)]))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_file = Path(tmp) / out.name
            with _quiet():
                traced.save(str(tmp_file))
                reloaded = torch.jit.load(str(tmp_file))
            with torch.no_grad():
                got = reloaded(torch.as_tensor(X)).numpy()
            reports.append(compare_outputs(expected, got, "torchscript", tolerance))
            _fail_on(reports, out)
            tmp_file.replace(out)
    elif format == "executorch":
        _require_cnn(est, "ExecuTorch")
        calib = _check(calibration_images, what="calibration images") if quantize else None
        data = cnn_to_executorch_bytes(est, calibration_images=calib)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_file = Path(tmp) / out.name
            tmp_file.write_bytes(data)
            got = run_executorch(executorch_method(tmp_file), X)
            record = _check_runtime(
                expected, got, "executorch", EXECUTORCH_QUANT_SCHEME, calib, est.classes_,
                check_labels, tolerance, reports, out,
            )  # fmt: skip
            tmp_file.replace(out)
        return ExportResult(out, format, reports, record)
    elif format == "tflite":
        _require_cnn(est, "LiteRT")
        calib = _check(calibration_images, what="calibration images") if quantize else None
        data = cnn_to_tflite_bytes(est, calibration_images=calib)
        got = run_tflite(data, X)
        record = _check_runtime(
            expected, got, "litert", LITERT_QUANT_SCHEME, calib, est.classes_, check_labels,
            tolerance, reports, out,
        )  # fmt: skip
        from objrec.io import atomic_write_bytes

        atomic_write_bytes(out, data)
        return ExportResult(out, format, reports, record)
    else:
        raise ExportError(
            f"unknown export format {format!r}; use onnx, torchscript, executorch, triton or tflite"
        )
    return ExportResult(out, format, reports)


def runner(path, format: str, *, threads: int | None = None):
    """A callable uint8 images ``(N, ...)`` -> probabilities ``(N, K)`` for an exported file.

    ``format``: "onnx" (ONNX Runtime, ``threads`` intra-op threads), "torchscript",
    "executorch" or "tflite" (one LiteRT interpreter, ``threads`` threads, reused by every
    call; its fixed batch means N a multiple of it).
    """
    path = Path(path)
    if format == "onnx":
        session = onnx_session(path.read_bytes(), threads=threads)
        return lambda X: run_onnx(session, X)
    if format == "torchscript":
        import torch

        module = torch.jit.load(str(path))

        def run_ts(X):
            with torch.no_grad():
                return module(torch.as_tensor(X)).numpy()

        return run_ts
    if format == "executorch":
        method = executorch_method(path)
        return lambda X: run_executorch(method, X)
    if format == "tflite":
        interp = tflite_interpreter(path.read_bytes(), threads=threads)
        return lambda X: run_tflite(interp, X)
    raise ExportError(f"no runner for format {format!r}")


def latency_ms(run, batch: np.ndarray, *, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time in milliseconds of one call ``run(batch)``; ``batch`` uint8
    ``(N, ...)`` (``X[:1]`` for the single-image latency)."""
    import time

    x = np.ascontiguousarray(batch)
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


# ----------------------------------------------------------------- LiteRT (TFLite)


#: The scheme recorded for a LiteRT int8 export (litert-torch's PT2E quantiser).
LITERT_QUANT_SCHEME = "litert-pt2e-static-symmetric"


def _require_litert_torch():
    try:
        import litert_torch
    except ImportError as e:
        raise ExportError(
            f"LiteRT export needs litert-torch ({e}); it cannot share objrec's main "
            "environment (typing-extensions<4.13): run it from the one `make litert-env` builds"
        ) from e
    return litert_torch


def cnn_to_tflite_bytes(
    est, *, batch: int = 1, calibration_images: np.ndarray | None = None
) -> bytes:
    """A LiteRT (TensorFlow Lite) flatbuffer of a CNN with its preprocessing and softmax.

    ``litert_torch.convert`` of :func:`images_to_proba_module` at a fixed batch ``batch``:
    input uint8 ``(batch, *input_shape)``, output float32 probabilities ``(batch, K)``.
    With ``calibration_images`` (uint8 ``(M, *input_shape)``, training images) the
    network is quantised to int8 first, by litert-torch's documented PT2E path: its
    ``PT2EQuantizer`` with symmetric per-channel int8 weights and static int8 activations
    (histogram observers over those images), ``prepare_pt2e``, the calibration run,
    ``convert_pt2e(fold_quantize=False)``, then ``convert(..., quant_config=QuantConfig(
    pt2e_quantizer=...))``, which turns the quantise/dequantise pairs into int8 LiteRT
    kernels. The uint8 input, the preprocessing and the softmax stay float.
    Needs ``litert-torch`` (it pins ``typing-extensions<4.13``, so it lives in its own
    environment: ``make litert-env``).
    """
    litert_torch = _require_litert_torch()
    import torch

    module = images_to_proba_module(est)
    example = torch.zeros((batch, *est.input_shape_), dtype=torch.uint8)
    quant_config = None
    with _quiet(), torch.no_grad():
        if calibration_images is not None:
            from litert_torch.quantize.pt2e_quantizer import (
                PT2EQuantizer,
                get_symmetric_quantization_config,
            )
            from litert_torch.quantize.quant_config import QuantConfig
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            C = np.ascontiguousarray(calibration_images)
            if len(C) < batch:
                raise ExportError(f"int8 calibration needs at least {batch} images, got {len(C)}")
            quantizer = PT2EQuantizer().set_global(
                get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
            )
            graph = torch.export.export(module, (example,)).module()
            prepared = prepare_pt2e(graph, quantizer)
            for i in range(0, len(C) - batch + 1, batch):  # the graph's fixed batch
                prepared(torch.as_tensor(C[i : i + batch]))
            module = convert_pt2e(prepared, fold_quantize=False)
            quant_config = QuantConfig(pt2e_quantizer=quantizer)
        edge = litert_torch.convert(module, (example,), quant_config=quant_config)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.tflite"
            edge.export(str(path))
            return path.read_bytes()


def tflite_interpreter(model_bytes: bytes, *, threads: int | None = None):
    """A ready LiteRT interpreter (``ai_edge_litert``) for a ``.tflite`` model's bytes;
    ``threads``: its CPU threads (None: LiteRT's default)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes, num_threads=threads)
    interp.allocate_tensors()
    return interp


def run_tflite(model, X: np.ndarray) -> np.ndarray:
    """Run a LiteRT model on uint8 images ``(N, ...)``: probabilities ``(N, K)`` float32.

    ``model``: the ``.tflite`` bytes or an interpreter from :func:`tflite_interpreter`
    (reused across calls). The model has a fixed batch size ``b``; the images are fed
    ``b`` at a time, so N must be a multiple of it.
    """
    interp = tflite_interpreter(model) if isinstance(model, bytes | bytearray) else model
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    b = int(inp["shape"][0])
    if len(X) % b:
        raise ExportError(f"{len(X)} images do not split into batches of {b}")
    parts = []
    for i in range(0, len(X), b):
        interp.set_tensor(inp["index"], np.ascontiguousarray(X[i : i + b]))
        interp.invoke()
        parts.append(interp.get_tensor(out["index"]).copy())
    return np.concatenate(parts) if parts else np.zeros((0, int(out["shape"][-1])), np.float32)


# ------------------------------------------------------------------------- Triton

#: The largest batch Triton's dynamic batcher forms for an objrec model.
TRITON_MAX_BATCH = 256


def triton_model_name(est) -> str:
    """A Triton model name for ``est``: its method name, letters, digits, ``-`` and ``_`` only."""
    import re

    meta = getattr(est, "objrec_metadata_", None) or {}
    raw = str(meta.get("method") or getattr(est, "method_name", "") or "model")
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw) or "model"


def triton_config(
    name: str, input_shape, n_classes: int, *, max_batch_size: int = TRITON_MAX_BATCH
) -> str:
    """``config.pbtxt`` text of an objrec ONNX model in a Triton model repository.

    ONNX Runtime backend; input ``images`` TYPE_UINT8 with dims ``input_shape`` (the batch
    dimension is Triton's, up to ``max_batch_size``), output ``probabilities`` TYPE_FP32
    dims ``[n_classes]``; dynamic batching on, one CPU instance.
    """
    dims = ", ".join(str(int(d)) for d in input_shape)
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        'backend: "onnxruntime"\n'
        f"max_batch_size: {int(max_batch_size)}\n"
        "input [\n"
        f'  {{ name: "{INPUT_NAME}" data_type: TYPE_UINT8 dims: [ {dims} ] }}\n'
        "]\n"
        "output [\n"
        f'  {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ {int(n_classes)} ] }}\n'
        "]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {min(32, int(max_batch_size))} ]\n"
        "  max_queue_delay_microseconds: 2000\n"
        "}\n"
        "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    )


def export_triton(est, repository, **kw) -> ExportResult:
    """A Triton model repository in ``repository``: ``NAME/1/model.onnx`` (dynamic batch,
    checked as :func:`export` checks ONNX; ``kw`` go to it) and ``NAME/config.pbtxt``.
    Returns the result with ``path`` the model's folder ``repository/NAME``."""
    from objrec.io import atomic_write_bytes

    name = triton_model_name(est)
    folder = Path(repository) / name
    res = export(est, folder / "1" / "model.onnx", format="onnx", dynamic_batch=True, **kw)
    config = triton_config(name, est.input_shape_, len(est.classes_))
    atomic_write_bytes(folder / "config.pbtxt", config.encode())
    return ExportResult(folder, "triton", res.reports, res.quantization)


def _check_runtime(
    expected, got, runtime, scheme, calib, classes, labels, tolerance, reports, out
) -> QuantizationRecord | None:
    """A written model's outputs ``got`` against the PyTorch float network's ``expected``
    (N, K): the int8 check when ``calib`` (its calibration images) is given, raising
    ``ExportError`` when it fails, else the parity check of ``runtime`` appended to
    ``reports`` (raising when it fails). Returns the int8 record, or None."""
    if calib is None:
        reports.append(compare_outputs(expected, got, runtime, tolerance))
        _fail_on(reports, out)
        return None
    record = quantization_check(
        expected, got, labels=labels, classes=classes, calibration_images=len(calib),
        scheme=scheme,
    )  # fmt: skip
    if not record.passed:
        raise ExportError(f"int8 check failed, {out} not written: {record}")
    return record


def _fail_on(reports: list[ParityReport], out: Path) -> None:
    bad = [r for r in reports if not r.passed]
    if bad:
        raise ExportError(
            f"parity check failed, {out} not written: " + "; ".join(str(r) for r in bad)
        )
