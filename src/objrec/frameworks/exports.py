"""Each framework's deployment path, exported from the trained model and run locally, with a
parity check against the framework's own predictions on the same images.

- PyTorch models (hand loop, Lightning, objrec's loop): ONNX (``torch.onnx.export``, the
  TorchScript exporter objrec's ``export`` uses) run by onnxruntime, and an ExecuTorch
  ``.pte`` (objrec's exporter, :func:`objrec.serving.export.module_to_executorch_bytes`:
  ``torch.export``, XNNPACK-lowered, float32) run by ``executorch.runtime``; without the
  ``executorch`` package that check is an error entry saying how to install it.
- Keras on the TensorFlow backend and raw TensorFlow: a SavedModel (what TF Serving loads),
  reloaded with ``tf.saved_model.load``, and ``.tflite`` from TensorFlow's converter, run
  by LiteRT (``ai_edge_litert``) when installed, else ``tf.lite.Interpreter``.

Every check returns ``{"format", "bytes", "max_abs_diff" (of the outputs), "agreement"
(fraction of equal argmax predictions)}``, or ``{"format", "error"}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def _parity(fmt: str, ref: np.ndarray, out: np.ndarray, path: Path) -> dict:
    size = (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    return {
        "format": fmt,
        "bytes": int(size),
        "max_abs_diff": float(np.max(np.abs(ref - out))),
        "agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
    }


def _guard(fmt: str, fn) -> dict:
    try:
        return fn()
    except Exception as e:  # an export failing is a result, not a crash of the run
        return {"format": fmt, "error": f"{type(e).__name__}: {e}"[:300]}


def export_torch(model, x: np.ndarray, folder: Path) -> list[dict]:
    """``x``: float32 (N, H, W, C) normalised; the model takes (N, C, H, W)."""
    import torch

    # A fresh C-order copy: with C = 1 a permuted view also looks channels-last to PyTorch,
    # whose convolutions would then return channels-last maps that .view cannot flatten.
    xt = torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), order="C"))
    model = model.eval().to("cpu")
    with torch.no_grad():
        ref = model(xt).numpy()

    def onnx():
        import onnxruntime as ort

        path = folder / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                model, (xt[:2],), str(path), dynamo=False, opset_version=17,
                input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
            )  # fmt: skip
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return _parity("onnx", ref, sess.run(None, {"x": xt.numpy()})[0], path)

    def pte():
        from objrec.serving.export import (
            executorch_method,
            module_to_executorch_bytes,
            run_executorch,
        )

        path = folder / "model.pte"
        path.write_bytes(module_to_executorch_bytes(model, xt[0]))
        out = run_executorch(executorch_method(path), xt.numpy())
        return {**_parity("pte", ref, out, path), "runtime": "executorch.runtime"}

    return [_guard("onnx", onnx), _guard("pte", pte)]


def _tflite(saved: Path, x: np.ndarray, ref: np.ndarray, folder: Path) -> dict:
    import tensorflow as tf

    path = folder / "model.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    try:
        from ai_edge_litert.interpreter import Interpreter

        runtime = "ai_edge_litert"
    except ImportError:
        Interpreter, runtime = tf.lite.Interpreter, "tf.lite"
    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return {**_parity("tflite", ref, interp.get_tensor(out["index"]), path), "runtime": runtime}


def export_tensorflow(model, x: np.ndarray, folder: Path, *, keras_model: bool) -> list[dict]:
    """SavedModel and ``.tflite`` of a Keras model (TensorFlow backend) or a ``tf.Module``."""
    import tensorflow as tf

    saved = folder / "saved_model"
    if keras_model:
        ref = np.asarray(model.predict(x, verbose=0))
    else:
        ref = model(tf.constant(x)).numpy()

    def savedmodel():
        if keras_model:
            model.export(str(saved), format="tf_saved_model", verbose=False)
            loaded = tf.saved_model.load(str(saved))  # kept: its functions use its variables
            fn = loaded.serve
        else:
            sig = tf.function(
                model.__call__, input_signature=[tf.TensorSpec([None, *x.shape[1:]], tf.float32)]
            )
            tf.saved_model.save(model, str(saved), signatures={"serving_default": sig})
            loaded = tf.saved_model.load(str(saved))
            fn = loaded.signatures["serving_default"]
        out = fn(tf.constant(x))
        out = next(iter(out.values())) if isinstance(out, dict) else out
        return _parity("savedmodel", ref, np.asarray(out), saved)

    results = [_guard("savedmodel", savedmodel)]
    if "error" not in results[0]:
        results.append(_guard("tflite", lambda: _tflite(saved, x, ref, folder)))
    return results


def export_model(model, x: np.ndarray, folder: str | Path) -> list[dict]:
    """The deployment checks that suit ``model``'s framework (none for Keras on the torch
    or jax backends: their exports are the backend's own)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(x, dtype=np.float32)
    torch = sys.modules.get("torch")
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        if keras.backend.backend() != "tensorflow":
            return []
        return export_tensorflow(model, x, folder, keras_model=True)
    if torch is not None and isinstance(model, torch.nn.Module):
        return export_torch(model, x, folder)
    return export_tensorflow(model, x, folder, keras_model=False)
