import os
import warnings

import numpy as np
import pytest
from PIL import Image

from objrec.data import folders, load_dataset
from objrec.data.folders import DatasetWarning, load_folder, natural_key
from objrec.errors import DatasetError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "objrec"


def grey(seed, h=12, w=10):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def save(path, arr, fmt=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt, **kw)
    return path


@pytest.fixture
def mixed(tmp_path):
    """3 classes, 7 lossless grey formats plus a JPEG; a corrupt JPEG and a text file."""
    root = tmp_path / "mixed"
    truth = {}
    exts = ["png", "bmp", "pgm", "gif", "tif", "png", "bmp"]
    for ci, cls in enumerate(["cat", "dog", "bird"]):
        for k, ext in enumerate(exts):
            a = grey(10 * ci + k)  # (a grey GIF gets a 256-grey palette: exact)
            truth[save(root / cls / f"img{k}.{ext}", a)] = a
        save(root / cls / "photo.jpg", grey(99 + ci), quality=95)
    good_jpeg = (root / "cat" / "photo.jpg").read_bytes()
    (root / "dog" / "broken.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
    (root / "bird" / "notes.txt").write_text("not an image")
    return root, truth


def test_mixed_formats_corrupt_jpeg_and_text_file(mixed):
    root, truth = mixed
    with pytest.warns(DatasetWarning, match=r"skipped 2 unreadable or non-image file\(s\)") as rec:
        ds = load_folder(root, progress=False, val_size=0.15, test_size=0.15)
    msg = str(rec[0].message)
    assert "broken.jpg" in msg and "notes.txt" in msg and str(root) in msg
    assert sorted(os.path.basename(p) for p, _ in ds.skipped) == ["broken.jpg", "notes.txt"]
    assert ds.classes == ["bird", "cat", "dog"]
    n = sum(len(s) for s in ds.splits.values())
    assert n == 3 * 8
    assert ds.image_shape == (12, 10)
    X = np.concatenate([s.X for s in ds.splits.values()])
    y = np.concatenate([s.y for s in ds.splits.values()])
    assert X.dtype == np.uint8 and y.dtype == np.int64
    # every lossless file decodes to exactly the pixels written, under its class
    flat = {(bytes(x), int(c)) for x, c in zip(X.reshape(len(X), -1), y, strict=True)}
    for path, a in truth.items():
        assert (bytes(a.reshape(-1)), ds.classes.index(path.parent.name)) in flat, path.name


def test_gif_palette_and_formats_read_exactly(tmp_path):
    a = grey(1)
    rgb = np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    from objrec.data.folders import decode_image

    for ext in ("png", "bmp", "pgm", "gif", "tif", "tiff"):
        p = save(tmp_path / f"g.{ext}", a)
        np.testing.assert_array_equal(decode_image(str(p), None, None), a, err_msg=ext)
    for ext in ("png", "bmp", "ppm", "tif"):
        p = save(tmp_path / f"c.{ext}", rgb)
        np.testing.assert_array_equal(decode_image(str(p), None, None), rgb, err_msg=ext)
        assert decode_image(str(p), "grey", (6, 5)).shape == (6, 5)
    p = save(tmp_path / "g2.png", a)
    assert decode_image(str(p), "rgb", None).shape == (12, 10, 3)


def test_empty_class_folder_is_an_error(tmp_path):
    save(tmp_path / "r" / "a" / "1.png", grey(0))
    (tmp_path / "r" / "b").mkdir()
    with pytest.raises(DatasetError, match=r"class folder 'b' holds no images"):
        load_folder(tmp_path / "r", progress=False)


def test_class_with_only_unreadable_files_is_an_error(tmp_path):
    save(tmp_path / "r" / "a" / "1.png", grey(0))
    (tmp_path / "r" / "b").mkdir()
    (tmp_path / "r" / "b" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"class folder\(s\) b hold no readable images"):
        load_folder(tmp_path / "r", progress=False)


def test_root_without_classes_is_an_error(tmp_path):
    save(tmp_path / "flat" / "1.png", grey(0))
    with pytest.raises(DatasetError, match=r"no class folders found \(it holds 1 loose files"):
        load_folder(tmp_path / "flat", progress=False)
    with pytest.raises(DatasetError, match="no such folder"):
        load_folder(tmp_path / "missing", progress=False)


def test_different_sizes_load_at_a_working_size(tmp_path):
    save(tmp_path / "r" / "a" / "1.png", grey(0, 12, 10))
    save(tmp_path / "r" / "a" / "2.png", grey(1, 12, 10))
    save(tmp_path / "r" / "b" / "3.png", grey(2, 20, 30))
    ds = load_folder(tmp_path / "r", progress=False, val_size=0, test_size=1)
    # median height 12 and width 10 of the three images; no cap reached
    assert ds.image_shape == (12, 10)
    assert ds.image.size == (12, 10) and ds.image.fit == "squash"
    assert ds.image_note.startswith("working size 12x10 (median of 3 images 12x10")
    ds = load_folder(
        tmp_path / "r", size=(8, 6), color="rgb", progress=False, val_size=0, test_size=1
    )
    assert ds.image_shape == (8, 6, 3) and ds.image_note == ""


def test_mixed_grey_and_rgb_become_rgb(tmp_path):
    save(tmp_path / "r" / "a" / "1.png", grey(0))
    rgb = np.random.default_rng(2).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    save(tmp_path / "r" / "b" / "2.png", rgb)
    save(tmp_path / "r" / "b" / "3.png", rgb)
    ds = load_folder(tmp_path / "r", progress=False, val_size=0, test_size=1)
    assert ds.image_shape == (12, 10, 3)
    ds = load_folder(tmp_path / "r", color="grey", progress=False, val_size=0, test_size=1)
    assert ds.image_shape == (12, 10)


def test_presplit_layout_keeps_official_test(tmp_path):
    for split, n in (("train", 20), ("test", 4)):
        for c in ("x", "y"):
            for k in range(n):
                save(tmp_path / "r" / split / c / f"{k}.png", grey(hash((split, c, k)) % 1000))
    ds = load_folder(tmp_path / "r", progress=False)
    assert ds.official_test
    assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 4, 8)
    np.testing.assert_array_equal(np.bincount(ds.val.y), [2, 2])
    ds = load_folder(tmp_path / "r", progress=False, val_size=10)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 8)
    # an explicit val folder is used as is
    for c in ("x", "y"):
        save(tmp_path / "r" / "val" / c / "0.png", grey(5))
    ds = load_folder(tmp_path / "r", progress=False)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 2, 8)


