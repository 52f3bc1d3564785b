"""The one image pipeline: decode, colour conversion, resize and aspect policy.

Every path that turns an image file into a model's input uses this module: the folder
loader (in memory and streaming), ``objrec predict``, the server, and the images an
exported model is checked on. So the same file gives the same uint8 array everywhere.

    >>> spec = ImageSpec(size=(96, 96), color="rgb", fit="squash")
    >>> x = load_image("photo.jpg", spec=spec)          # uint8 (96, 96, 3)

Decoding (:func:`decode`, Pillow):

1. only common raster formats are opened (``FORMATS``; never EPS, PDF, PSD, ...); the
   header is checked against one pixel limit (``MAX_PIXELS``) before any pixel is decoded;
2. the EXIF orientation is applied (a photo taken upright is upright);
3. transparency (RGBA, LA, PA, palette images with a transparent colour) is composited
   on **black** (``BACKGROUND``), the background of the digit and clothing sets and of
   the server's drawing canvas: ``round((c * a + 0 * (255 - a)) / 255)`` per channel;
4. the result is uint8 grey ``(H, W)`` or RGB ``(H, W, 3)``:

   * 16-bit grey (``I;16*``): ``round(v * 255 / 65535)``;
   * 32-bit integer grey (``I``): clipped to 0..65535, scaled as 16-bit when its maximum
     is above 255, else taken as 0..255 values;
   * float grey (``F``, e.g. float TIFF): NaN as 0; if the maximum is at most 1, clipped to
     [0, 1] and scaled by 255, else min-max scaled to 0..255 (a constant image gives 0);
   * bilevel (``1``) as 0/255 grey; CMYK, YCbCr, LAB, HSV through Pillow's RGB conversion;
   * palette images: their colours, kept grey when every colour is grey.

Label images (:func:`decode_labels`: segmentation masks, instance maps) are opened the
same way, but keep the integers they store (a palette PNG's indices, 16-bit ids).

Colour conversion (:func:`convert_color`): grey is ITU-R 601 luma (OpenCV's
``COLOR_RGB2GRAY``), RGB from grey repeats the channel. It comes before the resize.

Resize (:func:`resize`, :func:`resize_batch`): ONE filter, Pillow's antialiased bilinear
(``Image.resize(..., BILINEAR)``: a triangle filter whose support widens with the
shrink factor, so downscaling averages every source pixel and does not alias; plain
bilinear when enlarging). The aspect policy ``fit``:

* ``"squash"`` (default): resize to (H, W), whatever the aspect ratio (Keras'
  ``image_dataset_from_directory`` default): nothing of the image is lost;
* ``"crop"``: cut the centred region of the target's aspect ratio (whole pixels), then
  resize it to (H, W) (fastai's default);
* ``"pad"``: scale so the whole image fits in (H, W), centre it on the background.

Working resolution (:func:`working_size`): a folder without ``--size`` is loaded at the
median height and median width of its images, scaled down (never up) so that the longer
side is at most ``cap`` (default :data:`WORKING_SIZE_CAP`, 64: the size at which the
scratch CNNs train in minutes on a CPU and past which the classic methods gain nothing,
as they work at 32 or 64 pixels themselves; ``objrec train`` of a pretrained network asks
for the network's native input side, 224).

The choice is recorded in a model as :class:`ImageSpec` (metadata key ``image``), and
prediction decodes with the model's spec.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from objrec.errors import DatasetError, InputError, ModelFileError

#: Largest image (width x height, from the header) decoded: 64 megapixels, e.g. 9,200 x 6,900.
MAX_PIXELS = 64_000_000
#: Raster formats Pillow may open (its other plugins, e.g. EPS, PDF or PSD, are never tried).
FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "ICO", "TGA", "PCX", "SGI")
#: The background transparent pixels are composited on (the only one).
BACKGROUND = "black"
BACKGROUNDS = {"black": 0}
#: Aspect policies, and the default.
FITS = ("squash", "crop", "pad")
DEFAULT_FIT = "squash"
#: The one resize filter, as recorded in :class:`ImageSpec`.
RESIZE_FILTER = "pillow-bilinear-antialiased"
#: Longest side of the working size picked from a folder's images.
WORKING_SIZE_CAP = 64

_FORMAT_HINTS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".pgm": "PPM",
    ".ppm": "PPM",
    ".pbm": "PPM",
    ".pnm": "PPM",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_GREY = {"grey", "gray", "l", "mono", "1"}
_RGB = {"rgb", "color", "colour", "3"}
_ORIENTATION = 0x0112


class ImageDecodeError(InputError):
    """An image file could not be read; ``path`` names it, ``reason`` says why."""

    def __init__(self, message: str, *, path: str = "", reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason or message


class ImageTooLargeError(ImageDecodeError):
    """The image has more pixels than the limit (a decompression bomb or a huge scan)."""


# ----------------------------------------------------------------------------- options


def parse_color(color: str | None) -> str | None:
    """``None`` (keep), ``"grey"`` or ``"rgb"``; accepts common spellings."""
    if color is None:
        return None
    c = str(color).strip().lower()
    if c in _GREY:
        return "grey"
    if c in _RGB:
        return "rgb"
    raise DatasetError(f"color={color!r}: use 'grey' or 'rgb' (or None to keep the stored mode)")


def parse_size(size: int | tuple[int, int] | str | None) -> tuple[int, int] | None:
    """``None`` (keep), an int (square) or (height, width); strings like ``"28"`` or ``"32x48"``
    (height x width) are accepted for the CLI."""
    if size is None:
        return None
    try:
        if isinstance(size, str):
            parts = size.lower().replace(",", "x").split("x")
            hw = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else None
        elif isinstance(size, int | np.integer):
            hw = (int(size), int(size))
        else:
            h, w = size
            hw = (int(h), int(w))
    except (TypeError, ValueError):
        hw = None
    if hw is None or min(hw) < 1 or max(hw) > 4096:
        raise DatasetError(
            f"size={size!r}: give one int (square) or (height, width) between 1 and 4096"
        )
    return hw


def parse_fit(fit: str | None) -> str:
    """``"squash"``, ``"crop"`` or ``"pad"`` (None: :data:`DEFAULT_FIT`)."""
    if fit is None:
        return DEFAULT_FIT
    f = str(fit).strip().lower()
    if f not in FITS:
        raise DatasetError(f"fit={fit!r}: use one of {', '.join(FITS)}")
    return f


@dataclass(frozen=True)
class ImageSpec:
    """How images are brought to a model's input: uint8 ``size`` = (H, W), ``color``
    ("grey": (H, W) arrays, "rgb": (H, W, 3)), aspect policy ``fit`` and the
    ``background`` transparency is composited on. Recorded in a model's metadata
    under ``image`` (:meth:`to_dict`)."""

    size: tuple[int, int]
    color: str
    fit: str = DEFAULT_FIT
    background: str = BACKGROUND

    def __post_init__(self):
        size = parse_size(self.size)
        color = parse_color(self.color)
        if color is None:
            raise DatasetError("ImageSpec needs color 'grey' or 'rgb'")
        if self.background not in BACKGROUNDS:
            raise DatasetError(
                f"background={self.background!r}: transparency is composited on {BACKGROUND} only"
            )
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "color", color)
        object.__setattr__(self, "fit", parse_fit(self.fit))

    @property
    def shape(self) -> tuple[int, ...]:
        """The array shape of one image: (H, W) or (H, W, 3)."""
        return self.size if self.color == "grey" else (*self.size, 3)

    @classmethod
    def from_shape(cls, shape: Sequence[int], fit: str | None = None) -> ImageSpec:
        """The spec of images shaped ``(H, W)``, ``(H, W, 1)`` (grey) or ``(H, W, 3)``."""
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
            raise InputError(f"image shape must be (H, W), (H, W, 1) or (H, W, 3), got {shape}")
        color = "rgb" if len(shape) == 3 and shape[2] == 3 else "grey"
        return cls(size=shape[:2], color=color, fit=parse_fit(fit))

    def to_dict(self) -> dict:
        """JSON-ready: ``{"size": [H, W], "color", "fit", "background", "filter"}``."""
        return {
            "size": [int(s) for s in self.size],
            "color": self.color,
            "fit": self.fit,
            "background": self.background,
            "filter": RESIZE_FILTER,
        }

    @classmethod
    def from_dict(cls, d) -> ImageSpec:
        """The spec from :meth:`to_dict`'s output; :class:`ModelFileError` if malformed."""
        if not isinstance(d, dict):
            raise ModelFileError(f"image spec must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"size", "color", "fit", "background", "filter"}
        if unknown:
            raise ModelFileError(f"image spec: unknown field(s) {', '.join(sorted(unknown))}")
        if d.get("filter", RESIZE_FILTER) != RESIZE_FILTER:
            raise ModelFileError(
                f"image spec: resize filter {d['filter']!r} is not this objrec's "
                f"({RESIZE_FILTER}); upgrade objrec"
            )
        size = d.get("size")
        if (
            not isinstance(size, list | tuple)
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
        ):
            raise ModelFileError(f"image spec: size must be [height, width] integers, got {size!r}")
        if d.get("color") not in ("grey", "rgb"):
            raise ModelFileError(
                f"image spec: color must be 'grey' or 'rgb', got {d.get('color')!r}"
            )
        if d.get("fit", DEFAULT_FIT) not in FITS:
            raise ModelFileError(
                f"image spec: fit must be one of {', '.join(FITS)}, got {d.get('fit')!r}"
            )
        try:
            return cls(
                size=tuple(size),
                color=d["color"],
                fit=d.get("fit", DEFAULT_FIT),
                background=d.get("background", BACKGROUND),
            )
        except DatasetError as e:
            raise ModelFileError(f"image spec: {e}") from e


def spec_for_model(meta: dict | None, input_shape: Sequence[int]) -> ImageSpec:
    """The :class:`ImageSpec` a model decodes with: its metadata's ``image`` entry, else
    (models written before it was recorded) squash to ``input_shape``. The spec must
    agree with ``input_shape``."""
    shape = tuple(int(s) for s in input_shape)
    d = (meta or {}).get("image")
    if d is None:
        return ImageSpec.from_shape(shape)
    spec = ImageSpec.from_dict(d)
    channels = shape[2] if len(shape) == 3 else 1
    if spec.size != shape[:2] or (spec.color == "rgb") != (channels == 3):
        raise ModelFileError(
            f"the model's image spec ({spec.size[0]}x{spec.size[1]} {spec.color}) does not match "
            f"its input shape {shape}; the model file is inconsistent"
        )
    return spec


# ----------------------------------------------------------------------------- decoding


def _label(name) -> str:
    return f"{name}: " if name else ""


def _too_large(name, w: int, h: int, max_pixels: int) -> ImageTooLargeError:
    why = (
        f"image too large: {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
        "(a decompression bomb or a very large scan); shrink the image or raise max_pixels"
    )
    return ImageTooLargeError(_label(name) + why, path=str(name), reason=why)


def _open(source, name: str):
    """Open ``source`` (path or bytes) with Pillow, header only; the image's format is
    tried first when the file name suggests it."""
    from PIL import Image

    if isinstance(source, bytes | bytearray | memoryview):
        return Image.open(io.BytesIO(bytes(source)), formats=FORMATS)
    hint = _FORMAT_HINTS.get(os.path.splitext(str(source))[1].lower())
    if hint is not None:  # naming the format skips Pillow's trial of every plugin
        try:
            return Image.open(source, formats=(hint,))
        except Image.UnidentifiedImageError:
            pass  # content does not match the extension
    return Image.open(source, formats=FORMATS)


def _oriented_size(img) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied, from the header (a PNG's
    ``eXIf`` chunk after its pixel data is not looked for: that would decode the pixels)."""
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        return w, h
    if img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):
        w, h = h, w
    return w, h


def _source_name(source, name: str):
    """(``source`` with a path-like as ``str``, the name for messages)."""
    if isinstance(source, str | os.PathLike):
        name = name or str(source)
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
    return source, name


def _failure(e: BaseException, source, name: str, max_pixels: int | None) -> ImageDecodeError:
    """The objrec error for the exception ``e`` raised while opening or decoding ``source``."""
    from PIL import Image, UnidentifiedImageError

    def fail(why: str, cls=ImageDecodeError):
        return cls(_label(name) + why, path=name, reason=why)

    if isinstance(e, Image.DecompressionBombError):
        limit = f"the limit is {max_pixels:,} pixels, " if max_pixels else ""
        return fail(
            f"image too large ({e}); {limit}shrink the image or raise max_pixels",
            ImageTooLargeError,
        )
    if isinstance(e, FileNotFoundError):
        return fail("no such file")
    if isinstance(e, IsADirectoryError):
        return fail("is a folder, not an image file")
    if isinstance(e, UnidentifiedImageError):
        if isinstance(source, str) and os.path.getsize(source) == 0:
            return fail("empty file (0 bytes)")
        return fail(
            f"not a readable image (supported: {', '.join(FORMATS)}); the file may be corrupt"
        )
    if isinstance(e, OSError | ValueError | SyntaxError | EOFError):
        return fail(f"corrupt or truncated image ({type(e).__name__}: {e})")
    # any other decoder failure (e.g. TypeError in a malformed TIFF)
    return fail(f"could not be decoded ({type(e).__name__}: {e})")


def _guarded(fn, source, name: str, max_pixels: int):
    """Run ``fn(img)`` on the opened image, turning every failure into objrec's errors."""
    with open_image(source, max_pixels=max_pixels, name=name) as opened:
        return opened.apply(fn)


_GUARD = threading.local()  # .on: this thread is inside a bomb_warning_ignored block


class bomb_warning_ignored:
    """Context manager: Pillow's ``DecompressionBombWarning`` ignored inside (objrec checks
    its own, lower, pixel limit; Pillow's ``DecompressionBombError`` still raises).

    ``warnings.catch_warnings`` copies the whole filter list on entry, so a caller handling
    several images (a server request) enters one block around all of them; the blocks that
    :func:`open_image` and :meth:`OpenedImage.apply` enter inside it then cost nothing.
    Like ``catch_warnings`` it changes process-wide state; nested blocks in one thread are
    free.
    """

    __slots__ = ("_cw",)

    def __enter__(self) -> bomb_warning_ignored:
        self._cw = None
        if getattr(_GUARD, "on", False):
            return self
        from PIL import Image

        self._cw = warnings.catch_warnings()
        self._cw.__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _GUARD.on = True
        return self

    def __exit__(self, *exc) -> None:
        if self._cw is not None:
            _GUARD.on = False
            self._cw.__exit__(*exc)


class OpenedImage:
    """An image file opened by Pillow: its header read and checked, no pixel decoded yet.

    From :func:`open_image`. ``width``, ``height`` and ``pixels`` (width x height) come
    from the header, so a caller can budget several images before decoding any of them,
    then :meth:`decode` each without opening its file a second time. A context manager;
    :meth:`decode` closes the file too.
    """

    __slots__ = ("_img", "_max_pixels", "_source", "height", "name", "width")

    def __init__(self, img, source, name: str, max_pixels: int | None):
        self._img, self._source, self.name, self._max_pixels = img, source, name, max_pixels
        self.width, self.height = img.size

    @property
    def pixels(self) -> int:
        """width x height, from the header (the same after the EXIF orientation)."""
        return self.width * self.height

    def apply(self, fn):
        """``fn(img)`` on the Pillow image, its failures as :class:`ImageDecodeError`."""

        if self._img is None:
            raise ValueError(f"{self.name or 'the image'} is closed (decoded already?)")
        try:
            with bomb_warning_ignored():
                return fn(self._img)
        except (ImageDecodeError, MemoryError):
            raise
        except Exception as e:
            raise _failure(e, self._source, self.name, self._max_pixels) from e

    def decode(self) -> np.ndarray:
        """uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB, as :func:`decode` gives; closes the file.

        Raises :class:`ImageDecodeError` for a corrupt or truncated file.
        """
        try:
            return self.apply(_decode_opened)
        finally:
            self.close()

    def close(self) -> None:
        if self._img is not None:
            self._img.close()
            self._img = None

    def __enter__(self) -> OpenedImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_image(
    source: bytes | str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS, name: str = ""
) -> OpenedImage:
    """Open one image file (path or bytes), reading its header only.

    Raises :class:`ImageDecodeError` naming the file for an empty, missing, unidentified or
    pixel-less file, and :class:`ImageTooLargeError` when width x height exceeds
    ``max_pixels`` (None: no limit of objrec's own; Pillow's decompression-bomb guard,
    twice ``PIL.Image.MAX_IMAGE_PIXELS``, still applies).
    """

    source, name = _source_name(source, name)
    if isinstance(source, bytes | bytearray | memoryview) and not len(source):
        why = "empty file (0 bytes); send an image file (PNG, JPEG, ...)"
        raise ImageDecodeError(_label(name) + why, path=name, reason=why)
    try:
        # the pixel limit below is checked first; Pillow's own (higher) one is not a warning
        with bomb_warning_ignored():
            img = _open(source, name)
    except MemoryError:
        raise
    except Exception as e:
        raise _failure(e, source, name, max_pixels) from e
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise _too_large(name, w, h, max_pixels)
    if w == 0 or h == 0:
        img.close()
        why = f"image has no pixels ({w}x{h})"
        raise ImageDecodeError(_label(name) + why, path=name, reason=why)
    return OpenedImage(img, source, name, max_pixels)


def _decode_opened(img) -> np.ndarray:
    img.load()  # decode now: truncated files fail here
    return np.ascontiguousarray(_to_array(_upright(img)))


def _composite(arr: np.ndarray, background: str = BACKGROUND) -> np.ndarray:
    """(H, W, C+1) colour + alpha uint8 -> (H, W, C) composited on ``background``:
    ``round((c * a + bg * (255 - a)) / 255)``."""
    bg = BACKGROUNDS[background]
    c = arr[..., :-1].astype(np.uint32)
    a = arr[..., -1:].astype(np.uint32)
    out = (c * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _is_grey_rgb(arr: np.ndarray) -> bool:
    return bool(
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    )


def _to_array(img) -> np.ndarray:
    """A loaded, upright Pillow image -> uint8 (H, W) grey or (H, W, 3) RGB (module docstring)."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in ("LA", "La"):
        return _composite(np.asarray(img.convert("LA") if mode == "La" else img))[..., 0]
    if mode.startswith("I;16"):
        v = np.asarray(img).astype(np.uint32)  # big- or little-endian 16-bit
        return ((v * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "I":
        v = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        if v.size and v.max() > 255:
            return ((v * 255 + 32767) // 65535).astype(np.uint8)
        return v.astype(np.uint8)
    if mode == "F":
        v = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(v.max()) if v.size else 0.0
        if hi <= 1.0:
            v = np.clip(v, 0.0, 1.0)
        else:
            lo = float(v.min())
            v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
        return np.floor(v * 255.0 + 0.5).astype(np.uint8)
    if mode in ("P", "PA"):
        if mode == "PA" or "transparency" in img.info:
            rgb = _composite(np.asarray(img.convert("RGBA")))
        else:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        return np.ascontiguousarray(rgb[..., 0]) if _is_grey_rgb(rgb) else rgb
    if mode in ("RGBA", "RGBa"):
        return _composite(np.asarray(img.convert("RGBA") if mode == "RGBa" else img))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)  # CMYK, YCbCr, LAB, HSV, RGBX, ...


#: where Pillow's ``getexif`` finds an orientation in a loaded image's ``info``
_ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def _upright(img):
    from PIL import ImageOps

    info = img.info
    if (
        getattr(img, "_exif", None) is None
        and not hasattr(img, "tag_v2")  # TIFF: EXIF from its tags
        and not any(k in info for k in _ORIENTATION_SOURCES)
    ):
        return img  # no orientation recorded anywhere (most PNGs, BMPs, ...): nothing to parse
    if img.getexif().get(_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    return img


def decode(
    source: bytes | str | os.PathLike, *, max_pixels: int = MAX_PIXELS, name: str = ""
) -> np.ndarray:
    """Decode one image file (path or bytes) to uint8 ``(H, W)`` grey or ``(H, W, 3)`` RGB,
    upright, transparency on black, at its own size (module docstring: the rules).

    Raises :class:`ImageDecodeError` (an :class:`~objrec.errors.InputError`) naming the
    file for an empty, missing, corrupt or unsupported file, and :class:`ImageTooLargeError`
    when width x height exceeds ``max_pixels`` (checked before decoding).
    """

    with open_image(source, max_pixels=max_pixels, name=name) as opened:
        return opened.decode()


class _NotLabels(ValueError):
    """A decodable image that holds no label map (a colour image)."""


def _label_array(img) -> np.ndarray:
    """A loaded, upright Pillow label image -> its stored integers (see :func:`decode_labels`)."""
    mode = img.mode
    if mode in ("P", "L"):
        return np.asarray(img, dtype=np.uint8)  # palette: the indices, not the colours
    if mode == "1":
        return np.asarray(img, dtype=np.uint8)  # 0 / 1
    if mode.startswith("I;16") or mode == "I":
        v = np.asarray(img).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() > 65535):
            raise _NotLabels(f"label values {v.min()}..{v.max()} outside 0..65535")
        return v.astype(np.uint16)
    if mode in ("RGB", "RGBA", "LA"):
        a = np.asarray(img)
        if a.shape[-1] >= 3 and _is_grey_rgb(a[..., :3]):  # a grey mask saved as RGB
            return np.ascontiguousarray(a[..., 0])
        if mode == "LA":
            return np.ascontiguousarray(a[..., 0])
        raise _NotLabels(
            f"a {mode} colour image is not a label map: save masks as index (palette) or "
            "grey PNGs whose values are the labels (as Pascal VOC does)"
        )
    raise _NotLabels(f"a {mode} image is not a label map (use a palette, grey or 16-bit PNG)")


def decode_labels(
    source: bytes | str | os.PathLike, *, max_pixels: int = MAX_PIXELS, name: str = ""
) -> np.ndarray:
    """Decode a label image (a segmentation mask or an instance map) to the integers it
    stores, (H, W), upright: uint8 for palette (the palette **indices**, as Pascal VOC's
    masks), grey and bilevel images (0/1); uint16 for 16-bit and 32-bit integer images
    (values 0..65535). An RGB image whose three channels are equal counts as grey; other
    colour images are refused. Opens, limits and reports failures as :func:`decode` does
    (:class:`ImageDecodeError` naming the file)."""

    source, name = _source_name(source, name)

    def run(img):
        img.load()
        try:
            return np.ascontiguousarray(_label_array(_upright(img)))
        except _NotLabels as e:
            raise ImageDecodeError(_label(name) + str(e), path=name, reason=str(e)) from e

    return _guarded(run, source, name, max_pixels)


def probe(
    source: bytes | str | os.PathLike, *, max_pixels: int = MAX_PIXELS, name: str = ""
) -> tuple[int, int, str]:
    """(height, width, mode) :func:`decode` gives, mostly from the header.

    ``mode`` is ``"L"`` or ``"RGB"``; height and width are after the EXIF orientation.
    Palette images are decoded (their greyness depends on the colours). Raises as
    :func:`decode` does for unreadable headers and images over ``max_pixels``.
    """

    def run(img):
        w, h = _oriented_size(img)
        m = img.mode
        if m in ("P", "PA"):
            img.load()
            mode = "L" if _to_array(img).ndim == 2 else "RGB"
        elif m in ("L", "1", "LA", "La", "I", "F") or m.startswith("I;16"):
            mode = "L"
        else:
            mode = "RGB"
        return int(h), int(w), mode

    return _guarded(run, source, name, max_pixels)


# ----------------------------------------------------------------------------- arrays


def convert_color(img: np.ndarray, color: str | None) -> np.ndarray:
    """One uint8 image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped) to ``color``:
    "grey" -> (H, W) by ITU-R 601 luma (OpenCV), "rgb" -> (H, W, 3) (grey repeated),
    None -> (H, W) or (H, W, 3) as it is."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise InputError(f"an image must be (H, W) or (H, W, 1|3|4), got shape {a.shape}")
    if color == "grey" and a.ndim == 3:
        import cv2

        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    if color == "rgb" and a.ndim == 2:
        return np.repeat(a[..., None], 3, axis=-1)
    return a


def _pil_resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(a))
    return np.asarray(img.resize(size_wh, Image.Resampling.BILINEAR, reducing_gap=None))


