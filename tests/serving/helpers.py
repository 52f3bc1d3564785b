"""Image bytes for the serving tests, encoded with Pillow or built by hand, and a live
server for the tests that talk HTTP."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np


def png_bytes(img: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels and holds almost no data
    (what a decompression bomb looks like before it is decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def json_error(r, status: int) -> str:
    """The message of the server's JSON error answer ``r``, checked to have ``status``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text
    return body["error"]


def serve_in_thread(app, **config):
    """Start ``app`` on uvicorn in a daemon thread, on a free port of 127.0.0.1.

    ``config``: more ``uvicorn.Config`` arguments (e.g. ``http=`` a protocol class).
    Returns ``(server, thread, sock)``; stop it with ``server.should_exit = True``.
    Fails the test when the server has not started within 20 s.
    """
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **config))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    return srv, thread, sock
