"""int8 ONNX export: static quantisation calibrated on training images, held to top-1
agreement with the float model and to the accuracy it keeps on the test split."""

import json

import numpy as np
import pytest

from objrec.errors import ModelFileError
from objrec.metadata import QuantizationRecord
from objrec.serving.export import (
    ExportError,
    export,
    onnx_session,
    quantization_check,
    run_onnx,
)

pytest.importorskip("onnxruntime.quantization")


def test_int8_onnx_keeps_top1_and_accuracy(tmp_path, cnn, digits_16, export_int8):
    import onnx

    Xtr, _, X, y = digits_16
    out = tmp_path / "q.onnx"
    res = export_int8(out)
    q = res.quantization
    data = out.read_bytes()
    model = onnx.load_from_string(data)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
    assert (model.graph.input[0].type.tensor_type.elem_type) == onnx.TensorProto.UINT8
    # the recorded numbers, recomputed here from the written file and the estimator
    got = run_onnx(onnx_session(data), X)
    ref = cnn.predict_proba(X)
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    acc_f, acc_q = float(np.mean(ref.argmax(1) == y)), float(np.mean(got.argmax(1) == y))
    assert q.top1_agreement == pytest.approx(agree) and agree >= 0.99
    assert (q.accuracy_float, q.accuracy_quantized) == pytest.approx((acc_f, acc_q))
    assert 100 * (acc_f - acc_q) <= 0.5
    meta = {p.key: p.value for p in model.metadata_props}
    stored = QuantizationRecord.from_json(json.loads(meta["quantization"]))
    assert stored == q and stored.calibration_images == len(Xtr)
    assert json.loads(meta["classes"]) == list(range(10))  # float metadata kept
    # the int8 file is smaller than the float one (weights in int8)
    fl = tmp_path / "f.onnx"
    export(cnn, fl, check_images=X[:8], opencv=False)
    assert out.stat().st_size < fl.stat().st_size


def test_quantization_check_limits():
    rng = np.random.default_rng(0)
    f = rng.random((200, 4))
    q = f.copy()
    labels = f.argmax(1)
    ok = quantization_check(f, q, labels=labels, classes=[0, 1, 2, 3], calibration_images=10)
    assert ok.passed and ok.top1_agreement == 1 and ok.accuracy_loss_points == 0
    q[:3] = q[:3, ::-1]  # 3 of 200 flipped: 98.5% agreement < 99%, 1.5 points lost
    bad = quantization_check(f, q, labels=labels, classes=[0, 1, 2, 3], calibration_images=10)
    assert not bad.passed and bad.top1_agreement == pytest.approx(0.985)
    assert bad.accuracy_loss_points == pytest.approx(1.5)
    q2 = f.copy()
    q2[:1] = q2[:1, ::-1]  # 1 of 200: 99.5% agreement, but 0.5 points lost -> at the limit
    edge = quantization_check(f, q2, labels=labels, classes=[0, 1, 2, 3], calibration_images=10)
    assert edge.passed and edge.accuracy_loss_points == pytest.approx(0.5)


def test_failed_int8_check_writes_nothing(tmp_path, monkeypatch, export_int8):
    import objrec.serving.export as ex

    # a quantiser that breaks the model: its answers no longer follow the float model's
    real = ex.quantize_onnx_int8
    monkeypatch.setattr(ex, "quantize_onnx_int8", lambda d, c: real(d, c[:1] * 0 + 255))
    out = tmp_path / "q.onnx"
    with pytest.raises(ExportError, match="int8 check failed"):
        export_int8(out)
    assert not out.exists()


def test_bad_requests_and_records(tmp_path, pixels_logreg, cnn, digits_16):
    Xtr, _, X, _ = digits_16
    with pytest.raises(ExportError, match="for CNNs exported to ONNX"):
        export(
            pixels_logreg,
            tmp_path / "m.onnx",
            check_images=X,
            quantize="int8",
            calibration_images=Xtr,
        )
    with pytest.raises(ExportError, match="needs calibration images"):
        export(cnn, tmp_path / "m.onnx", check_images=X, quantize="int8")
    with pytest.raises(ExportError, match="unknown quantisation"):
        export(cnn, tmp_path / "m.onnx", check_images=X, quantize="int4", calibration_images=Xtr)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ModelFileError, match="top1_agreement"):
        QuantizationRecord("int8", "s", 1, 1, 1.5, None, None)
    with pytest.raises(ModelFileError, match="missing fields"):
        QuantizationRecord.from_json({"precision": "int8"})


def test_export_cli_int8(cnn_model_dir, tmp_path, capsys):
    from objrec.cli import main

    out = tmp_path / "q.onnx"
    rc = main(["export", str(cnn_model_dir), "--quantize", "int8", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file(), text
    side = json.loads((tmp_path / "q.onnx.json").read_text())
    q = QuantizationRecord.from_json(side["quantization"])
    assert q.passed and q.test_images > 100 and q.calibration_images == 512
    assert f"{q.top1_agreement:.2%}" in text and "points lost" in text
    assert "latency of one image" in text
