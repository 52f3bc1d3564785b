"""``POST /v1/segment``: a tiny forest segmenter (fit on 8 scenes) served with FastAPI's
TestClient; its answers checked against the segmenter itself on the same pixels."""

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from PIL import Image

import objrec
from objrec.errors import ObjrecError
from objrec.segmentation.overlay import class_palette
from objrec.serving.app import create_app, load_predictor
from objrec.serving.predictor import Predictor
from objrec.serving.preprocess import to_model_input
from objrec.serving.segment import SegmentPredictor

from .helpers import json_error, png_bytes, png_header_only

NAMES = ["background", "square", "ring"]  # conftest's forest_segmenter_dir class names


@pytest.fixture(scope="module")
def scenes(toy_scenes):
    return toy_scenes


@pytest.fixture(scope="module")
def seg_dir(forest_segmenter_dir):
    return forest_segmenter_dir


@pytest.fixture(scope="module")
def predictor(seg_dir):
    p = load_predictor(seg_dir)
    assert isinstance(p, SegmentPredictor)
    return p


@pytest.fixture(scope="module")
def client(predictor):
    app = create_app(predictor, max_body_bytes=200_000, max_pixels=100_000)
    return TestClient(app, raise_server_exceptions=False)


def _oracle(predictor, image):
    """What the segmenter itself says for ``image`` brought to its input by the pipeline."""
    X = to_model_input([image], predictor.input_shape, predictor.image_spec)
    sem, inst, scores = predictor.estimator.predict_panoptic(X)
    return sem[0], inst[0], scores[0]


