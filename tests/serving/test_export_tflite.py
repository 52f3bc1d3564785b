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


def test_int8_tflite_keeps_top1_and_accuracy(tmp_path, cnn, digits_16, export_int8):
    from objrec.serving.export import LITERT_QUANT_SCHEME, tflite_interpreter

    Xtr, _, X, y = digits_16
    out = tmp_path / "q.tflite"
    q = export_int8(out, "tflite").quantization
    assert q.scheme == LITERT_QUANT_SCHEME and q.passed and q.calibration_images == len(Xtr)
    # really int8 kernels: int8 tensors in the written file, uint8 in, float32 out
    interp = tflite_interpreter(out.read_bytes())
    dtypes = {t["dtype"] for t in interp.get_tensor_details()}
    assert np.int8 in dtypes
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.float32
    # the recorded numbers, recomputed from the written file and the estimator
    got = runner(out, "tflite")(X)
    ref = cnn.predict_proba(X)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    assert q.top1_agreement == pytest.approx(agree) and agree >= 0.99
    assert q.accuracy_float == pytest.approx(float(np.mean(ref.argmax(1) == y)))
    assert q.accuracy_quantized == pytest.approx(float(np.mean(got.argmax(1) == y)))
    assert np.abs(got - ref).max() > 1e-6  # a different (quantised) model
    fl = tmp_path / "f.tflite"
    export(cnn, fl, format="tflite", check_images=X[:4])
    assert out.stat().st_size < fl.stat().st_size / 2  # int8 weights


def test_failed_int8_tflite_check_writes_nothing(tmp_path, monkeypatch, export_int8):
    import objrec.serving.export as ex

    # calibrated on black images only: the activation ranges are wrong for real digits
    real = ex.cnn_to_tflite_bytes
    monkeypatch.setattr(
        ex,
        "cnn_to_tflite_bytes",
        lambda est, calibration_images=None: real(
            est, calibration_images=calibration_images[:4] * 0
        ),
    )
    out = tmp_path / "q.tflite"
    with pytest.raises(ExportError, match="int8 check failed"):
        export_int8(out, "tflite")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_cli_tflite_int8(cnn_model_dir, tmp_path, capsys):
    import json

    from objrec.cli import main
    from objrec.metadata import QuantizationRecord

    out = tmp_path / "q.tflite"
    rc = main(
        [
            "export",
            str(cnn_model_dir),
            "--format",
            "tflite",
            "--quantize",
            "int8",
            "--calibration-size",
            "128",
            "-o",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file(), text
    side = json.loads((tmp_path / "q.tflite.json").read_text())
    q = QuantizationRecord.from_json(side["quantization"])
    assert q.passed and q.test_images > 100 and q.calibration_images == 128
    assert side["input"]["shape"][0] == 1  # LiteRT's fixed batch
    assert f"{q.top1_agreement:.2%}" in text and "latency of one image" in text
