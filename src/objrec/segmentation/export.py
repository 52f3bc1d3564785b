"""The U-Net segmenter as an ONNX model, preprocessing and softmax inside, with a parity
check of its per-pixel probabilities against PyTorch.

The ONNX model takes ``images`` uint8 (B, H, W, 3) (batch, height and width dynamic,
sides multiples of ``2 ** depth``) and returns ``proba`` float32 (B, L, H, W). Its metadata
(ONNX ``metadata_props``, JSON values) says what the channels of ``proba`` are, as the model
folder does: ``task`` "segment", ``method``, ``classes`` (the labels 0..L-1),
``class_names`` (one per label, when the model file records them), ``input_shape`` (the
training scenes' [H, W, 3]), ``input_dtype`` "uint8", ``producer`` "objrec", ``grouping``
("centers" or "watershed", how the model file groups objects).

A U-Net with the centre head (``grouping`` "centers") has two more outputs: ``center``
float32 (B, 1, H, W), the object-centre heatmap, and ``offset`` float32 (B, 2, H, W), dy and
dx in pixels from each pixel to its object's centre; group them with
:func:`objrec.segmentation.centers.panoptic_from_centers`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from objrec.errors import InputError

INPUT_NAME, OUTPUT_NAME = "images", "proba"
CENTER_NAME, OFFSET_NAME = "center", "offset"


def _has_centers(seg) -> bool:
    return bool(getattr(seg, "has_centers", False))


def _module(seg):
    import torch

    L, centers = int(seg.n_labels_), _has_centers(seg)

    class Wrapped(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, images):
            x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            out = self.net(x)
            if not centers:
                return out.softmax(1)
            return out[:, :L].softmax(1), out[:, L : L + 1], out[:, L + 1 : L + 3]

    return Wrapped(seg.net_).eval()


def unet_to_onnx(seg, path, *, opset: int = 17, side: int = 96) -> Path:
    """Write ``seg`` (a fitted :class:`~objrec.segmentation.unet.UNetSegmenter`) to ``path``."""
    import torch

    if getattr(seg, "method", None) != "unet" or not hasattr(seg, "net_"):
        raise InputError("only a fitted U-Net segmenter exports to ONNX")
    example = torch.zeros((2, side, side, 3), dtype=torch.uint8)
    buf = io.BytesIO()
    dyn = {0: "batch", 1: "height", 2: "width"}
    outs = [OUTPUT_NAME, CENTER_NAME, OFFSET_NAME] if _has_centers(seg) else [OUTPUT_NAME]
    axes = {INPUT_NAME: dyn, **{o: {0: "batch", 2: "height", 3: "width"} for o in outs}}
    with torch.no_grad():
        torch.onnx.export(
            _module(seg), (example,), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=outs, dynamic_axes=axes,
        )  # fmt: skip
    path = Path(path)
    path.write_bytes(_with_metadata(buf.getvalue(), seg))
    return path


def _with_metadata(model_bytes: bytes, seg) -> bytes:
    import json

    import onnx

    model = onnx.load_from_string(model_bytes)
    meta = getattr(seg, "objrec_metadata_", None)
    names = None if meta is None else meta.class_names
    props = {
        "task": "segment",
        "method": seg.method,
        "classes": json.dumps(seg.classes_.tolist()),
        "class_names": json.dumps(None if names is None else list(names)),
        "input_shape": json.dumps([int(s) for s in getattr(seg, "input_shape_", ())]),
        "input_dtype": "uint8",
        "producer": "objrec",
        "grouping": getattr(seg, "grouping", "watershed"),
    }
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def onnx_parity(seg, path, images) -> dict:
    """Largest absolute difference of the per-pixel probabilities between onnxruntime
    and PyTorch on ``images`` uint8 (N, H, W, 3), and the share of pixels whose argmax
    label agrees; with the centre head also ``center_max_abs_diff`` (heatmap) and
    ``offset_max_abs_diff`` (pixels)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {INPUT_NAME: np.ascontiguousarray(images, np.uint8)}
    if not _has_centers(seg):
        got = sess.run([OUTPUT_NAME], feed)[0]
        ref = seg.predict_proba(images)
        extra = {}
    else:
        got, heat, off = sess.run([OUTPUT_NAME, CENTER_NAME, OFFSET_NAME], feed)
        ref, ref_heat, ref_off = seg.predict_heads(images)
        extra = {
            "center_max_abs_diff": float(np.abs(heat[:, 0] - ref_heat).max()),
            "offset_max_abs_diff": float(np.abs(off - ref_off).max()),
        }
    return {
        "max_abs_diff": float(np.abs(got - ref).max()),
        "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
        **extra,
    }
