"""The server as it runs: uvicorn on 127.0.0.1 with objrec's HTTP protocol. Heavy requests
do not stall /v1/health; clients too slow to send their request are cut off."""

import io
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httptools")
import httpx

from objrec.serving.app import create_app
from objrec.serving.predictor import Predictor
from objrec.serving.protocol import TimeoutHttpToolsProtocol

from .helpers import serve_in_thread

TIMEOUT = 1.0  # seconds a client gets for its headers, and between two body chunks


class _Protocol(TimeoutHttpToolsProtocol):
    request_timeout = TIMEOUT


@pytest.fixture(scope="module")
def server(pixels_logreg):
    """A live server (one uvicorn in a thread) with a pixel budget fit for huge images."""
    predictor = Predictor(pixels_logreg, metadata={"method": "pixels-logreg"}, backend="native")
    app = create_app(predictor, max_pixels=40_000_000, max_total_pixels=300_000_000)
    srv, thread, sock = serve_in_thread(app, http=_Protocol)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", sock.getsockname()
    srv.should_exit = True
    thread.join(10)


def test_health_answers_while_a_heavy_request_decodes(server):
    from PIL import Image

    url, _ = server
    buf = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buf, format="PNG")  # black, 35 KB, 36 megapixels
    files = [("file", (f"{i}.png", buf.getvalue(), "image/png")) for i in range(8)]
    done = {}

    def heavy():
        t = time.perf_counter()
        done["response"] = httpx.post(url + "/v1/predict", files=files, timeout=60)
        done["seconds"] = time.perf_counter() - t

    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v1/health").status_code == 200  # connected before the clock
        worker = threading.Thread(target=heavy)
        worker.start()
        time.sleep(0.1)  # the upload (300 KB over loopback) is in by now
        latencies = []
        while worker.is_alive():
            t = time.perf_counter()
            assert client.get("/v1/health").json()["status"] == "ok"
            latencies.append(time.perf_counter() - t)
            time.sleep(0.01)
        worker.join()
    r = done["response"]
    assert r.status_code == 200, r.text
    assert [p["file"] for p in r.json()["predictions"]] == [f"{i}.png" for i in range(8)]
    # decoding eight 36-megapixel images takes about a second; the event loop stayed free
    assert len(latencies) >= 3, (done["seconds"], latencies)
    assert max(latencies) < max(0.25, done["seconds"] / 4), (done["seconds"], latencies)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    sock.settimeout(seconds)
    t, data = time.perf_counter(), b""
    while chunk := sock.recv(4096):
        data += chunk
    return data, time.perf_counter() - t


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects, sends nothing
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Ty",  # headers never finished
        # headers done, body stops after 10 of 1,000 bytes
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"images":',
    ],
    ids=["silent", "partial-headers", "partial-body"],
)
def test_slow_client_is_timed_out(server, sent):
    _, addr = server
    with socket.create_connection(addr) as sock:
        sock.sendall(sent)
        data, seconds = _closed_within(sock, TIMEOUT + 4)
    assert TIMEOUT * 0.8 < seconds < TIMEOUT + 2, seconds
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b'"status": 408' in data


def test_trickling_headers_do_not_extend_the_deadline(server):
    _, addr = server
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40
    with socket.create_connection(addr) as sock:
        t = time.perf_counter()
        for i in range(len(head)):  # one byte every 50 ms: 2.5 s for the whole head
            try:
                sock.sendall(head[i : i + 1])
            except OSError:
                break
            time.sleep(0.05)
            if time.perf_counter() - t > TIMEOUT + 1:
                break
        data, _ = _closed_within(sock, 3)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.perf_counter() - t < TIMEOUT + 2


def test_idle_kept_alive_connection_is_left_to_keep_alive(server):
    _, addr = server
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(addr) as sock:
        sock.settimeout(5)
        for i in range(2):  # the same connection, idle longer than the request deadline
            if i:
                time.sleep(TIMEOUT * 1.5)  # under uvicorn's keep-alive timeout (5 s)
            sock.sendall(request)
            reply = b""
            while not reply.endswith(b"}"):
                reply += sock.recv(4096)
            assert reply.startswith(b"HTTP/1.1 200 "), reply
