"""Image bytes for the serving tests, encoded with Pillow or built by hand."""

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
