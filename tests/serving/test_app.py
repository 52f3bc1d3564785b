import base64

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from objrec.serving.app import create_app
from objrec.serving.predictor import Predictor

from .helpers import json_error, png_bytes, png_header_only


@pytest.fixture(scope="module")
def predictor(cnn):
    return Predictor(cnn, metadata={"method": "simple_cnn"})


@pytest.fixture(scope="module")
def client(predictor):
    app = create_app(predictor, max_body_bytes=200_000, max_pixels=1_000_000, max_images=4)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def png(digits_16):
    return png_bytes(digits_16[2][0])


def test_health_model_docs_and_page(client, predictor):
    r = client.get("/v1/health")
    assert r.json() == {
        "status": "ok",
        "task": "classify",
        "model": "simple_cnn",
        "backend": "onnxruntime",
        "auth": False,
    }
    m = client.get("/v1/model").json()
    assert m["classes"] == [str(i) for i in range(10)] and m["input_shape"] == [16, 16]
    assert m["limits"]["max_images"] == 4
    spec = client.get("/openapi.json").json()
    assert "/v1/predict" in spec["paths"]
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_predict_multipart_single_and_several(client, predictor, png, digits_16):
    X = digits_16[2]
    r = client.post("/v1/predict", files={"file": ("a.png", png, "image/png")})
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert pred["file"] == "a.png" and len(pred["top_k"]) == 5
    ref = predictor.estimator.predict_proba(X[:1])[0]
    assert pred["top_k"][0]["index"] == int(ref.argmax())
    assert abs(pred["top_k"][0]["probability"] - ref.max()) < 1e-4
    probs = [t["probability"] for t in pred["top_k"]]
    assert probs == sorted(probs, reverse=True)
    files = [("file", (f"{i}.png", png_bytes(X[i]), "image/png")) for i in range(3)]
    r = client.post("/v1/predict?top_k=50", files=files)  # k capped at 10 classes
    preds = r.json()["predictions"]
    assert [p["file"] for p in preds] == ["0.png", "1.png", "2.png"]
    assert all(len(p["top_k"]) == 10 for p in preds)
    assert [p["top_k"][0]["index"] for p in preds] == list(predictor.estimator.predict(X[:3]))


def test_uploads_are_closed_after_the_request(client, png, monkeypatch):
    from starlette.datastructures import UploadFile

    closed = []
    close = UploadFile.close

    async def recording_close(self):
        closed.append(self.filename)
        await close(self)

    monkeypatch.setattr(UploadFile, "close", recording_close)
    files = [("file", (f"{i}.png", png, "image/png")) for i in range(2)]
    assert client.post("/v1/predict", files=files).status_code == 200
    r = client.post("/v1/predict", files=[("file", ("t.txt", b"not an image", "text/plain"))])
    assert r.status_code == 422  # an error on the way out closes them too
    assert sorted(closed) == ["0.png", "1.png", "t.txt"]


def test_predict_json_base64(client, png):
    b64 = base64.b64encode(png).decode()
    r = client.post(
        "/v1/predict", json={"images": [b64, "data:image/png;base64," + b64], "top_k": 2}
    )
    assert r.status_code == 200, r.text
    a, b = r.json()["predictions"]
    assert a["top_k"] == b["top_k"] and len(a["top_k"]) == 2


def test_wrong_content_type_415(client, png):
    msg = json_error(
        client.post("/v1/predict", content=png, headers={"content-type": "image/png"}), 415
    )
    assert "multipart/form-data" in msg
    json_error(
        client.post("/v1/predict", content=b"x", headers={"content-type": "text/plain"}), 415
    )
    json_error(client.post("/v1/predict", data={"file": "x"}), 415)  # urlencoded form


def test_body_too_large_413(client):
    big = b"\0" * 300_000
    msg = json_error(client.post("/v1/predict", files={"file": ("big.png", big, "image/png")}), 413)
    assert "limit of 200,000 bytes" in msg

    def chunks():  # no Content-Length: the streamed bytes are counted
        for _ in range(10):
            yield b"\0" * 50_000

    r = client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    json_error(r, 413)


def test_decompression_bomb_413(client):
    r = client.post("/v1/predict", files={"file": ("bomb.png", png_header_only(20_000, 20_000))})
    assert "too large" in json_error(r, 413)


def test_corrupt_and_empty_images_422(client, png):
    r = client.post("/v1/predict", files={"file": ("c.png", png[:40], "image/png")})
    assert "c.png" in json_error(r, 422)
    r = client.post("/v1/predict", files={"file": ("e.png", b"", "image/png")})
    assert "empty" in json_error(r, 422)
    json_error(client.post("/v1/predict", json={"images": ["%%%not base64"]}), 422)
    json_error(
        client.post("/v1/predict", content=b"{bad", headers={"content-type": "application/json"}),
        422,
    )
    json_error(client.post("/v1/predict", json={"images": "abc"}), 422)
    r = client.post("/v1/predict", data={"file": "text"}, files={"other": ("x.png", png)})
    assert "must be a file upload" in json_error(r, 422)
    json_error(client.post("/v1/predict?top_k=0", files={"file": ("a.png", png)}), 422)


def test_no_image_and_too_many_images_400(client, png):
    assert "no image" in json_error(client.post("/v1/predict", json={"images": []}), 400)
    files = [("file", (f"{i}.png", png, "image/png")) for i in range(5)]
    json_error(client.post("/v1/predict", files=files), 400)
    b64 = base64.b64encode(png).decode()
    assert "limit is 4" in json_error(client.post("/v1/predict", json={"images": [b64] * 5}), 400)


def test_unknown_route_and_method_are_json(client):
    json_error(client.get("/v1/nothing"), 404)
    json_error(client.get("/v1/predict"), 405)


def test_api_key_401(predictor, png):
    c = TestClient(create_app(predictor, api_key="s3cret"), raise_server_exceptions=False)
    files = {"file": ("a.png", png, "image/png")}
    assert "missing API key" in json_error(c.post("/v1/predict", files=files), 401)
    assert "wrong API key" in json_error(
        c.post("/v1/predict", files=files, headers={"X-API-Key": "nope"}), 401
    )
    json_error(c.get("/v1/model"), 401)
    assert c.post("/v1/predict", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
    ok = c.post("/v1/predict", files=files, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert c.get("/v1/health").json()["auth"] is True  # health stays open


def test_unexpected_error_is_500_without_details(predictor, png, monkeypatch):
    c = TestClient(create_app(predictor), raise_server_exceptions=False)

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor, "scores", boom)
    r = c.post("/v1/predict", files={"file": ("a.png", png, "image/png")})
    msg = json_error(r, 500)
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert "internal" in msg
    monkeypatch.undo()
    assert c.post("/v1/predict", files={"file": ("a.png", png)}).status_code == 200  # still up


def test_native_backend_matches_onnx(cnn, digits_16):
    X = digits_16[2][:20]
    native = Predictor(cnn, backend="native")
    ort = Predictor(cnn, backend="onnxruntime")
    assert native.backend == "native" and ort.backend == "onnxruntime"
    np.testing.assert_allclose(native.predict_proba(X), ort.predict_proba(X), atol=1e-4)
