import json

import numpy as np
import pytest

from objrec.serving.export import (
    ExportError,
    compare_outputs,
    export,
    onnx_session,
    run_onnx,
    run_opencv,
)
from objrec.serving.preprocess import decode_image, to_model_input

from .helpers import png_bytes


def test_cnn_onnx_parity_with_pytorch_and_opencv(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    out = tmp_path / "m.onnx"
    res = export(cnn, out, check_images=X, dynamic_batch=True)
    assert [r.runtime for r in res.reports] == ["onnxruntime", "opencv-dnn"]
    assert all(r.passed and r.n_images == len(X) for r in res.reports)
    data = out.read_bytes()
    # independent re-check: ONNX Runtime and cv2.dnn against the estimator itself
    ref = cnn.predict_proba(X)
    got = run_onnx(onnx_session(data), X)
    assert np.abs(got - ref).max() <= 1e-4
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    np.testing.assert_array_equal(run_opencv(data, X[:20]).argmax(1), ref[:20].argmax(1))
    import onnx

    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert json.loads(meta["classes"]) == list(range(10))
    assert meta["input_dtype"] == "uint8"


def test_raw_image_file_gives_same_answer(tmp_path, cnn, digits_16):
    # an RGB file at another size, through the shared preprocessing then the ONNX graph
    _, _, X, _ = digits_16
    big = np.repeat(np.kron(X[0], np.ones((3, 3), np.uint8))[..., None], 3, axis=-1)
    img = to_model_input([decode_image(png_bytes(big))], cnn.input_shape_)
    out = tmp_path / "m.onnx"
    export(cnn, out, check_images=X[:8])
    got = run_onnx(onnx_session(out.read_bytes()), img)
    np.testing.assert_allclose(got, cnn.predict_proba(img), atol=1e-4)


def test_static_batch_and_torchscript(tmp_path, cnn, digits_16):
    import torch

    _, _, X, _ = digits_16
    out = tmp_path / "s.onnx"
    export(cnn, out, check_images=X[:10], dynamic_batch=False)
    sess = onnx_session(out.read_bytes())
    assert sess.get_inputs()[0].shape[0] == 1
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    res = export(cnn, tmp_path / "m.pt", format="torchscript", check_images=X)
    assert res.reports[0].passed
    m = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        got = m(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(got, cnn.predict_proba(X), atol=1e-5)


def test_parity_failure_raises_and_writes_nothing(tmp_path, cnn, digits_16):
    _, _, X, _ = digits_16
    import copy

    import torch

    # a model whose own preprocessing ignores std while the exported graph applies it
    bad = copy.deepcopy(cnn)
    mean = torch.tensor(cnn.preprocessing_["mean"]).reshape(1, -1, 1, 1)
    bad.to_tensor = lambda X: torch.from_numpy(np.asarray(X, np.float32)[:, None] / 255) - mean
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="parity check failed"):
        export(bad, out, check_images=X)
    assert not out.exists()
    with pytest.raises(ExportError, match="parity check failed"):
        export(cnn, out, check_images=X, tolerance=0.0)  # float rounding exists
    assert not out.exists()
    r = compare_outputs(np.array([[0.6, 0.4]]), np.array([[0.4, 0.6]]), "x")
    assert not r.passed and r.top1_agreement == 0.0


def test_classic_pixels_pipeline_to_onnx(tmp_path, pixels_logreg, digits_16):
    _, _, X, _ = digits_16
    out = tmp_path / "c.onnx"
    res = export(pixels_logreg, out, check_images=X)
    assert res.reports[0].runtime == "onnxruntime" and res.reports[0].passed
    got = run_onnx(onnx_session(out.read_bytes()), X)
    np.testing.assert_allclose(got, pixels_logreg.predict_proba(X), atol=1e-4)
    with pytest.raises(ExportError, match="TorchScript export is for CNNs"):
        export(pixels_logreg, tmp_path / "c.pt", format="torchscript", check_images=X)


def test_hog_pipeline_is_not_exportable(tmp_path, digits_16):
    import objrec

    Xtr, ytr, X, _ = digits_16
    est = objrec.make_method("hog-svm").fit(Xtr[:100], ytr[:100])
    with pytest.raises(ExportError, match="HOG"):
        export(est, tmp_path / "h.onnx", check_images=X)
    assert not (tmp_path / "h.onnx").exists()


def test_rgb_cnn_onnx_parity(tmp_path, digits_16):
    import objrec

    # colour images (N, H, W, 3): the graph moves channels first itself
    X, y, Xt, _ = digits_16
    rng = np.random.default_rng(0)
    tint = rng.uniform(0.3, 1.0, size=(len(X), 1, 1, 3))
    Xc = (X[..., None] * tint).astype(np.uint8)
    est = objrec.make_method("simple_cnn", epochs=1, verbose=False).fit(Xc[:120], y[:120])
    check = np.repeat(Xt[:30, ..., None], 3, axis=-1)
    res = export(est, tmp_path / "rgb.onnx", check_images=check)
    assert [r.passed for r in res.reports] == [True, True]
    sess = onnx_session((tmp_path / "rgb.onnx").read_bytes())
    assert sess.get_inputs()[0].shape[1:] == [16, 16, 3]


def test_knn_exports_with_distance_and_uniform_weights(tmp_path, digits_16):
    import objrec

    Xtr, ytr, X, _ = digits_16
    # weights="distance" (the default): objrec's own graph; training images are at
    # distance 0 from themselves, where only the exact matches vote
    check = np.concatenate([X, Xtr[:10]])
    for weights in ("distance", "uniform"):
        est = objrec.make_method("pixels-knn", weights=weights).fit(Xtr, ytr)
        res = export(est, tmp_path / f"k-{weights}.onnx", check_images=check)
        assert all(r.passed for r in res.reports)
        got = run_onnx(onnx_session((tmp_path / f"k-{weights}.onnx").read_bytes()), check)
        np.testing.assert_allclose(got, est.predict_proba(check), atol=1e-4)
        np.testing.assert_array_equal(got.argmax(1), est.predict(check))


def test_chunk_size_follows_the_largest_activation(cnn, pixels_logreg):
    from objrec.serving.export import CHUNK_ACTIVATION_BYTES, onnx_chunk_size

    # simple_cnn on 16x16: the first convolution's output, 32 x 14 x 14 float32, is largest
    assert onnx_chunk_size(cnn) == CHUNK_ACTIVATION_BYTES // (32 * 14 * 14 * 4)
    assert onnx_chunk_size(pixels_logreg) is None


def test_chunked_run_matches_whole_batch(cnn, digits_16):
    from objrec.serving.export import to_onnx_bytes
    from objrec.serving.predictor import Predictor

    X = digits_16[2][:100]
    session = onnx_session(to_onnx_bytes(cnn))
    whole = run_onnx(session, X)
    np.testing.assert_allclose(run_onnx(session, X, batch_size=7), whole, atol=1e-6)
    p = Predictor(cnn, backend="onnxruntime")
    p.chunk_size = 7  # 100 images: 14 full chunks and one of 2
    np.testing.assert_allclose(p.scores(X), whole, atol=1e-6)


def test_predictor_shares_a_batch_across_threads_in_order(cnn, digits_16):
    import threading

    from objrec.serving.export import to_onnx_bytes
    from objrec.serving.predictor import Predictor

    X = digits_16[2][:100]
    whole = run_onnx(onnx_session(to_onnx_bytes(cnn)), X)
    p = Predictor(cnn, backend="onnxruntime", threads=3)
    p.chunk_size = 7
    calls, entered = [], []
    # the first call waits for a second one: only shares run at the same time get past it
    together = threading.Barrier(2, timeout=10)

    class Recording:  # the session, recording each call's thread and batch size
        def __init__(self, session):
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, names, feeds):
            calls.append((threading.current_thread().name, len(next(iter(feeds.values())))))
            entered.append(1)
            if len(entered) <= 2:
                together.wait()
            return self.session.run(names, feeds)

    p._session = Recording(p._session)
    np.testing.assert_allclose(p.scores(X), whole, atol=1e-6)  # shares come back in order
    assert sum(n for _, n in calls) == 100 and max(n for _, n in calls) <= 7
    assert len({name for name, _ in calls}) > 1  # more than one thread ran the batch
    assert all(name.startswith("objrec-onnx") for name, _ in calls)
    calls.clear()
    p.scores(X[:5])  # one chunk: run on the calling thread
    assert calls == [(threading.current_thread().name, 5)]
    one = Predictor(cnn, backend="onnxruntime", threads=1)
    assert one._pool is None
    np.testing.assert_allclose(one.scores(X), whole, atol=1e-6)
