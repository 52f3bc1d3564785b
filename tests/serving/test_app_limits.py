"""The server's input checks: top_k's range, deep JSON, files that crash Pillow, the
per-request pixel budget, hidden server paths, 405's Allow header, the OpenAPI schema
and the offline /docs page."""

import base64
import io
import re

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from crafted_files import tiff_with_fractional_strip_offsets
from objrec.serving import app as appmod
from objrec.serving.app import create_app
from objrec.serving.predictor import Predictor
from objrec.serving.preprocess import OpenedImage

from .helpers import json_error, png_bytes, png_header_only


@pytest.fixture(scope="module")
def predictor(pixels_logreg):
    meta = {
        "method": "pixels-logreg",
        "params": {"checkpoint_dir": "/home/alice/runs/digits/checkpoints", "C": 1.0},
        "training": {"data_dir": "/srv/data/digits", "files": ["/srv/data/a.npz", "rel/b"]},
    }
    return Predictor(pixels_logreg, metadata=meta, backend="native")


@pytest.fixture(scope="module")
def client(predictor):
    app = create_app(predictor, max_pixels=40_000_000, max_total_pixels=40_000_000)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def png(digits_16):
    return png_bytes(digits_16[2][0])


@pytest.mark.parametrize("value", ["²", "1" * 5000, "0", "-1", "1.5", "", "10001", "٣"])
def test_top_k_query_out_of_range_422(client, png, value):
    r = client.post("/v1/predict", params={"top_k": value}, files={"file": ("a.png", png)})
    assert "from 1 to 10,000" in json_error(r, 422)


@pytest.mark.parametrize("value", [0, -3, True, 1.5, 0.0, "3", 10**30, 1e300, None])
def test_top_k_json_out_of_range_422(client, png, value):
    body = {"images": [base64.b64encode(png).decode()], "top_k": value}
    r = client.post("/v1/predict", json=body)
    if value is None:  # JSON null: the default
        assert r.status_code == 200 and len(r.json()["predictions"][0]["top_k"]) == 5
    else:
        assert "JSON field top_k must be a whole number from 1 to 10,000" in json_error(r, 422)


def test_top_k_form_zero_refused_and_valid_honoured(client, png):
    r = client.post("/v1/predict", data={"top_k": "0"}, files={"file": ("a.png", png)})
    assert "form field top_k" in json_error(r, 422)
    r = client.post("/v1/predict", data={"top_k": "²"}, files={"file": ("a.png", png)})
    json_error(r, 422)
    r = client.post("/v1/predict", data={"top_k": "2"}, files={"file": ("a.png", png)})
    assert r.status_code == 200 and len(r.json()["predictions"][0]["top_k"]) == 2
    b64 = base64.b64encode(png).decode()
    r = client.post("/v1/predict", json={"images": [b64], "top_k": 3.0})  # a JSON integer
    assert r.status_code == 200 and len(r.json()["predictions"][0]["top_k"]) == 3
    r = client.post("/v1/predict", files={"file": ("a.png", png), "top_k": ("k.txt", b"2")})
    assert "not a file" in json_error(r, 422)


def test_deeply_nested_json_422(client):
    for body in (b"[" * 100_000, b'{"images": ' + b"[" * 100_000, b'{"a":' * 100_000):
        r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
        assert "not valid JSON" in json_error(r, 422)


def test_tiff_that_makes_pillow_raise_typeerror_is_422(client, png):
    from PIL import Image

    tiff = tiff_with_fractional_strip_offsets()
    with pytest.raises(TypeError):  # the case itself: Pillow's TIFF plugin fails this way
        Image.open(io.BytesIO(tiff)).load()
    files = [("file", ("ok.png", png)), ("file", ("evil.tif", tiff))]
    assert "evil.tif" in json_error(client.post("/v1/predict", files=files), 422)
    b64 = base64.b64encode(tiff).decode()
    assert "image #1" in json_error(client.post("/v1/predict", json={"images": [b64]}), 422)


def test_any_decoder_exception_is_a_per_file_422(client, png, monkeypatch):
    from PIL import ImageFile

    def broken(self):
        raise KeyError("internal decoder state")

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)  # Pillow fails in a new way
    msg = json_error(client.post("/v1/predict", files={"file": ("x.png", png)}), 422)
    assert msg.startswith("x.png: could not be decoded (KeyError")


