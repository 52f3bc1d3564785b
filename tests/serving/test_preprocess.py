import io

import cv2
import numpy as np
import pytest
from PIL import Image

from objrec.errors import InputError
from objrec.serving.preprocess import (
    ImageTooLargeError,
    decode_image,
    find_images,
    to_model_input,
)

from .helpers import png_bytes, png_header_only


def test_decode_grey_rgb_and_alpha():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(png_bytes(grey)), grey)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(png_bytes(rgb)), rgb)
    # RGBA: transparent pixels become black, opaque ones keep their colour
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)
    out = decode_image(png_bytes(rgba))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(out[1, 1], (0, 0, 0))


def test_decode_16bit_grey_scales_to_uint8():
    arr = np.array([[0, 65535], [32768, 1000]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = decode_image(buf.getvalue())
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], (0, 255))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="empty"):
        decode_image(b"")
    with pytest.raises(InputError, match="not a readable image"):
        decode_image(b"hello, not an image at all")
    good = png_bytes(np.full((64, 64), 7, np.uint8))
    with pytest.raises(InputError, match=r"corrupt|truncated|readable"):
        decode_image(good[: len(good) // 2])
    # hand-built header claiming 50,000 x 50,000 pixels: refused before decoding
    with pytest.raises(ImageTooLargeError, match=r"too large.*limit"):
        decode_image(png_header_only(50_000, 50_000), max_pixels=10_000_000)
    with pytest.raises(ImageTooLargeError, match="64x64 = 4,096 pixels, over the limit of 100"):
        decode_image(good, max_pixels=100)
    with pytest.raises(ImageTooLargeError, match=r"too large"):
        decode_image(png_header_only(3000, 3000), max_pixels=1_000_000)
    f = tmp_path / "x.png"
    f.write_bytes(good)
    assert decode_image(f).shape == (64, 64)


def test_to_model_input_colour_and_size():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    out = to_model_input([rgb], (20, 15))
    # oracle: OpenCV's luma, then Pillow's antialiased bilinear resize (the one filter)
    grey_full = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ref = np.asarray(Image.fromarray(grey_full).resize((15, 20), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[0], ref)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    out = to_model_input([grey], (16, 16, 3))
    assert out.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(out[0, ..., 0], out[0, ..., 2])
    np.testing.assert_array_equal(to_model_input([grey], (8, 8, 1))[0, ..., 0], grey)
    batch = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    assert to_model_input(batch, (8, 8)) is batch  # already right: no copy
    with pytest.raises(InputError):
        to_model_input([np.zeros((4, 4, 2), np.uint8)], (8, 8))


def test_to_model_input_images_already_at_the_input():
    from objrec.data.images import ImageSpec, prepare

    rng = np.random.default_rng(2)
    for shape in ((8, 8), (8, 8, 1), (8, 8, 3)):
        spec = ImageSpec.from_shape(shape)
        imgs = [
            rng.integers(0, 256, (8, 8), dtype=np.uint8),
            rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
            rng.integers(0, 256, (5, 9), dtype=np.uint8),
        ]
        out = to_model_input(imgs, shape, spec)
        for o, img in zip(out, imgs, strict=True):  # oracle: prepare, image by image
            np.testing.assert_array_equal(o.reshape(spec.shape), prepare(img, spec))
    # the right shape but not uint8: still validated (whole floats pass, others are refused)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    np.testing.assert_array_equal(to_model_input([grey.astype(float)], (8, 8))[0], grey)
    with pytest.raises(InputError, match=r"0\.\.255"):
        to_model_input([grey + 0.5], (8, 8))


def test_find_images_files_folders_globs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/1.png", "a/b/2.jpg", "a/b/notes.txt", "3.PNG"):
        (tmp_path / p).write_bytes(b"x")
    found = find_images([tmp_path / "a"])
    assert [p.name for p in found] == ["1.png", "2.jpg"]
    assert [p.name for p in find_images([str(tmp_path / "*.PNG")])] == ["3.PNG"]
    missing = tmp_path / "missing.png"
    assert find_images([missing]) == [missing]


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((20, 40), np.uint8))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (40, 20)
