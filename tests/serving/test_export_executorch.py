"""ExecuTorch export: an XNNPACK-delegated .pte, run by executorch.runtime, against PyTorch."""

import importlib.util

import numpy as np
import pytest

# find_spec, not an import: executorch (and torchao) load only when these tests run
if importlib.util.find_spec("executorch") is None:
    pytest.skip(
        "executorch not installed (pip install 'objrec[executorch]')", allow_module_level=True
    )

from objrec.serving.export import (
    EXECUTORCH_MAX_BATCH,
    ExportError,
    export,
    runner,
)


def test_cnn_executorch_parity_with_pytorch(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    out = tmp_path / "m.pte"
    res = export(cnn, out, format="executorch", check_images=X)
    assert [r.runtime for r in res.reports] == ["executorch"] and res.reports[0].passed
    # independent re-run of the written file against the estimator, at batch 1 and at a
    # batch larger than the program's memory plan (run in chunks)
    run = runner(out, "executorch")
    ref = cnn.predict_proba(X)
    one = run(X[:1])
    assert one.shape == (1, 10)
    np.testing.assert_allclose(one, ref[:1], atol=1e-4)
    big = np.concatenate([X] * 3)  # 300 images > EXECUTORCH_MAX_BATCH
    assert len(big) > EXECUTORCH_MAX_BATCH
    got = run(big)
    assert np.abs(got - np.concatenate([ref] * 3)).max() <= 1e-4
    np.testing.assert_array_equal(got[: len(X)].argmax(1), ref.argmax(1))


def test_executorch_parity_failure_writes_nothing(tmp_path, cnn, digits_16):
    import copy

    import torch

    _, _, X, _ = digits_16
    bad = copy.deepcopy(cnn)  # the estimator ignores std while the graph applies it
    mean = torch.tensor(cnn.preprocessing_["mean"]).reshape(1, -1, 1, 1)
    bad.to_tensor = lambda X: torch.from_numpy(np.asarray(X, np.float32)[:, None] / 255) - mean
    out = tmp_path / "bad.pte"
    with pytest.raises(ExportError, match="parity check failed"):
        export(bad, out, format="executorch", check_images=X)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_classic_pipeline_is_refused(tmp_path, pixels_logreg, digits_16):
    _, _, X, _ = digits_16
    with pytest.raises(ExportError, match="for CNNs"):
        export(pixels_logreg, tmp_path / "m.pte", format="executorch", check_images=X)


def test_export_cli_executorch(cnn_model_dir, digits_16, tmp_path, capsys):
    from objrec.cli import main

    from .helpers import png_bytes

    image_tree = tmp_path / "imgs"
    image_tree.mkdir()
    for i, x in enumerate(digits_16[2][:12]):
        (image_tree / f"{i}.png").write_bytes(png_bytes(x))
    out = tmp_path / "m.pte"
    rc = main(
        [
            "export",
            str(cnn_model_dir),
            "--format",
            "executorch",
            "-o",
            str(out),
            "--check-data",
            str(image_tree),
            "--check-size",
            "32",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and "executorch: ok" in text
    assert "KiB" in text and "latency of one image" in text


def test_int8_executorch_keeps_top1_and_accuracy(tmp_path, cnn, digits_16, export_int8):
    _, _, X, y = digits_16
    out = tmp_path / "q.pte"
    q = export_int8(out, "executorch").quantization
    assert q.scheme == "xnnpack-pt2e-static-symmetric" and q.passed
    got = runner(out, "executorch")(X)  # recomputed from the written file
    ref = cnn.predict_proba(X)
    assert q.top1_agreement == pytest.approx(float(np.mean(got.argmax(1) == ref.argmax(1))))
    assert q.accuracy_quantized == pytest.approx(float(np.mean(got.argmax(1) == y)))
    assert np.abs(got - ref).max() > 1e-6  # really a different (quantised) model
    fl = tmp_path / "f.pte"
    export(cnn, fl, format="executorch", check_images=X[:4])
    assert out.stat().st_size < fl.stat().st_size / 2  # int8 weights