def test_pixel_budget_refuses_before_decoding(client, monkeypatch):
    calls = []
    real = OpenedImage.decode
    monkeypatch.setattr(OpenedImage, "decode", lambda self: calls.append(1) or real(self))
    huge = png_header_only(6000, 6000)  # 36 megapixels each, 100 bytes to send
    files = [("file", (f"{i}.png", huge)) for i in range(8)]
    msg = json_error(client.post("/v1/predict", files=files), 413)
    assert "add up to 288,000,000 pixels" in msg and "40,000,000" in msg
    b64 = base64.b64encode(huge).decode()
    json_error(client.post("/v1/predict", json={"images": [b64, b64]}), 413)
    assert calls == []  # refused from the headers alone
    one = client.post("/v1/predict", files=[("file", ("0.png", huge))])
    assert "0.png" in json_error(one, 422)  # one fits the budget: decoded, found truncated
    assert calls == [1]


def test_a_single_image_over_max_pixels_is_413_before_decoding(predictor, monkeypatch):
    c = TestClient(create_app(predictor, max_pixels=10_000), raise_server_exceptions=False)
    monkeypatch.setattr(OpenedImage, "decode", lambda self: pytest.fail("decoded"))
    r = c.post("/v1/predict", files={"file": ("big.png", png_header_only(200, 100))})
    assert "big.png: image too large: 20,000 pixels" in json_error(r, 413)


def test_pixel_budget_counts_every_image_from_its_header(predictor, digits_16, monkeypatch):
    c = TestClient(create_app(predictor, max_total_pixels=600), raise_server_exceptions=False)
    files = [("file", (f"{i}.png", png_bytes(digits_16[2][i]))) for i in range(3)]  # 3 x 256
    opens = []
    real_open = appmod.open_image
    monkeypatch.setattr(appmod, "open_image", lambda *a, **k: opens.append(1) or real_open(*a, **k))
    decoded = []
    real = OpenedImage.decode
    monkeypatch.setattr(OpenedImage, "decode", lambda self: decoded.append(1) or real(self))
    assert "add up to 768 pixels" in json_error(c.post("/v1/predict", files=files), 413)
    assert decoded == []
    r = c.post("/v1/predict", files=files[:2])
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    assert len(opens) == 5 and len(decoded) == 2  # each file opened once, header and pixels


def test_model_info_hides_server_paths(predictor):
    for key in (None, "k"):
        c = TestClient(create_app(predictor, api_key=key))
        m = c.get("/v1/model", headers={"X-API-Key": "k"} if key else {}).json()
        text = str(m)
        assert "/home" not in text and "/srv" not in text
        assert m["params"]["checkpoint_dir"] == "checkpoints" and m["params"]["C"] == 1.0
        assert m["training"] == {"data_dir": "digits", "files": ["a.npz", "rel/b"]}
    assert predictor.info()["params"]["checkpoint_dir"].startswith("/home")  # unchanged


def test_405_has_allow_header(client):
    r = client.get("/v1/predict")
    json_error(r, 405)
    assert r.headers["allow"] == "POST"
    r = client.post("/v1/health")
    json_error(r, 405)
    assert r.headers["allow"] == "GET"


def test_openapi_requires_one_image_at_least(client, predictor):
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    file = content["multipart/form-data"]["schema"]["properties"]["file"]
    images = content["application/json"]["schema"]["properties"]["images"]
    assert file["minItems"] == images["minItems"] == 1
    assert file["maxItems"] == images["maxItems"] == appmod.DEFAULT_MAX_IMAGES
    assert "securitySchemes" not in spec.get("components", {})
    keyed = TestClient(create_app(predictor, api_key="k")).get("/openapi.json").json()
    assert keyed["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert keyed["paths"]["/v1/model"]["get"]["security"]


def test_docs_work_offline(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
        assert urls, html.text
        assert not re.search(r"https?://", html.text), "a URL outside the server"
        for url in urls:
            r = client.get(url)
            assert r.status_code == 200 and len(r.content) > 100, url
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in js.text
