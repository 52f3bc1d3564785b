"""The web page in headless Chromium against a real server: draw a stroke, see a prediction."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(cnn_model_dir, tmp_path):
    yield from _serve(cnn_model_dir, tmp_path)


@pytest.fixture
def seg_server(forest_segmenter_dir, tmp_path):
    yield from _serve(forest_segmenter_dir, tmp_path)


def _serve(model_dir, tmp_path):
    """``objrec serve model_dir`` on a free port; yields its URL once it answers."""
    import httpx

    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "objrec", "serve", str(model_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: " + (tmp_path / "server.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_draw_a_stroke_and_see_a_prediction(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 900, "height": 600})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            page.wait_for_function(
                "document.getElementById('model-line').textContent.includes('classes')"
            )
            assert not page.locator("#key-row").is_visible()  # no API key set
            box = page.locator("#canvas").bounding_box()
            x0, y0 = box["x"], box["y"]
            # a "1": one vertical stroke down the middle
            page.mouse.move(x0 + 140, y0 + 40)
            page.mouse.down()
            for i in range(1, 21):
                page.mouse.move(x0 + 140, y0 + 40 + i * 10)
            page.mouse.up()
            page.wait_for_selector("#bars li", timeout=10_000)
            bars = page.locator("#bars li")
            assert bars.count() == 5
            top = bars.first.get_attribute("data-label")
            assert top.startswith("digit-")
            assert page.locator("#status").inner_text() == f"Prediction for drawing.png: {top}"
            width = page.locator("#bars li .fill").first.evaluate(
                "e => e.getBoundingClientRect().width"
            )
            assert width > 0
            page.screenshot(path=str(tmp_path / "web-page.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


def _launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def _draw_a_one(page):
    box = page.locator("#canvas").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + 140, y0 + 40)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x0 + 140, y0 + 40 + i * 10)
    page.mouse.up()


def test_shown_image_error_clears_bars_and_empty_canvas(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            errors, posts = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    posts.append(r.url) if r.method == "POST" and "/v1/predict" in r.url else None
                ),
            )
            page.goto(server + "/")
            page.wait_for_function(
                "document.getElementById('model-line').textContent.includes('classes')"
            )
            # an empty canvas: no request, a clear message
            page.click("#predict-canvas")
            assert page.locator("#status").inner_text() == "Draw something first."
            assert page.locator("#bars li").count() == 0 and posts == []

            # a drawing: bars, and the image as the model saw it, at its input size (16x16)
            _draw_a_one(page)
            page.wait_for_selector("#bars li", timeout=10_000)
            img = page.locator("#model-input")
            assert img.is_visible()
            page.wait_for_function("document.getElementById('model-input').naturalWidth > 0")
            size = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
            assert size == [16, 16]
            assert img.get_attribute("src").startswith("data:image/png;base64,")
            assert "16×16" in page.locator("#model-input-box figcaption").inner_text()
            page.screenshot(path=str(tmp_path / "with-input.png"), full_page=True)

            # a broken upload: the error, and no bars left over from the drawing
            page.set_input_files(
                "#file",
                files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG no"}],
            )
            page.wait_for_function("document.getElementById('status').classList.contains('error')")
            status = page.locator("#status").inner_text()
            assert status.startswith("Error 422 for broken.png:"), status
            assert page.locator("#bars li").count() == 0
            assert not page.locator("#model-input-box").is_visible()
            assert len(posts) == 2
            assert not errors, errors
        finally:
            browser.close()


def test_favicon_is_linked_and_served(server):
    import httpx

    r = httpx.get(server + "/favicon.ico", timeout=5)
    assert r.status_code == 200 and r.content[:4] == b"\x00\x00\x01\x00"
    assert '<link rel="icon" href="/favicon.ico">' in httpx.get(server + "/", timeout=5).text


def test_upload_shows_the_segmentation_overlay(seg_server, toy_scenes, tmp_path):
    """A segmenter's page: an upload goes to /v1/segment; both masks are drawn over the image
    in the palette's colours (background transparent) and the objects listed."""
    import base64
    import io

    import httpx
    import numpy as np
    from PIL import Image

    from objrec.segmentation.overlay import class_palette

    sync_api = pytest.importorskip("playwright.sync_api")
    for image in [*toy_scenes[1].images, *toy_scenes[0].images]:  # one with objects found
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        scene = buf.getvalue()
        api = httpx.post(seg_server + "/v1/segment", files={"file": ("s.png", scene)}, timeout=30)
        seg = api.json()["segmentation"]
        if seg["instances"]:
            break
    assert seg["instances"], "the toy forest finds no object in any scene"
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(seg["mask"]))))
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(seg_server + "/")
            page.wait_for_function(
                "document.getElementById('model-line').textContent.includes('classes')"
            )
            assert page.locator("#result-title").inner_text() == "Segmentation"
            page.set_input_files(
                "#file", files=[{"name": "scene.png", "mimeType": "image/png", "buffer": scene}]
            )
            page.wait_for_selector("#objects li", timeout=15_000)
            page.wait_for_function(
                "['seg-classes', 'seg-instances'].every(id => "
                "document.getElementById(id).naturalWidth > 0)"
            )
            assert page.locator("#seg-box").is_visible()
            labels = [li.get_attribute("data-label") for li in page.locator("#objects li").all()]
            assert labels == [o["label"] for o in seg["instances"]]
            status = page.locator("#status").inner_text()
            assert "in scene.png" in status and str(len(labels)) in status
            # the classes overlay as the browser decoded it: palette colours, label 0 clear
            rgba = page.evaluate(
                """() => {
                  const img = document.getElementById('seg-classes');
                  const c = document.createElement('canvas');
                  c.width = img.naturalWidth; c.height = img.naturalHeight;
                  const ctx = c.getContext('2d');
                  ctx.drawImage(img, 0, 0);
                  return Array.from(ctx.getImageData(0, 0, c.width, c.height).data);
                }"""
            )
            rgba = np.asarray(rgba, np.uint8).reshape(*mask.shape, 4)
            assert (rgba[..., 3][mask == 0] == 0).all() and (rgba[..., 3][mask > 0] == 255).all()
            assert np.array_equal(rgba[..., :3][mask > 0], class_palette(3)[mask[mask > 0]])
            page.screenshot(path=str(tmp_path / "segment-page.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
