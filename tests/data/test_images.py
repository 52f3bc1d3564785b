"""The one image pipeline (objrec.data.images): decode rules against hand-computed oracles,
the resize filter and aspect policies, the working size, ImageSpec, and bit-identical
arrays on every path (folder in memory and streamed, predict, server, ONNX input)."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from objrec.data import images as im
from objrec.data import load_dataset
from objrec.data.images import ImageSpec
from objrec.errors import DatasetError, InputError, ModelFileError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- decode oracles


def test_rgba_and_la_composite_on_black_by_hand():
    rgba = rng(1).integers(0, 256, (7, 9, 4), dtype=np.uint8)
    out = im.decode(_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    c, a = rgba[..., :3].astype(np.float64), rgba[..., 3:].astype(np.float64)
    np.testing.assert_array_equal(out, np.floor(c * a / 255 + 0.5).astype(np.uint8))
    la = rng(2).integers(0, 256, (5, 6, 2), dtype=np.uint8)
    out = im.decode(_bytes(Image.fromarray(la, "LA"), "PNG"))
    assert out.shape == (5, 6)
    ref = np.floor(la[..., 0].astype(float) * la[..., 1] / 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, ref)


def test_palette_with_transparency_and_grey_palette():
    idx = rng(3).integers(0, 4, (6, 8), dtype=np.uint8)
    pal = [250, 10, 10, 10, 250, 10, 200, 200, 200, 90, 90, 250]
    p = Image.fromarray(idx, "P")
    p.putpalette(pal + [0] * (768 - len(pal)))
    out = im.decode(_bytes(p, "PNG", transparency=2))  # colour 2 fully transparent
    colours = np.array(pal).reshape(-1, 3).astype(np.uint8)
    ref = colours[idx]
    ref[idx == 2] = 0  # on black
    np.testing.assert_array_equal(out, ref)
    # a palette of greys decodes to a grey (H, W) image
    g = Image.fromarray(idx, "P")
    g.putpalette([v for k in (0, 80, 160, 240) for v in (k, k, k)] + [0] * 756)
    out = im.decode(_bytes(g, "PNG"))
    np.testing.assert_array_equal(out, np.array([0, 80, 160, 240], np.uint8)[idx])
    assert im.probe(_bytes(g, "PNG"))[2] == "L"


def test_16bit_int32_and_float_scaling_by_hand(tmp_path):
    v = np.array([[0, 1, 128, 129], [257, 32768, 65534, 65535]], np.uint16)
    out = im.decode(_bytes(Image.fromarray(v), "PNG"))
    np.testing.assert_array_equal(out, np.floor(v / 257 + 0.5).astype(np.uint8))
    f = np.array([[0.0, 0.25, 0.5], [1.0, -0.5, np.nan]], np.float32)
    out = im.decode(_bytes(Image.fromarray(f, "F"), "TIFF"))
    ref = np.floor(np.clip(np.nan_to_num(f), 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, ref)
    wide = np.array([[-10.0, 0.0], [30.0, 90.0]], np.float32)  # max > 1: min-max
    out = im.decode(_bytes(Image.fromarray(wide, "F"), "TIFF"))
    np.testing.assert_array_equal(out, np.floor((wide + 10) / 100 * 255 + 0.5).astype(np.uint8))
    i32 = np.array([[0, 300], [70000, -5]], np.int32)  # "I" mode: clipped, 16-bit scale
    out = im.decode(_bytes(Image.fromarray(i32, "I"), "TIFF"))
    ref = np.floor(np.clip(i32, 0, 65535) / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out, ref)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("where", ["exif-after-pixels", "xmp", "none"])
def test_png_orientation_wherever_it_is_recorded(where):
    """The EXIF orientation of a PNG in an eXIf chunk after the pixel data, or in XMP, is
    applied as Pillow's exif_transpose applies it (the oracle); none: the image as stored."""
    from PIL import ImageOps, PngImagePlugin

    a = rng(3).integers(0, 256, (20, 40), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    if where == "xmp":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta tiff:Orientation="6"/>')
        data = _bytes(Image.fromarray(a), "PNG", pnginfo=info)
    else:
        data = _bytes(Image.fromarray(a), "PNG")
        if where == "exif-after-pixels":
            assert data[-12:-8] == b"\x00\x00\x00\x00" and data[-8:-4] == b"IEND"
            data = data[:-12] + _png_chunk(b"eXIf", exif.tobytes()) + data[-12:]
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    got = im.decode(data)
    assert got.shape == ((20, 40) if where == "none" else (40, 20))
    np.testing.assert_array_equal(got, want)


def test_cmyk_jpeg_exif_rotation_and_bilevel():
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # red
    out = im.decode(_bytes(cmyk, "JPEG", quality=100))
    assert out.shape == (6, 8, 3) and out[..., 0].min() > 200 and out[..., 1:].max() < 60
    a = rng(4).integers(0, 256, (20, 40), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide; displayed rotated 90 degrees clockwise
    data = _bytes(Image.fromarray(a), "PNG", exif=exif)
    np.testing.assert_array_equal(im.decode(data), np.rot90(a, k=-1))
    assert im.probe(data)[:2] == (40, 20)
    jpg = _bytes(Image.fromarray(a), "JPEG", exif=exif, quality=95)
    assert im.decode(jpg).shape == (40, 20) and im.probe(jpg)[:2] == (40, 20)
    bw = Image.fromarray(a > 128).convert("1")
    np.testing.assert_array_equal(im.decode(_bytes(bw, "PNG")), np.where(a > 128, 255, 0))


def test_errors_name_the_file_and_pillow_failures_are_wrapped(tmp_path, monkeypatch):
    bad = tmp_path / "bad.tif"
    good = _bytes(Image.fromarray(np.zeros((4, 4), np.uint8)), "TIFF")
    bad.write_bytes(good)

    def boom(self, *a, **k):
        raise TypeError("unsupported tag type")  # what malformed TIFFs raise in Pillow

    monkeypatch.setattr(Image.Image, "load", boom)
    from PIL import TiffImagePlugin

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", boom)
    with pytest.raises(im.ImageDecodeError, match=r"bad\.tif: could not be decoded \(TypeError"):
        im.decode(bad)
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"missing\.png: no such file"):
        im.decode(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: empty file"):
        im.decode(tmp_path / "empty.png")


def test_one_pixel_limit_without_pillow_warning(tmp_path):
    p = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(p)
    with pytest.raises(im.ImageTooLargeError, match=r"big\.png: image too large: 400x300"):
        im.decode(p, max_pixels=100_000)
    # above Pillow's own warning threshold (89 Mpx) but allowed: no DecompressionBombWarning
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 100_000  # make Pillow's threshold small instead of the image big
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert im.decode(p, max_pixels=1_000_000).shape == (300, 400)
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_bomb_warning_ignored_nests_and_restores(tmp_path):
    p = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(p)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 100_000  # 120,000 pixels: Pillow warns; 2x: it refuses
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            before = list(warnings.filters)
            with im.bomb_warning_ignored():
                with im.bomb_warning_ignored():  # nested: the outer block's filter holds
                    assert im.decode(p, max_pixels=None).shape == (300, 400)
                assert im.decode(p, max_pixels=None).shape == (300, 400)
                Image.MAX_IMAGE_PIXELS = 50_000  # Pillow's own error still raises
                with pytest.raises(im.ImageTooLargeError, match=r"big\.png: image too large"):
                    im.decode(p, max_pixels=None)
                Image.MAX_IMAGE_PIXELS = 100_000
            assert warnings.filters == before  # restored on the way out
            with pytest.raises(Image.DecompressionBombWarning):  # outside: not ignored
                warnings.warn("bomb", Image.DecompressionBombWarning, stacklevel=1)
    finally:
        Image.MAX_IMAGE_PIXELS = old


# ----------------------------------------------------------------------------- resize, fit


def test_resize_is_pillow_antialiased_bilinear_with_fit_policies():
    a = rng(5).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    pil = Image.fromarray(a)
    squash = im.resize(a, (10, 10), "squash")
    ref = np.asarray(pil.resize((10, 10), Image.Resampling.BILINEAR, reducing_gap=None))
    np.testing.assert_array_equal(squash, ref)
    crop = im.resize(a, (10, 10), "crop")  # the centre 30x30 square
    ref = np.asarray(Image.fromarray(a[:, 15:45]).resize((10, 10), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(crop, ref)
    pad = im.resize(a, (10, 10), "pad")  # whole image 5x10, rows 2..6, black above and below
    ref = np.asarray(pil.resize((10, 5), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pad[2:7], ref)
    assert pad[:2].max() == 0 and pad[7:].max() == 0
    # batches use the same filter; grey repeated to RGB commutes with it exactly
    g = rng(6).integers(0, 256, (3, 17, 23), dtype=np.uint8)
    out = im.resize_batch(g, (8, 11))
    for x, o in zip(g, out, strict=True):
        np.testing.assert_array_equal(o, np.asarray(Image.fromarray(x).resize((11, 8), 2)))
    np.testing.assert_array_equal(im.resize_batch(im.to_rgb(g), (8, 11)), im.to_rgb(out))
    from objrec.data.transforms import resize_batch

    np.testing.assert_array_equal(resize_batch(g, (8, 11)), out)
    with pytest.raises(DatasetError, match="fit='stretch'"):
        im.resize(a, (5, 5), "stretch")


# ----------------------------------------------------------------------------- working size, spec


def test_working_size_rule():
    assert im.WORKING_SIZE_CAP == 64
    assert im.working_size([(320, 243)] * 164) == (64, 49)
    assert im.working_size([(320, 243)] * 164, cap=128) == (128, 97)
    assert im.working_size([(28, 28)] * 10) == (28, 28)  # no upscaling, no change
    assert im.working_size([(112, 92)] * 3, cap=128) == (112, 92)
    assert im.working_size([(112, 92)] * 3) == (64, 53)
    assert im.working_size([(10, 20), (30, 40), (1000, 60)]) == (30, 40)  # medians per axis
    assert im.working_size([(3000, 4000)], cap=64) == (48, 64)
    note = im.describe_working_size([(320, 243)] * 164, (128, 97), cap=128)
    assert note == (
        "working size 128x97 (median of 164 images 320x243, longest side at most 128; "
        "--size to override)"
    )
    with pytest.raises(DatasetError):
        im.working_size([])


def test_image_spec_round_trip_and_validation():
    s = ImageSpec(size=(96, 64), color="rgb", fit="crop")
    d = s.to_dict()
    assert d == {
        "size": [96, 64],
        "color": "rgb",
        "fit": "crop",
        "background": "black",
        "filter": "pillow-bilinear-antialiased",
    }
    assert ImageSpec.from_dict(json.loads(json.dumps(d))) == s and s.shape == (96, 64, 3)
    for bad, msg in (
        ({**d, "size": [96]}, "size must be"),
        ({**d, "color": "cmyk"}, "color must be"),
        ({**d, "fit": "stretch"}, "fit must be"),
        ({**d, "background": "white"}, "black only"),
        ({**d, "filter": "lanczos"}, "resize filter"),
        ({**d, "extra": 1}, "unknown field"),
        ([1, 2], "JSON object"),
    ):
        with pytest.raises(ModelFileError, match=msg):
            ImageSpec.from_dict(bad)
    assert im.spec_for_model({}, (8, 8)) == ImageSpec((8, 8), "grey")
    with pytest.raises(ModelFileError, match="does not match"):
        im.spec_for_model({"image": d}, (96, 64))


# ----------------------------------------------------------------------------- every path


def _awkward_folder(root, big: bool = True):
    """Two classes of awkward files. 'light' images are light where opaque; 'dark' ones
    are dark, or light but mostly transparent (dark on black), or rotated by EXIF."""
    r = rng(7)
    light, dark = root / "light", root / "dark"
    light.mkdir(parents=True)
    dark.mkdir(parents=True)

    def noisy(h, w, base, c=None):
        shape = (h, w) if c is None else (h, w, c)
        return np.clip(base + r.integers(-20, 21, shape), 0, 255).astype(np.uint8)

    # light
    Image.fromarray(noisy(40, 30, 220, 3)).save(light / "colour.png")
    Image.fromarray(noisy(24, 64, 210)).save(light / "grey-wide.png")
    if big:
        ramp = np.linspace(190, 240, 4000).astype(np.uint8)  # smooth: quick to encode
        photo = np.broadcast_to(ramp[None, :, None], (3000, 4000, 3))
        Image.fromarray(np.ascontiguousarray(photo)).save(light / "photo.jpg", quality=70)
    else:
        Image.fromarray(noisy(30, 40, 200, 3)).save(light / "photo.jpg", quality=70)
    rgba = np.dstack([noisy(32, 32, 230, 3), np.full((32, 32), 255, np.uint8)])
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba, "RGBA").save(light / "rgba-opaque.png")
    Image.fromarray(r.integers(50000, 60000, (36, 28)).astype(np.uint16)).save(light / "grey16.png")
    f = noisy(20, 20, 200).astype(np.float32) / 255.0
    Image.fromarray(f, "F").save(light / "float.tif")
    Image.new("CMYK", (30, 30), (10, 10, 10, 0)).save(light / "cmyk.jpg", quality=95)
    # dark
    Image.fromarray(noisy(40, 30, 30, 3)).save(dark / "colour.png")
    clear = np.dstack([noisy(32, 32, 235, 3), np.full((32, 32), 25, np.uint8)])
    Image.fromarray(clear, "RGBA").save(dark / "rgba-transparent.png")  # light pixels, alpha 25
    la = np.dstack([noisy(30, 30, 240), np.full((30, 30), 20, np.uint8)])
    Image.fromarray(la, "LA").save(dark / "la-transparent.png")
    p = Image.fromarray((r.integers(0, 2, (20, 20)) * 1).astype(np.uint8), "P")
    p.putpalette([240, 240, 240, 40, 40, 40] + [0] * 762)
    p.save(dark / "palette.png", transparency=0)  # the light colour is transparent
    # dark at the top half, light below; EXIF turns it so the dark part is on the left
    half = np.vstack([noisy(16, 48, 30, 3), noisy(16, 48, 220, 3)])
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(half).save(dark / "exif-rotated.jpg", exif=exif, quality=95)
    Image.fromarray(noisy(50, 20, 25)).save(dark / "grey-tall.png")
    return root


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return _awkward_folder(tmp_path_factory.mktemp("images") / "awkward")


@pytest.fixture(scope="module")
def awkward_small(tmp_path_factory):
    """The same kinds of files, the 4000x3000 photo replaced by a 40x30 one (quicker)."""
    return _awkward_folder(tmp_path_factory.mktemp("images") / "awkward", big=False)


def _files_and_arrays(ds_stream, ds_mem):
    out = {}
    for name in ("train", "val", "test"):
        files = ds_stream.splits[name].X
        mem = ds_mem.splits[name].X
        np.testing.assert_array_equal(ds_stream.splits[name].y, ds_mem.splits[name].y)
        for path, x_lazy, x_mem in zip(files.paths, np.asarray(files), mem, strict=True):
            np.testing.assert_array_equal(x_lazy, x_mem, err_msg=path)
            out[path] = x_mem
    return out


@pytest.mark.parametrize("fit", ["squash", "crop", "pad"])
def test_every_path_gives_the_same_array(awkward, fit):
    kw = {"seed": 0, "val_size": 0.2, "test_size": 0.2, "progress": False, "fit": fit}
    mem = load_dataset(awkward, **kw)
    lazy = load_dataset(awkward, stream=True, **kw)
    assert mem.image == lazy.image and mem.image.fit == fit and mem.image.color == "rgb"
    # median height 32 and width 30 of the 13 (upright) sizes, under the cap
    assert mem.image.size == (32, 30)
    assert mem.image_note.startswith("working size 32x30 (median of 13 images 32x30")
    arrays = _files_and_arrays(lazy, mem)
    assert len(arrays) == 13
    from objrec.serving.preprocess import decode_image, to_model_input

    spec = mem.image
    for path, x in arrays.items():
        data = open(path, "rb").read()
        for got in (
            to_model_input([decode_image(path)], spec.shape, spec)[0],  # objrec predict
            to_model_input([decode_image(data, name="x")], spec.shape, spec)[0],  # server
            im.load_image(path, spec=spec),
        ):
            np.testing.assert_array_equal(got, x, err_msg=path)


def test_model_predicts_its_training_files_as_evaluate_scores_them(awkward_small, tmp_path, capsys):
    awkward = awkward_small
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import objrec
    from objrec.cli import main
    from objrec.serving.app import create_app
    from objrec.serving.export import input_images, onnx_session, run_onnx, to_onnx_bytes
    from objrec.serving.predictor import Predictor

    run = tmp_path / "run"
    assert (
        main(["train", str(awkward), "--method", "pixels-knn", "--out", str(run), "--quiet"]) == 0
    )
    err = capsys.readouterr().err
    assert "working size 32x30 (median of 13 images" in err
    meta = json.loads((run / "model" / "objrec.json").read_text())
    assert meta["image"]["size"] == [32, 30] and meta["image"]["fit"] == "squash"

    # what evaluate scores: each split of the folder, decoded as the model records
    assert main(["evaluate", str(run), "--split", "train", "--quiet"]) == 0
    capsys.readouterr()
    assert json.loads((run / "evaluation-train.json").read_text())["train_accuracy"] == 1.0
    lazy = load_dataset(awkward, stream=True, progress=False)
    est = objrec.load(run)
    truth = {
        p: lazy.classes[c]
        for s in lazy.splits.values()
        for p, c in zip(s.X.paths, s.y, strict=True)
    }
    train_paths = set(lazy.train.X.paths)

    # objrec predict on every file of the folder
    assert main(["predict", str(run), str(awkward), "--format", "json", "--top-k", "1"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 13
    predicted = {r["path"]: r["top_k"][0]["label"] for r in lines}
    for path in train_paths:  # a training image is its own nearest neighbour
        assert predicted[path] == truth[path], path
    # and on the other splits predict agrees with the estimator on the dataset arrays
    mem = load_dataset(awkward, progress=False)
    for s_lazy, s_mem in zip(lazy.splits.values(), mem.splits.values(), strict=True):
        pred = est.predict(s_mem.X)
        for path, k in zip(s_lazy.X.paths, pred, strict=True):
            assert predicted[path] == lazy.classes[k], path

    # the server's decode: the arrays reaching the model are the training arrays
    predictor = Predictor(est, backend="native")
    seen = []
    real = predictor.scores
    predictor.scores = lambda X: seen.append(X.copy()) or real(X)
    client = TestClient(create_app(predictor, max_images=32))
    order = sorted(truth)
    files = [("file", (p.rsplit("/", 1)[-1], open(p, "rb").read())) for p in order]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 200, r.text
    served = {p: x for p, x in zip(order, np.concatenate(seen), strict=True)}
    arrays = _files_and_arrays(lazy, mem)
    for p in order:
        np.testing.assert_array_equal(served[p], arrays[p], err_msg=p)
    labels = [x["top_k"][0]["label"] for x in r.json()["predictions"]]
    assert labels == [predicted[p] for p in order]

    # the exported ONNX model's input array comes from the same decode
    logreg = objrec.make_method("pixels-logreg").fit(mem.train.X, mem.train.y)
    logreg.objrec_metadata_ = {"image": mem.image.to_dict()}
    X = input_images(logreg, order)
    np.testing.assert_array_equal(X, np.stack([arrays[p] for p in order]))
    session = onnx_session(to_onnx_bytes(logreg))
    np.testing.assert_allclose(run_onnx(session, X), logreg.predict_proba(X), atol=1e-4)


def test_size_overrides_the_working_size_and_cap_applies(awkward_small):
    ds = load_dataset(awkward_small, size=16, fit="pad", color="grey", progress=False)
    assert ds.image == ImageSpec((16, 16), "grey", "pad") and ds.image_note == ""
    assert ds.train.X.shape[1:] == (16, 16)
    from objrec.data.folders import load_folder

    ds = load_folder(awkward_small, cap=20, progress=False)
    assert max(ds.image.size) == 20 and "longest side at most 20" in ds.image_note
    # named sets keep their stored size; the spec records it
    digits = load_dataset("digits", progress=False)
    assert digits.image_spec() == ImageSpec((8, 8), "grey") and digits.image_note == ""


def test_folder_and_lazy_modules_do_not_import_each_other():
    import subprocess
    import sys

    code = (
        "import sys, objrec.data.lazy; assert 'objrec.data.folders' not in sys.modules; "
        "import objrec.data.folders as f, inspect; assert 'objrec.data.lazy' not in "
        "inspect.getsource(f).split('def load_folder')[0]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
