"""LiteRT (TFLite) export: litert-torch's conversion, run by ai-edge-litert's interpreter,
against PyTorch. litert-torch needs its own environment (``make litert-env``)."""

import importlib.util

import numpy as np
import pytest

if (
    importlib.util.find_spec("litert_torch") is None
    or importlib.util.find_spec("ai_edge_litert") is None
):
    pytest.skip(
        "litert-torch / ai-edge-litert not installed: they live in their own environment "
        "(make litert-env; typing-extensions<4.13)",
        allow_module_level=True,
    )

from objrec.serving.export import ExportError, export, runner


def test_cnn_tflite_parity_with_pytorch(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    out = tmp_path / "m.tflite"
    res = export(cnn, out, format="tflite", check_images=X)
    assert [r.runtime for r in res.reports] == ["litert"] and res.reports[0].passed
    got = runner(out, "tflite")(X)  # the written file, rerun
    ref = cnn.predict_proba(X)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


def test_tflite_refuses_classic_pipelines(tmp_path, pixels_logreg, digits_16):
    _, _, X, _ = digits_16
    with pytest.raises(ExportError, match="for CNNs"):
        export(pixels_logreg, tmp_path / "m.tflite", format="tflite", check_images=X)