def test_cache_makes_second_load_skip_decoding_and_notices_changes(
    tmp_path, monkeypatch, isolated_cache
):
    for c in ("a", "b"):
        for k in range(6):
            save(tmp_path / "r" / c / f"{k}.png", grey(k + (c == "b") * 10))
    first = load_folder(tmp_path / "r", progress=False)
    assert len(list((isolated_cache / "folders").glob("*.npz"))) == 1
    calls = []
    real = folders.decode_files
    monkeypatch.setattr(folders, "decode_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = load_folder(tmp_path / "r", progress=False)
    assert calls == []
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(first.splits[s].X, second.splits[s].X)
        np.testing.assert_array_equal(first.splits[s].y, second.splits[s].y)
    # other options -> another cache entry
    load_folder(tmp_path / "r", size=4, progress=False)
    assert len(calls) == 1
    # a changed file (new content, new mtime) is decoded again
    save(tmp_path / "r" / "a" / "0.png", grey(77, 12, 10))
    os.utime(tmp_path / "r" / "a" / "0.png", ns=(1, 1))
    third = load_folder(tmp_path / "r", progress=False)
    assert len(calls) == 2
    all_x = np.concatenate([s.X for s in third.splits.values()])
    assert any(np.array_equal(x, grey(77, 12, 10)) for x in all_x)
    # cache=False never reads nor writes it
    load_folder(tmp_path / "r", progress=False, cache=False)
    assert len(calls) == 3


def test_damaged_cache_file_is_rebuilt(tmp_path, isolated_cache):
    for c in ("a", "b"):
        for k in range(3):
            save(tmp_path / "r" / c / f"{k}.png", grey(k))
    load_folder(tmp_path / "r", progress=False, val_size=1, test_size=1)
    (cache,) = (isolated_cache / "folders").glob("*.npz")
    cache.write_bytes(b"junk")
    ds = load_folder(tmp_path / "r", progress=False, val_size=1, test_size=1)
    assert sum(len(s) for s in ds.splits.values()) == 6


def test_parallel_decoding_matches_serial(tmp_path, monkeypatch):
    for c in ("a", "b", "c"):
        for k in range(30):
            save(tmp_path / "r" / c / f"{k}.png", grey(k * 3 + ord(c)))
    (tmp_path / "r" / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    monkeypatch.setattr(folders, "PARALLEL_MIN_FILES", 10)
    with pytest.warns(DatasetWarning):
        par = load_folder(tmp_path / "r", workers=2, cache=False, progress=False)
    with pytest.warns(DatasetWarning):
        ser = load_folder(tmp_path / "r", workers=1, cache=False, progress=False)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(par.splits[s].X, ser.splits[s].X)
        np.testing.assert_array_equal(par.splits[s].y, ser.splits[s].y)


def test_huge_image_is_refused(tmp_path):
    save(tmp_path / "r" / "a" / "big.png", np.zeros((300, 400), np.uint8))
    save(tmp_path / "r" / "b" / "ok.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(
        DatasetError,
        match=r"big.png: image too large: 400x300 = 120,000 pixels, over the limit of 100,000",
    ):
        load_folder(tmp_path / "r", max_pixels=100_000, progress=False, cache=False)


def test_split_independent_of_creation_order(tmp_path):
    names = [f"{k}.png" for k in range(12)]
    for root, order in ((tmp_path / "r1", names), (tmp_path / "r2", names[::-1])):
        for c in ("a", "b"):
            for n in order:  # files created in opposite orders (directory order differs)
                save(root / c / n, grey(int(n.split(".")[0]) + (c == "b") * 50))
    d1 = load_folder(tmp_path / "r1", progress=False, seed=3, cache=False)
    d2 = load_folder(tmp_path / "r2", progress=False, seed=3, cache=False)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(d1.splits[s].X, d2.splits[s].X)
    d3 = load_folder(tmp_path / "r1", progress=False, seed=4, cache=False)
    assert not np.array_equal(d1.test.X, d3.test.X)


def test_natural_class_order():
    assert sorted(["s10", "s2", "s1", "S3"], key=natural_key) == ["s1", "s2", "S3", "s10"]


def test_orl_faces_from_shared_data(shared_data):
    ds = load_dataset("orl-faces", data_dir=shared_data / "orl_faces", progress=False)
    assert (
        ds.classes[:3] == ["s1", "s2", "s3"] and ds.classes[-1] == "s40" and len(ds.classes) == 40
    )
    assert ds.image_shape == (112, 92)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (280, 60, 60)
    assert np.bincount(ds.train.y, minlength=40).min() == 7
    ref = np.asarray(Image.open(shared_data / "orl_faces" / "s1" / "1.pgm"))
    pool = np.concatenate([s.X[s.y == 0] for s in ds.splits.values()])
    assert any(np.array_equal(x, ref) for x in pool)


def test_orl_faces_missing_is_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("OBJREC_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match=r"orl-faces: no folder with the AT&T layout"):
        load_dataset("orl-faces", data_dir=tmp_path)


def test_load_dataset_on_folder_path(mixed):
    root, _ = mixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        ds = load_dataset(str(root), color="rgb", size=(6, 5), progress=False)
    assert ds.image_shape == (6, 5, 3) and ds.name == "mixed"


def _png_claiming(path, w, h):
    """A tiny PNG whose header claims w x h pixels (a decompression-bomb shape)."""
    import struct
    import zlib

    save(path, np.zeros((1, 1), np.uint8))
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", w, h) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("w", "h", "message"),
    [(10_000, 10_000, "limit of 64,000,000"), (20_000, 20_000, "decompression bomb")],
)
def test_bomb_headers_are_refused_before_decoding(tmp_path, w, h, message):
    _png_claiming(tmp_path / "r" / "a" / "bomb.png", w, h)
    save(tmp_path / "r" / "b" / "ok.png", np.zeros((3, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(DatasetError, match=rf"bomb.png: .*{message}.*raise max_pixels"):
            load_folder(tmp_path / "r", progress=False, cache=False)
