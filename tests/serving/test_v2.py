"""The Open Inference Protocol v2 routes, driven by Triton's own client (``tritonclient[http]``)
against a live uvicorn on 127.0.0.1, as a Triton or KServe user would call them."""

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httptools")
httpclient = pytest.importorskip(
    "tritonclient.http", reason="tritonclient not installed (pip install 'tritonclient[http]')"
)
from tritonclient.utils import InferenceServerException  # noqa: E402

from objrec.serving.app import create_app  # noqa: E402
from objrec.serving.predictor import Predictor  # noqa: E402

from .helpers import serve_in_thread  # noqa: E402

KEY = "s3cret-key"


def _serve(app):
    srv, thread, sock = serve_in_thread(app)
    return srv, thread, f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def served(cnn):
    predictor = Predictor(cnn, metadata={"method": "simple_cnn"}, threads=1)
    srv, thread, url = _serve(create_app(predictor, max_images=64))
    keyed_srv, keyed_thread, keyed_url = _serve(create_app(predictor, api_key=KEY))
    yield url, keyed_url
    for s, t in ((srv, thread), (keyed_srv, keyed_thread)):
        s.should_exit = True
        t.join(10)


def _infer(client, X, *, binary=True, model="simple_cnn"):
    inp = httpclient.InferInput("images", list(X.shape), "UINT8")
    inp.set_data_from_numpy(X, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    return client.infer(model, [inp], outputs=[out]).as_numpy("probabilities")


def test_health_metadata_and_readiness(served):
    client = httpclient.InferenceServerClient(served[0])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple_cnn")
    assert not client.is_model_ready("other")
    meta = client.get_model_metadata("simple_cnn")
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 16, 16, 1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("other")


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_the_estimator(served, cnn, digits_16, binary):
    _, _, X, _ = digits_16
    client = httpclient.InferenceServerClient(served[0])
    got = _infer(client, X[:40, :, :, None], binary=binary)
    assert got.dtype == np.float32 and got.shape == (40, 10)
    ref = cnn.predict_proba(X[:40])
    assert np.abs(got - ref).max() <= 1e-4
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


def test_rgb_at_another_size_goes_through_the_preprocessing(served, cnn, digits_16):
    from objrec.serving.preprocess import to_model_input

    _, _, X, _ = digits_16
    big = np.repeat(np.kron(X[:3], np.ones((1, 2, 2), np.uint8))[..., None], 3, axis=-1)
    got = _infer(httpclient.InferenceServerClient(served[0]), big)
    ref = cnn.predict_proba(to_model_input(list(big), cnn.input_shape_))
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_bad_requests_are_clear_errors(served, digits_16):
    _, _, X, _ = digits_16
    client = httpclient.InferenceServerClient(served[0])
    inp = httpclient.InferInput("images", [2, 16, 16, 1], "FP32")
    inp.set_data_from_numpy(X[:2, :, :, None].astype(np.float32))
    with pytest.raises(InferenceServerException, match="must be UINT8"):
        client.infer("simple_cnn", [inp])
    with pytest.raises(InferenceServerException, match="limit is 64"):
        _infer(client, np.zeros((65, 16, 16, 1), np.uint8))
    with pytest.raises(InferenceServerException, match="unknown model"):
        _infer(client, X[:1, :, :, None], model="nope")
    import httpx

    r = httpx.post(
        f"http://{served[0]}/v2/models/simple_cnn/infer",
        json={
            "inputs": [
                {"name": "images", "shape": [1, 2, 2], "datatype": "UINT8", "data": [1, 2, 3]}
            ]
        },
    )
    assert r.status_code == 400 and "needs 4 values, got 3" in r.json()["error"]


def test_api_key_guards_the_model_routes(served, cnn, digits_16):
    _, _, X, _ = digits_16
    anonymous = httpclient.InferenceServerClient(served[1])
    assert anonymous.is_server_ready()  # health is open, as /v1/health is
    with pytest.raises(InferenceServerException, match="missing API key"):
        _infer(anonymous, X[:1, :, :, None])
    keyed = httpclient.InferenceServerClient(served[1])
    inp = httpclient.InferInput("images", [2, 16, 16, 1], "UINT8")
    inp.set_data_from_numpy(X[:2, :, :, None])
    res = keyed.infer("simple_cnn", [inp], headers={"Authorization": f"Bearer {KEY}"})
    np.testing.assert_allclose(res.as_numpy("probabilities"), cnn.predict_proba(X[:2]), atol=1e-4)
