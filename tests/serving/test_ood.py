"""Out-of-distribution score, --reject-below, the polarity warning and the model-input image."""

import base64
import io
import json

import numpy as np
import pytest

from objrec.cli import main
from objrec.serving.ood import (
    INPUT_STATS_KEY,
    assess,
    border_means,
    check_threshold,
    input_statistics,
    polarity_warning,
)

from .helpers import png_bytes


def test_input_statistics_of_digits(digits_16):
    X = digits_16[0]
    st = input_statistics(X)
    assert st["polarity"] == "light on dark" and st["n_images"] == len(X)
    assert st["mean"] == pytest.approx(X.astype(float).mean(), abs=0.01)
    # the border by hand: first and last rows, first and last columns without the corners twice
    g = X.astype(float)
    frame = np.concatenate([g[:, 0], g[:, -1], g[:, 1:-1, 0], g[:, 1:-1, -1]], axis=1)
    assert st["border_mean"] == pytest.approx(frame.mean(), abs=0.01)
    np.testing.assert_allclose(border_means(X), frame.mean(1))
    assert input_statistics(255 - X)["polarity"] == "dark on light"
    assert input_statistics(["a.png"]) is None  # a lazy folder: no statistics, no check


def test_polarity_warning_on_a_dark_digit_on_white(digits_16):
    X = digits_16[0]
    st = input_statistics(X)
    inverted = 255 - digits_16[2][:3]
    warns = polarity_warning(st, np.concatenate([digits_16[2][:2], inverted]))
    assert warns[:2] == [None, None]
    assert all(w and "background is light" in w and "invert" in w for w in warns[2:])
    assert polarity_warning(None, inverted) == [None] * 3  # nothing recorded: no check


def test_assess_and_threshold():
    proba = np.array([[0.9, 0.1], [0.55, 0.45]])
    out = assess(proba, np.zeros((2, 4, 4), np.uint8), None, reject_below=0.6)
    assert [o["max_probability"] for o in out] == [0.9, 0.55]
    assert [o["unknown"] for o in out] == [False, True]
    # top probabilities given (e.g. from the top-k): used as they are, one per image
    given = assess(proba, np.zeros((2, 4, 4), np.uint8), None, 0.6, top=[0.5, 0.7])
    assert [(o["max_probability"], o["unknown"]) for o in given] == [(0.5, True), (0.7, False)]
    with pytest.raises(ValueError, match="1 top probabilities for 2 images"):
        assess(proba, np.zeros((2, 4, 4), np.uint8), None, top=[0.5])
    assert check_threshold(None) is None and check_threshold("0.5") == 0.5
    for bad in (-0.1, 1.5, "x"):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_threshold(bad)


@pytest.fixture(scope="module")
def stats_model_dir(cnn, digits_16, tmp_path_factory):
    """The CNN saved with the training images' statistics, as `objrec compare` saves it."""
    import objrec

    return objrec.save(
        cnn,
        tmp_path_factory.mktemp("cnn-stats") / "model",
        class_names=[f"digit-{i}" for i in range(10)],
        **{INPUT_STATS_KEY: input_statistics(digits_16[0])},
    )


def test_predict_cli_reports_the_score_and_rejects(
    stats_model_dir, cnn, digits_16, tmp_path, capsys
):
    X = digits_16[2]
    (tmp_path / "a.png").write_bytes(png_bytes(X[0]))
    (tmp_path / "inv.png").write_bytes(png_bytes(255 - X[1]))
    assert main(["predict", str(stats_model_dir), str(tmp_path), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    recs = {r["path"].rsplit("/", 1)[1]: r for r in map(json.loads, out.splitlines())}
    p = cnn.predict_proba(X[:1])[0]
    assert recs["a.png"]["ood"]["max_probability"] == pytest.approx(p.max(), abs=1e-5)
    assert recs["a.png"]["label"] == f"digit-{p.argmax()}" and not recs["a.png"]["ood"]["unknown"]
    assert recs["a.png"]["ood"]["warning"] is None and recs["inv.png"]["ood"]["warning"]
    assert "inv.png: this image's background is light" in err
    # every top probability is below 1: all unknown, the top-k still given
    assert main(["predict", str(stats_model_dir), str(tmp_path), "--reject-below", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split()[1] == "unknown" for line in lines)
    assert all("(max p " in line and "< 1)" in line for line in lines)
    assert main(["predict", str(stats_model_dir), str(tmp_path), "--reject-below", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_server_fields_unknown_and_model_input(stats_model_dir, digits_16):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from PIL import Image

    from objrec.serving.app import create_app
    from objrec.serving.predictor import Predictor
    from objrec.serving.preprocess import to_model_input

    pred = Predictor.from_path(stats_model_dir, backend="native")
    c = TestClient(create_app(pred, reject_below=0.999999), raise_server_exceptions=False)
    big = np.kron(255 - digits_16[2][0], np.ones((3, 3), np.uint8))  # 48x48, dark on white
    r = c.post("/v1/predict?input_image=1", files={"file": ("x.png", png_bytes(big))})
    assert r.status_code == 200, r.text
    body = r.json()
    (p,) = body["predictions"]
    assert body["reject_below"] == 0.999999
    assert p["label"] == "unknown" and p["ood"]["unknown"] and p["top_k"][0]["label"]
    assert "background is light" in p["ood"]["warning"]
    head, data = p["input_image"].split(",", 1)
    assert head == "data:image/png;base64"
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    assert seen.shape == (16, 16)  # the model's input size, not the upload's
    np.testing.assert_array_equal(seen, to_model_input([big], pred.input_shape, pred.image_spec)[0])
    r = c.post("/v1/predict", files={"file": ("x.png", png_bytes(big))})
    assert "input_image" not in r.json()["predictions"][0]  # only when asked for
    r = c.post("/v1/predict?input_image=maybe", files={"file": ("x.png", png_bytes(big))})
    assert r.status_code == 422 and "input_image" in r.json()["error"]
    # the flag takes exactly the values its OpenAPI schema lists ("": the bare flag)
    enum = next(
        q["schema"]["enum"]
        for q in c.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["parameters"]
        if q["name"] == "input_image"
    )
    for value, status in [*((v, 200) for v in enum), ("TRUE", 422), (" 1", 422)]:
        r = c.post(f"/v1/predict?input_image={value}", files={"file": ("x.png", png_bytes(big))})
        assert r.status_code == status, (value, r.text)
        if status == 200:
            assert ("input_image" in r.json()["predictions"][0]) == (value in ("1", "true", "yes"))
    ico = c.get("/favicon.ico")
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
