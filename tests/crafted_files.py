"""Hand-built files shared by the server, CLI and fuzz tests (importable because
``tests/`` holds the root conftest): image files that make a decoder fail in a particular
way, and a small segmentation folder."""

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


def segmentation_folder(root, n=8, side=32):
    """``n`` noisy images with one bright square (label 1) or ring (label 2) each, palette
    masks with a 255 border row, and classes.txt."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        img = rng.integers(0, 90, (side, side, 3), np.uint8)
        sem = np.zeros((side, side), np.uint8)
        y, x = rng.integers(2, side - 14, 2)
        sem[y : y + 12, x : x + 12] = 1 + i % 2
        if i % 2:
            sem[y + 4 : y + 8, x + 4 : x + 8] = 0
        img[sem > 0] = (230, 200, 40)
        sem[y - 1, x : x + 12] = 255
        Image.fromarray(img).save(root / "images" / f"s{i}.png")
        m = Image.fromarray(sem)
        m.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 3 * 253)
        m.save(root / "masks" / f"s{i}.png")
    (root / "classes.txt").write_text("background\nsquare\nring\n")
    return root


def square_and_ring(side: int = 8) -> np.ndarray:
    """The two objects of the tests' toy scenes, (2, side, side) uint8 for
    ``objrec.data.scenes.render_scenes``: class 0 a full square inside a 1-pixel margin,
    class 1 the same square with a centred hole of ``side // 3`` pixels (a ring)."""
    X = np.zeros((2, side, side), np.uint8)
    X[:, 1 : side - 1, 1 : side - 1] = 255
    hole = side // 3
    lo = (side - hole) // 2
    X[1, lo : lo + hole, lo : lo + hole] = 0
    return X
