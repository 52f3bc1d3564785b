"""Fuzzing the folder loader: random small trees of class folders holding good images,
truncated and mutated PNG/JPEG/GIF/BMP files, zero-byte files, random bytes and non-image
names, loaded into memory or streamed.

Whatever the tree, :func:`objrec.data.load_dataset` returns a dataset (unreadable files
skipped with a warning) or raises one of objrec's own errors; a streamed dataset decodes
or raises one of them too. The inputs that broke the loader are kept as explicit cases.
"""

import io
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from objrec.data import load_dataset
from objrec.errors import ObjrecError

PIL = pytest.importorskip("PIL.Image")

FUZZ = settings(
    max_examples=int(os.environ.get("OBJREC_FUZZ_EXAMPLES", 80)),  # more: fuzz longer
    deadline=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "bmp": "BMP", "tif": "TIFF"}
MODES = ["L", "L", "RGB", "RGB", "RGBA", "LA", "P", "1", "I;16", "I", "F", "CMYK"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A scratch folder for the trees, and the loader's cache kept inside it."""
    root = tmp_path_factory.mktemp("trees")
    (root / "outside.png").write_bytes(image_bytes("png", 8, 8, "L", 0))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield root


def image_bytes(fmt: str, h: int, w: int, mode: str, seed: int) -> bytes:
    """A valid image file of random pixels (RGB where the format cannot store ``mode``)."""
    rng = np.random.default_rng(seed)
    if mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        arr = rng.integers(-(2**15) if mode == "I" else 0, 2**16, (h, w)).astype(dtype)
        if mode == "F":
            arr.flat[0] = np.nan  # floating-point images may hold NaN and infinity
            arr.flat[-1] = np.inf
        img = PIL.fromarray(arr)
    else:
        rgb = PIL.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        img = rgb.convert(mode) if mode != "P" else rgb.quantize(4)
    buf = io.BytesIO()
    try:
        img.save(buf, format=FORMATS[fmt])
    except (OSError, ValueError, KeyError):
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=FORMATS[fmt])
    return buf.getvalue()


class Link(str):
    """A symbolic link to this target, in place of a file's bytes."""


BOMB_SIZES = [(100_000, 100_000), (2**31 - 1, 1), (9000, 9000), (0, 5)]


def png_announcing(w: int, h: int) -> bytes:
    """A PNG whose header announces w x h grey pixels (with correct CRCs), data for 1x1."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


#: what the fuzzer puts in a class folder (good images most often)
KINDS = ["good"] * 10 + ["cut", "flip", "zero", "random", "text", "misnamed", "link", "name"]
KINDS += ["bomb"]
#: link targets and file names, loops and names that are not UTF-8 included
LINKS = ["missing.png", "OUTSIDE", "..", "."]
NAMES = ["é", "a b", "line\nbreak", "x.png.bak", "-", "\udcff"]


@st.composite
def image_files(draw):
    """(extension or full file name, bytes or Link) of one file in a class folder."""
    kind = draw(st.sampled_from(KINDS))
    ext = draw(st.sampled_from(sorted(FORMATS)))
    size = draw(st.sampled_from([(8, 8)] * 4 + [(6, 9), (1, 1)]))
    good = image_bytes(ext, *size, draw(st.sampled_from(MODES)), draw(st.integers(0, 1000)))
    if kind == "good":
        data = good
    elif kind == "cut":
        data = good[: draw(st.integers(0, len(good) - 1))]
    elif kind == "flip":
        i = draw(st.integers(0, len(good) - 1))
        data = good[:i] + bytes([good[i] ^ draw(st.integers(1, 255))]) + good[i + 1 :]
    elif kind == "zero":
        data = b""
    elif kind == "random":
        data = draw(st.binary(min_size=1, max_size=128))
    elif kind == "text":
        ext, data = "txt", b"not an image\n"
    elif kind == "misnamed":  # a PNG named .jpg and so on
        ext = draw(st.sampled_from(sorted(set(FORMATS) - {ext})))
        data = good
    elif kind == "bomb":  # a valid PNG announcing more pixels than allowed
        ext, data = "png", png_announcing(*draw(st.sampled_from(BOMB_SIZES)))
    elif kind == "link":  # a dangling link, or a link to an image outside the tree
        ext, data = "png", Link(draw(st.sampled_from(LINKS)))
    else:  # names that are not plain ASCII words
        return draw(st.sampled_from(NAMES)) + "." + ext, good
    return ext, data


@st.composite
def trees(draw):
    """{relative path: bytes}: one to three class folders, maybe under train/ and test/."""
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "cat", "dog", "2", "10", "train", ".hidden"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    splits = draw(st.sampled_from([[""], ["train/", "test/"], ["train/", "val/", "test/"]]))
    files = {}
    for split in splits:
        for c in names:
            n = 0 if draw(st.integers(0, 19)) == 0 else draw(st.integers(1, 6))
            for k in range(n):
                ext, data = draw(image_files())
                sub = draw(st.sampled_from(["", "", "", "nested/"]))
                name = ext if "." in ext else f"{k}.{ext}"
                files[f"{split}{c}/{sub}{name}"] = data
            if n == 0:
                files[f"{split}{c}/"] = None  # an empty class folder
    return files


def build(base: Path, files: dict) -> Path:
    """Write the tree ``{relative path: bytes, Link or None (an empty folder)}`` under base."""
    root = Path(tempfile.mkdtemp(dir=base))
    for rel, data in files.items():
        p = root / rel
        if data is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Link):
            target = base / "outside.png" if data == "OUTSIDE" else data
            if not p.is_symlink():
                p.symlink_to(target)
        else:
            p.write_bytes(data)
    return root


def note(outcome: str) -> None:
    """Count outcomes in Hypothesis' statistics (pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(outcome)


