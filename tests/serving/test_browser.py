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
    import httpx

    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "objrec", "serve", str(cnn_model_dir), "--port", str(port)],
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
