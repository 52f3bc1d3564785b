"""Hand-built image files that make a decoder fail in a particular way, shared by the
server, CLI and fuzz tests (importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

import io
import struct

import numpy as np


def tiff_with_fractional_strip_offsets() -> bytes:
    """A valid 8x8 grey TIFF whose StripOffsets tag is retyped from LONG to RATIONAL:
    Pillow opens it and raises ``TypeError`` when it seeks to the strip."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 5)  # type RATIONAL
            return bytes(data)
    raise AssertionError("no StripOffsets tag")