def _png_array(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_segment_matches_the_segmenter(client, predictor, scenes):
    _, te = scenes
    found = 0
    for image in te.images:
        r = client.post("/v1/segment", files={"file": ("s.png", png_bytes(image), "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        seg = body["segmentation"]
        assert body["classes"] == NAMES and body["model"] == "forest"
        assert (seg["file"], seg["width"], seg["height"]) == ("s.png", 32, 32)
        sem, inst, scores = _oracle(predictor, image)
        assert np.array_equal(_png_array(seg["mask"]), sem)
        assert np.array_equal(_png_array(seg["instance_mask"]), inst)
        assert [o["id"] for o in seg["instances"]] == sorted(scores)
        found += len(scores)
        for o in seg["instances"]:
            ys, xs = np.nonzero(inst == o["id"])
            assert o["area"] == len(xs) and o["score"] == pytest.approx(scores[o["id"]])
            assert o["bbox"] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
            assert (sem[ys, xs] == o["index"]).all() and o["label"] == NAMES[o["index"]]
    assert found > 0  # the forest finds objects


def test_other_sizes_go_through_the_pipeline_and_png_answer(client, predictor, scenes):
    _, te = scenes
    big = np.asarray(Image.fromarray(te.images[0]).resize((80, 48)))  # squashed back to 32x32
    r = client.post("/v1/segment", files={"file": ("big.png", png_bytes(big), "image/png")})
    seg = r.json()["segmentation"]
    assert (seg["image_width"], seg["image_height"], seg["width"]) == (80, 48, 32)
    sem, _, _ = _oracle(predictor, big)
    assert np.array_equal(_png_array(seg["mask"]), sem)
    r = client.post(
        "/v1/segment",
        files={"file": ("big.png", png_bytes(big), "image/png")},
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    mask = Image.open(io.BytesIO(r.content))
    assert mask.mode == "P" and mask.info["transparency"] == 0  # background see-through
    assert np.array_equal(np.asarray(mask), sem)
    colours = np.asarray(mask.getpalette()[: 3 * 3]).reshape(3, 3)
    assert np.array_equal(colours, class_palette(3))  # the colours of the report and segment show
    assert r.headers.get("content-length") == str(len(r.content))
    grey = client.post(  # a grey upload, JSON base64, with the model's view of it
        "/v1/segment?input_image=1",
        json={"image": base64.b64encode(png_bytes(te.images[1][..., 0])).decode()},
    ).json()["segmentation"]
    assert grey["input_image"].startswith("data:image/png;base64,") and grey["width"] == 32


def test_segment_errors(client, scenes):
    _, te = scenes
    png = png_bytes(te.images[0])
    msg = json_error(client.post("/v1/predict", files={"file": ("a.png", png, "image/png")}), 400)
    assert "segmentation model" in msg and "/v1/segment" in msg
    two = [("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))]
    assert "one per request" in json_error(client.post("/v1/segment", files=two), 400)
    assert "no image" in json_error(client.post("/v1/segment", files={"x": ("a", b"1")}), 400)
    json_error(client.post("/v1/segment", files={"file": ("a.png", b"not an image")}), 422)
    bomb = png_header_only(1000, 1000)  # 1e6 pixels, over the server's max_pixels
    assert "too large" in json_error(
        client.post("/v1/segment", files={"file": ("b.png", bomb)}), 413
    )
    json_error(
        client.post("/v1/segment", content=b"x", headers={"content-type": "text/plain"}), 415
    )
    assert json_error(client.get("/v1/segment"), 405)


def test_health_model_schema_and_page(client):
    assert client.get("/v1/health").json()["task"] == "segment"
    m = client.get("/v1/model").json()
    assert m["task"] == "segment" and m["classes"] == NAMES and m["input_shape"] == [32, 32, 3]
    assert m["colors"][0] == "#000000" and len(m["colors"]) == 3
    spec = client.get("/openapi.json").json()
    assert "/v1/segment" in spec["paths"] and "/v1/predict" not in spec["paths"]
    assert not any(p.startswith("/v2") for p in spec["paths"])
    assert client.get("/v2/models/forest").status_code == 404  # tensors of class scores only
    body = spec["paths"]["/v1/segment"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    js = client.get("/static/app.js").text
    assert "/v1/segment" in js and "seg-classes" in client.get("/").text


def test_classifier_server_refuses_segment(pixels_logreg, digits_16):
    app = create_app(
        Predictor(pixels_logreg, metadata={"method": "pixels-logreg"}, backend="native")
    )
    client = TestClient(app, raise_server_exceptions=False)
    png = png_bytes(digits_16[2][0])
    msg = json_error(client.post("/v1/segment", files={"file": ("a.png", png, "image/png")}), 400)
    assert "classification model" in msg and "/v1/predict" in msg
    assert "/v1/segment" not in client.get("/openapi.json").json()["paths"]
    assert client.get("/v1/health").json()["task"] == "classify"


def test_api_key_and_predictor_guards(predictor, seg_dir, scenes):
    client = TestClient(create_app(predictor, api_key="k"), raise_server_exceptions=False)
    png = png_bytes(scenes[1].images[0])
    json_error(client.post("/v1/segment", files={"file": ("a.png", png, "image/png")}), 401)
    r = client.post("/v1/segment", files={"file": ("a.png", png)}, headers={"X-API-Key": "k"})
    assert r.status_code == 200
    assert client.get("/openapi.json").json()["paths"]["/v1/segment"]["post"]["security"]
    with pytest.raises(ObjrecError, match="segmentation model"):
        Predictor(objrec.load(seg_dir))


def test_classifier_commands_point_to_segment(seg_dir, scenes, tmp_path, capsys):
    from objrec.cli import main

    png = tmp_path / "s.png"
    png.write_bytes(png_bytes(scenes[1].images[0]))
    assert main(["predict", str(seg_dir), str(png)]) != 0
    assert "segmentation model" in capsys.readouterr().err
    assert main(["export", str(seg_dir), "--format", "onnx"]) != 0
    assert "objrec segment export" in capsys.readouterr().err
    archive = objrec.artifact.pack(seg_dir, tmp_path / "seg.zip")  # one file, loads the same
    again = load_predictor(archive)
    X = np.asarray(scenes[1].images[:1])
    assert np.array_equal(again.estimator.predict(X), objrec.load(seg_dir).predict(X))


def test_unet_is_served_too(scenes, tmp_path):
    pytest.importorskip("torch")
    from objrec.segmentation import make_segmenter

    tr, te = scenes
    unet = make_segmenter("unet", width=4, depth=2, epochs=1, batch_size=4)
    folder = unet.fit(tr.images, tr.semantic).save(tmp_path / "unet", class_names=NAMES)
    predictor = load_predictor(folder)
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    r = client.post("/v1/segment", files={"file": ("s.png", png_bytes(te.images[0]))})
    assert r.status_code == 200, r.text
    sem, inst, _ = _oracle(predictor, te.images[0])
    seg = r.json()["segmentation"]
    assert np.array_equal(_png_array(seg["mask"]), sem)
    assert np.array_equal(_png_array(seg["instance_mask"]), inst)


def test_slic_is_served_too(scenes, tmp_path):
    from objrec.segmentation import make_segmenter

    tr, te = scenes
    slic = make_segmenter("slic", n_segments=40, max_iter=5, learning_rate=0.3)
    folder = slic.fit(tr.images, tr.semantic).save(tmp_path / "slic", class_names=NAMES)
    predictor = load_predictor(folder)
    assert isinstance(predictor, SegmentPredictor)
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    r = client.post("/v1/segment", files={"file": ("s.png", png_bytes(te.images[0]))})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "slic"
    sem, inst, scores = _oracle(predictor, te.images[0])
    seg = r.json()["segmentation"]
    assert np.array_equal(_png_array(seg["mask"]), sem)
    assert np.array_equal(_png_array(seg["instance_mask"]), inst)
    assert [o["id"] for o in seg["instances"]] == sorted(scores)