def load_or_refuse(root: Path, **options):
    """The dataset, or None when objrec refused the folder with its own error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = load_dataset(str(root), progress=False, **options)
            if options.get("stream"):
                for split in (ds.train, ds.val, ds.test):
                    split.X.load()  # decode every streamed file
        except ObjrecError as e:
            note("refused: " + re.sub(r"\d+", "N", str(e).split(": ", 1)[-1])[:40])
            return None
    note("loaded")
    return ds


def check_dataset(ds, files: dict) -> None:
    n_files = sum(data is not None for data in files.values())
    total = 0
    for split in (ds.train, ds.val, ds.test):
        X = np.asarray(split.X)
        assert X.dtype == np.uint8 and X.ndim in (3, 4) and len(X) == len(split.y)
        assert split.y.dtype == np.int64
        assert not len(split.y) or (0 <= split.y.min() and split.y.max() < len(ds.classes))
        total += len(split.y)
    assert 0 < total <= n_files


@FUZZ
@given(files=trees(), size=st.sampled_from([None, 8]), stream=st.booleans())
def test_random_trees(base, files, size, stream):
    root = build(base, files)
    try:
        ds = load_or_refuse(root, size=size, stream=stream)
        if ds is not None:
            check_dataset(ds, files)
    finally:
        shutil.rmtree(root)


# --- the corpus: inputs found by this suite or by hand, kept as explicit cases --------------


def png(seed: int = 0, h: int = 8, w: int = 8, mode: str = "L") -> bytes:
    return image_bytes("png", h, w, mode, seed)


def four(**extra) -> dict:
    """Two classes of two good 8x8 PNGs, plus ``extra`` files."""
    files = {"a/0.png": png(0), "a/1.png": png(1), "b/0.png": png(2), "b/1.png": png(3)}
    return {**files, **{k.replace("__", "/"): v for k, v in extra.items()}}


CORPUS = {
    # name: (tree, True if it must load, False if objrec must refuse it)
    "good": (four(), True),
    "truncated-png-skipped": (four(a__2_png=png(6)[:40]), True),
    "zero-byte-file-skipped": (four(b__2_png=b""), True),
    "text-file-skipped": (four(a__notes_txt=b"hello"), True),
    "png-named-jpg": (four(a__2_jpg=png(7)), True),
    "dangling-link-skipped": (four(a__2_png=Link("missing.png")), True),
    "float-tiff-with-nan": (four(a__2_tif=image_bytes("tif", 8, 8, "F", 1)), True),
    "sixteen-bit-png": (four(b__2_png=image_bytes("png", 8, 8, "I;16", 1)), True),
    "cmyk-jpeg": (four(b__2_jpg=image_bytes("jpg", 8, 8, "CMYK", 1)), True),
    "png-announcing-10-gigapixels": (four(a__2_png=png_announcing(100_000, 100_000)), False),
    "png-announcing-81-megapixels": (four(a__2_png=png_announcing(9000, 9000)), False),
    "png-of-zero-width": (four(a__2_png=png_announcing(0, 5)), True),
    "every-file-of-a-class-unreadable": (four(a__0_png=b"", a__1_png=b"x"), False),
    "mixed-sizes": (four(a__2_png=png(8, 6, 9)), True),  # loads at a working size
    "empty-class-folder": ({**four(), "c/": None}, False),
    "only-loose-files": ({"0.png": png(0), "1.png": png(1)}, False),
    # a link to a parent folder is refused (it would list the same files forever)
    "link-to-parent": (four(a__loop=Link("..")), False),
    "link-to-itself": (four(b__self=Link(".")), False),
    # names that are not valid UTF-8 (they reach Python as lone surrogates) load
    "non-utf8-file-name": (four(**{"a__\udcff.png": png(4)}), True),
    "non-utf8-class-name": (four(**{"\udcff__0.png": png(4), "\udcff__1.png": png(5)}), True),
}


def _named(files: dict) -> dict:
    """``a/2_png`` keys (keyword-friendly) back to ``a/2.png``."""
    return {re.sub(r"_(png|jpg|tif|txt)$", r".\1", k): v for k, v in files.items()}


@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(base, name, stream):
    files, loads = CORPUS[name]
    files = _named(files)
    root = build(base, files)
    try:
        ds = load_or_refuse(root, stream=stream)
        assert (ds is not None) == loads
        if ds is not None:
            check_dataset(ds, files)
    finally:
        shutil.rmtree(root)
