"""The U-Net segmenter as an ONNX model, preprocessing and softmax inside, with a parity
check of its per-pixel probabilities against PyTorch.

The ONNX model takes ``images`` uint8 (B, H, W, 3) (batch, height and width dynamic,
sides multiples of ``2 ** depth``) and returns ``proba`` float32 (B, L, H, W). Its metadata
(ONNX ``metadata_props``, JSON values) says what the channels of ``proba`` are, as the model
folder does: ``task`` "segment", ``method``, ``classes`` (the labels 0..L-1),
``class_names`` (one per label, when the model file records them), ``input_shape`` (the
training scenes' [H, W, 3]), ``input_dtype`` "uint8", ``producer`` "objrec".
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from objrec.errors import InputError

INPUT_NAME, OUTPUT_NAME = "images", "proba"


def _module(seg):
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, images):
            x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            return self.net(x).softmax(1)

    return Wrapped(seg.net_).eval()


def unet_to_onnx(seg, path, *, opset: int = 17, side: int = 96) -> Path:
    """Write ``seg`` (a fitted :class:`~objrec.segmentation.unet.UNetSegmenter`) to ``path``."""
    import torch

    if getattr(seg, "method", None) != "unet" or not hasattr(seg, "net_"):
        raise InputError("only a fitted U-Net segmenter exports to ONNX")
    example = torch.zeros((2, side, side, 3), dtype=torch.uint8)
    buf = io.BytesIO()
    dyn = {0: "batch", 1: "height", 2: "width"}
    with torch.no_grad():
        torch.onnx.export(
            _module(seg), (example,), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dyn, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
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
    }
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def onnx_parity(seg, path, images) -> dict:
    """Largest absolute difference of the per-pixel probabilities between onnxruntime
    and PyTorch on ``images`` uint8 (N, H, W, 3), and the share of pixels whose argmax
    label agrees."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images, np.uint8)})[0]
    ref = seg.predict_proba(images)
    return {
        "max_abs_diff": float(np.abs(got - ref).max()),
        "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
    }
