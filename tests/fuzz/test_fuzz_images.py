"""Fuzzing the image decoder: random bytes and mutated files of every format it opens.

Whatever the bytes, :func:`objrec.data.images.decode` and :func:`probe` return a uint8
array (H, W) or (H, W, 3) of the size the header gives, or raise objrec's
:class:`~objrec.errors.InputError` naming the file; nothing else escapes, and a file
that decodes also goes through the rest of the pipeline (colour, resize, every fit). The
inputs that once broke the decoder are kept as explicit examples.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from crafted_files import tiff_with_fractional_strip_offsets
from objrec.data import images as im
from objrec.errors import InputError

FUZZ = settings(
    max_examples=int(os.environ.get("OBJREC_FUZZ_EXAMPLES", 150)),  # more: fuzz longer
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tif", "PPM": "ppm"}
MODES = ["L", "RGB", "RGBA", "P", "LA", "I;16", "I", "F", "CMYK", "1"]
LIMIT = 1 << 20  # pixels: a header announcing more must be refused, not decoded


def sample(fmt: str, mode: str, w: int, h: int, seed: int) -> bytes:
    """A real file of ``fmt``: random pixels of ``mode`` (converted where the format needs)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(
        "RGB" if mode in ("I;16", "I", "F", "CMYK") and fmt not in ("TIFF", "PNG") else mode
    )
    if fmt == "JPEG" and img.mode not in ("L", "RGB", "CMYK"):
        img = img.convert("RGB")
    if fmt in ("BMP", "GIF") and img.mode not in ("L", "RGB", "P", "1"):
        img = img.convert("RGB")
    if fmt == "PPM" and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except OSError:  # Pillow cannot write this mode in this format: write it as RGB
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=fmt)
    return buf.getvalue()


def check(data: bytes, name: str = "fuzzed") -> None:
    """decode/probe give an array of the announced size or an InputError naming the file."""
    try:
        a = im.decode(data, max_pixels=LIMIT, name=name)
    except InputError as e:
        assert name in str(e)
        return
    assert a.dtype == np.uint8 and a.ndim in (2, 3) and (a.ndim == 2 or a.shape[2] == 3)
    assert a.shape[0] * a.shape[1] <= LIMIT
    h, w, mode = im.probe(data, max_pixels=LIMIT, name=name)
    assert (h, w) == a.shape[:2] and mode == ("L" if a.ndim == 2 else "RGB")
    for fit in im.FITS:
        out = im.load_image(data, color="rgb", size=(5, 7), fit=fit, name=name)
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=256))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"GIF89a")
@example(b"II*\x00")
def test_random_bytes(data):
    check(data)


@FUZZ
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    mode=st.sampled_from(MODES),
    w=st.integers(1, 12),
    h=st.integers(1, 12),
    seed=st.integers(0, 1000),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
)
def test_mutated_files(fmt, mode, w, h, seed, cut, flips):
    data = bytearray(sample(fmt, mode, w, h, seed))
    for where, x in flips:
        data[min(int(where * len(data)), len(data) - 1)] ^= x
    check(bytes(data[: max(1, int(cut * len(data))) if cut < 0.9 else len(data)]))


@pytest.mark.parametrize(
    "name, data",
    [
        ("tiff-fractional-strip-offsets", tiff_with_fractional_strip_offsets()),
        ("png-header-only", sample("PNG", "L", 4, 4, 0)[:33]),
        ("jpeg-cut-after-header", sample("JPEG", "RGB", 8, 8, 0)[:200]),
        ("gif-cut", sample("GIF", "P", 8, 8, 0)[:20]),
    ],
)
def test_corpus(name, data):
    check(data, name)


def test_a_header_announcing_too_many_pixels_is_refused_before_decoding():
    big = io.BytesIO()
    Image.new("L", (2048, 1024)).save(big, format="PNG")  # 2 megapixels, a few kB
    with pytest.raises(im.ImageTooLargeError, match="too large"):
        im.decode(big.getvalue(), max_pixels=LIMIT, name="big.png")
