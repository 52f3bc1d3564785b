"""Triton model repository export: config.pbtxt parsed strictly by Triton's own ModelConfig
protobuf (from tritonclient) and checked against the ONNX graph beside it."""

import numpy as np
import onnx
import pytest

from objrec.serving.export import export, onnx_session, run_onnx

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2",
    reason="tritonclient not installed (pip install 'tritonclient[http]')",
)
from google.protobuf import text_format  # noqa: E402

_ONNX_TO_TRITON = {onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def _check_repository(folder, est):
    """Parse ``folder/config.pbtxt`` (unknown fields are errors) and hold it against
    ``folder/1/model.onnx``: names, dtypes, shapes, batch dimension."""
    config = text_format.Parse(
        (folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    graph = onnx.load(folder / "1" / "model.onnx").graph
    assert config.name == folder.name and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size >= 1 and config.HasField("dynamic_batching")
    for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
        assert [d.name for d in declared] == [a.name for a in actual]
        for d, a in zip(declared, actual, strict=True):
            t = a.type.tensor_type
            assert model_config_pb2.DataType.Name(d.data_type) == _ONNX_TO_TRITON[t.elem_type]
            batch, *rest = t.shape.dim
            assert not batch.HasField("dim_value")  # a dynamic batch axis, Triton's to fill
            assert list(d.dims) == [x.dim_value for x in rest]
    assert list(config.input[0].dims) == list(est.input_shape_)
    assert list(config.output[0].dims) == [len(est.classes_)]
    return config


def test_cnn_triton_repository(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    res = export(cnn, tmp_path / "repo", format="triton", check_images=X)
    assert res.path == tmp_path / "repo" / "simple_cnn" and all(r.passed for r in res.reports)
    _check_repository(res.path, cnn)
    got = run_onnx(onnx_session((res.path / "1" / "model.onnx").read_bytes()), X)
    np.testing.assert_allclose(got, cnn.predict_proba(X), atol=1e-4)


def test_classic_and_int8_triton_repositories(tmp_path, pixels_logreg, cnn, digits_16, export_int8):
    _, _, X, _ = digits_16
    res = export(pixels_logreg, tmp_path / "repo", format="triton", check_images=X)
    _check_repository(res.path, pixels_logreg)
    q = export_int8(tmp_path / "q", "triton")
    assert q.quantization.passed
    _check_repository(q.path, cnn)


def test_a_config_that_disagrees_with_the_graph_is_caught(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    res = export(cnn, tmp_path / "repo", format="triton", check_images=X[:8])
    cfg = res.path / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("dims: [ 10 ]", "dims: [ 11 ]"))
    with pytest.raises(AssertionError):
        _check_repository(res.path, cnn)
    cfg.write_text(cfg.read_text().replace("dynamic_batching", "dynamic_batchin"))
    with pytest.raises(text_format.ParseError):
        _check_repository(res.path, cnn)


def test_export_cli_triton(cnn_model_dir, digits_16, tmp_path, capsys):
    from objrec.cli import main

    from .helpers import png_bytes

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, x in enumerate(digits_16[2][:8]):
        (imgs / f"{i}.png").write_bytes(png_bytes(x))
    rc = main(
        [
            "export",
            str(cnn_model_dir),
            "--format",
            "triton",
            "-o",
            str(tmp_path / "r"),
            "--check-data",
            str(imgs),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "config.pbtxt" in text and "latency of one image" in text
    assert (tmp_path / "r" / "simple_cnn" / "1" / "model.onnx.json").is_file()