def resize(img: np.ndarray, size: tuple[int, int], fit: str = DEFAULT_FIT) -> np.ndarray:
    """One uint8 image (H, W) or (H, W, 3) to ``size`` = (height, width) with the one filter
    (Pillow's antialiased bilinear) under the aspect policy ``fit`` (squash, crop, pad)."""
    th, tw = int(size[0]), int(size[1])
    a = np.asarray(img)
    h, w = a.shape[:2]
    if (h, w) == (th, tw):
        return a
    fit = parse_fit(fit)
    if fit == "squash":
        return _pil_resize(a, (tw, th))
    if fit == "crop":  # cut the centred region of the target's aspect ratio, then resize
        if w * th > h * tw:  # wider than the target
            cw, ch = max(1, min(w, round(h * tw / th))), h
        else:
            cw, ch = w, max(1, min(h, round(w * th / tw)))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        a = a[y0 : y0 + ch, x0 : x0 + cw]
        return a if a.shape[:2] == (th, tw) else _pil_resize(a, (tw, th))
    # pad: the whole image inside, centred on the background
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    inner = a if (nh, nw) == (h, w) else _pil_resize(a, (nw, nh))
    out = np.full((th, tw, *a.shape[2:]), BACKGROUNDS[BACKGROUND], np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = inner
    return out


def prepare(
    img: np.ndarray,
    spec: ImageSpec | None = None,
    *,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    fit: str = DEFAULT_FIT,
) -> np.ndarray:
    """A decoded image (uint8 (H, W[, C])) to ``spec`` (or ``color``/``size``/``fit``):
    :func:`convert_color`, then :func:`resize`. Returns uint8 ``spec.shape``."""
    if spec is not None:
        color, size, fit = spec.color, spec.size, spec.fit
    a = convert_color(img, color)
    if size is not None:
        a = resize(a, size, fit)
    return np.ascontiguousarray(a, dtype=np.uint8)


def load_image(
    source: bytes | str | os.PathLike,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
    *,
    fit: str = DEFAULT_FIT,
    spec: ImageSpec | None = None,
    name: str = "",
) -> np.ndarray:
    """:func:`decode` then :func:`prepare`: one file as uint8 ``(H, W)`` or ``(H, W, 3)`` at
    ``spec`` (or ``color`` / ``size`` = (height, width) / ``fit``; None keeps the file's)."""
    return prepare(
        decode(source, max_pixels=max_pixels, name=name),
        spec,
        color=parse_color(color),
        size=parse_size(size),
        fit=fit,
    )


# ----------------------------------------------------------------------------- batches


def to_grey(X: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) RGB -> (N, H, W) grey with ITU-R 601 luma (OpenCV); grey passes through."""
    if X.ndim == 3:
        return X
    import cv2

    n, h, w, _ = X.shape
    flat = np.ascontiguousarray(X).reshape(n * h, w, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(n, h, w)


def to_rgb(X: np.ndarray) -> np.ndarray:
    """(N, H, W) grey -> (N, H, W, 3) by repeating the channel."""
    if X.ndim == 4:
        return X
    return np.repeat(X[..., None], 3, axis=-1)


def resize_batch(X: np.ndarray, size: tuple[int, int], fit: str = DEFAULT_FIT) -> np.ndarray:
    """Every image of uint8 (N, H, W[, 3]) to ``size`` = (height, width) with :func:`resize`.

    Returns uint8 (N, h, w[, 3]); ``X`` itself when it already has that size.
    """
    h, w = int(size[0]), int(size[1])
    X = np.asarray(X)
    if X.shape[1:3] == (h, w):
        return X
    fit = parse_fit(fit)
    squeeze = X.ndim == 4 and X.shape[-1] == 1
    src = X[..., 0] if squeeze else X
    out = np.empty((len(X), h, w, *src.shape[3:]), np.uint8)
    for i, img in enumerate(src):
        out[i] = _pil_resize(img, (w, h)) if fit == "squash" else resize(img, (h, w), fit)
    return out[..., None] if squeeze else out


# ----------------------------------------------------------------------------- working size


def working_size(sizes: Sequence[tuple[int, int]], cap: int = WORKING_SIZE_CAP) -> tuple[int, int]:
    """The (height, width) a folder of images with these (H, W) ``sizes`` is loaded at.

    Rule: the median height and the median width of the images, scaled down together
    (never up) until the longer side is at most ``cap``; rounded, at least 1. Images of one
    size at most ``cap`` keep that size.
    """
    if len(sizes) == 0:
        raise DatasetError("no images to pick a working size from")
    if cap < 1:
        raise DatasetError(f"working size cap must be at least 1, got {cap}")
    hw = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    mh, mw = float(np.median(hw[:, 0])), float(np.median(hw[:, 1]))
    scale = min(1.0, cap / max(mh, mw))
    return max(1, round(mh * scale)), max(1, round(mw * scale))


def describe_working_size(
    sizes: Sequence[tuple[int, int]], chosen: tuple[int, int], cap: int = WORKING_SIZE_CAP
) -> str:
    """One line saying what :func:`working_size` chose and why, e.g. ``"working size 128x97
    (median of 164 images 320x243, longest side at most 128; --size to override)"``."""
    hw = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    mh, mw = np.median(hw[:, 0]), np.median(hw[:, 1])
    distinct = len({(int(a), int(b)) for a, b in hw})
    what = f"median of {len(hw)} images {mh:g}x{mw:g}"
    if distinct > 1:
        what += f", {distinct} different sizes"
    if (chosen[0], chosen[1]) != (round(mh), round(mw)):
        what += f", longest side at most {cap}"
    return f"working size {chosen[0]}x{chosen[1]} ({what}; --size to override)"


__all__ = [
    "BACKGROUND",
    "DEFAULT_FIT",
    "FITS",
    "FORMATS",
    "MAX_PIXELS",
    "RESIZE_FILTER",
    "WORKING_SIZE_CAP",
    "ImageDecodeError",
    "ImageSpec",
    "ImageTooLargeError",
    "OpenedImage",
    "bomb_warning_ignored",
    "convert_color",
    "decode",
    "decode_labels",
    "describe_working_size",
    "load_image",
    "open_image",
    "parse_color",
    "parse_fit",
    "parse_size",
    "prepare",
    "probe",
    "resize",
    "resize_batch",
    "spec_for_model",
    "to_grey",
    "to_rgb",
    "working_size",
]
