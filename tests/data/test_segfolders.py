"""Users' segmentation data: image/mask folders and COCO JSON against hand-built masks;
label images decoded to their stored integers; a clear error for each bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from objrec.data.images import ImageDecodeError, decode_labels
from objrec.data.segfolders import (
    instances_from_semantic,
    load_coco,
    load_seg_folder,
    load_user_segmentation,
    segmentation_size,
)
from objrec.errors import DatasetError

VOC_COLOURS = (
    [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)] + [(0, 0, 0)] * 251 + [(224, 224, 192)]
)


def _palette_png(path, idx: np.ndarray) -> None:
    im = Image.fromarray(idx.astype(np.uint8))
    im.putpalette([c for rgb in VOC_COLOURS for c in rgb])
    assert im.mode == "P"
    im.save(path)


def _sample(rng, h=20, w=24, label=1, k=0):
    """An RGB image, its mask (a rectangle of ``label`` with a 255 border, a second
    rectangle of label 2) and its instance map (ids 1 and 2)."""
    img = rng.integers(0, 256, (h, w, 3), np.uint8)
    sem = np.zeros((h, w), np.uint8)
    inst = np.zeros((h, w), np.uint16)
    sem[2 : 9 + k, 3:10] = label
    inst[2 : 9 + k, 3:10] = 1
    sem[1, 2:11] = 255  # VOC-style border
    sem[12:18, 14:22] = 2
    inst[12:18, 14:22] = 300  # a 16-bit id
    return img, sem, inst


def _write_folder(root, samples, names, instances=True):
    for d in ("images", "masks") + (("instances",) if instances else ()):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name, (img, sem, inst) in zip(names, samples, strict=True):
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        _palette_png(root / "masks" / f"{name}.png", sem)
        if instances:
            Image.fromarray(inst).save(root / "instances" / f"{name}.png")


def test_decode_labels_keeps_indices_and_ids(tmp_path):
    idx = np.array([[0, 1, 2], [3, 255, 1]], np.uint8)
    _palette_png(tmp_path / "p.png", idx)
    assert np.array_equal(decode_labels(tmp_path / "p.png"), idx)  # indices, not colours
    ids = np.array([[0, 300], [65535, 7]], np.uint16)
    Image.fromarray(ids).save(tmp_path / "i.png")
    got = decode_labels(tmp_path / "i.png")
    assert got.dtype == np.uint16 and np.array_equal(got, ids)
    grey_rgb = np.repeat(idx[..., None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "g.png")
    assert np.array_equal(decode_labels(tmp_path / "g.png"), idx)
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 0] = (128, 0, 0)
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(ImageDecodeError, match="not a label map"):
        decode_labels(tmp_path / "c.png")


def test_pre_split_folder_matches_the_hand_built_masks(tmp_path):
    rng = np.random.default_rng(0)
    tr = [_sample(rng, k=i) for i in range(3)]
    te = [_sample(rng, label=3)]
    _write_folder(tmp_path / "train", tr, ["a2", "a10", "b"])  # natural order a2, a10, b
    _write_folder(tmp_path / "test", te, ["c"])
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\nbird\n")
    s = load_seg_folder(tmp_path)
    assert s.classes == ["cat", "dog", "bird"] and s.n_labels == 4
    assert len(s.train) == 3 and len(s.val) == 0 and len(s.test) == 1
    for split, want in ((s.train, tr), (s.test, te)):
        for i, (img, sem, inst) in enumerate(want):
            assert np.array_equal(split.images[i], img)
            assert np.array_equal(split.semantic[i], sem)
            assert split.instances.dtype == np.uint16
            assert np.array_equal(split.instances[i], np.where(sem == 255, 0, inst))


def test_flat_folder_split_and_instances_from_components(tmp_path):
    rng = np.random.default_rng(1)
    samples = [_sample(rng, k=i) for i in range(5)]
    _write_folder(tmp_path, samples, [f"im{i}" for i in range(5)], instances=False)
    s = load_seg_folder(tmp_path, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (4, 0, 1)
    every = np.concatenate([s.train.semantic, s.test.semantic])
    assert sorted(m.tobytes() for m in every) == sorted(x[1].tobytes() for x in samples)
    again = load_seg_folder(tmp_path, seed=3)
    assert np.array_equal(again.test.images, s.test.images)
    # no instances/: each connected region of a class is one object
    inst = s.test.instances[0]
    assert len(np.unique(inst[inst > 0])) == 2
    assert s.classes == ["1", "2"]  # labels 0..2 without classes.txt
    sem = np.zeros((6, 9), np.uint8)
    sem[1:3, 1:3] = 1
    sem[1:3, 5:8] = 1  # a second, separate object of class 1
    sem[4, 0] = 255
    assert sorted(np.unique(instances_from_semantic(sem)).tolist()) == [0, 1, 2]


def test_sizes_differ_brings_to_a_working_size(tmp_path):
    rng = np.random.default_rng(2)
    samples = [_sample(rng, 40, 60), _sample(rng, 44, 64), _sample(rng, 40, 60)]
    _write_folder(tmp_path, samples, ["a", "b", "c"])
    assert segmentation_size([(40, 60), (44, 64), (40, 60)]) == (48, 64)
    s = load_seg_folder(tmp_path)
    assert s.train.images.shape[1:] == (48, 64, 3) and s.test.semantic.shape[1:] == (48, 64)
    assert set(np.unique(s.train.semantic)) <= {0, 1, 2, 255}  # nearest: no blended labels
    fixed = load_seg_folder(tmp_path, size="32x32")
    assert fixed.train.images.shape[1:3] == (32, 32)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("mask_size", r"a\.png: the mask is 20x25 \(height x width\).* 20x24"),
        ("unknown_class", "unknown class index 9"),
        ("mask_only", "mask\\(s\\) without an image.*zz"),
        ("image_only", "image\\(s\\) without a mask.*zz"),
        ("corrupt", "b.png: .*(corrupt|not a readable)"),
        ("colour_mask", "not a label map"),
        ("empty", "empty"),
        ("no_masks_folder", "no masks/ folder"),
    ],
)
def test_folder_errors(tmp_path, damage, message):
    rng = np.random.default_rng(3)
    _write_folder(tmp_path, [_sample(rng), _sample(rng)], ["a", "b"], instances=False)
    (tmp_path / "classes.txt").write_text("bg\none\ntwo\n")
    if damage == "mask_size":
        _palette_png(tmp_path / "masks" / "a.png", np.zeros((20, 25), np.uint8))
    elif damage == "unknown_class":
        _palette_png(tmp_path / "masks" / "b.png", np.full((20, 24), 9, np.uint8))
    elif damage == "mask_only":
        _palette_png(tmp_path / "masks" / "zz.png", np.zeros((20, 24), np.uint8))
    elif damage == "image_only":
        Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "images" / "zz.jpg")
    elif damage == "corrupt":
        data = (tmp_path / "masks" / "b.png").read_bytes()
        (tmp_path / "masks" / "b.png").write_bytes(data[: len(data) // 2])
    elif damage == "colour_mask":
        Image.fromarray(np.full((20, 24, 3), (128, 0, 0), np.uint8)).save(
            tmp_path / "masks" / "a.png"
        )
    elif damage == "empty":
        for f in [*(tmp_path / "images").iterdir(), *(tmp_path / "masks").iterdir()]:
            f.unlink()
    elif damage == "no_masks_folder":
        for f in (tmp_path / "masks").iterdir():
            f.unlink()
        (tmp_path / "masks").rmdir()
    with pytest.raises(DatasetError, match=message):
        load_seg_folder(tmp_path)


def test_empty_or_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="empty, or not a segmentation folder"):
        load_seg_folder(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        load_seg_folder(tmp_path / "nope")


def test_model_labels_bound_the_masks(tmp_path):
    rng = np.random.default_rng(4)
    _write_folder(tmp_path, [_sample(rng), _sample(rng)], ["a", "b"])
    assert load_seg_folder(tmp_path, n_labels=5).n_labels == 5
    with pytest.raises(DatasetError, match="unknown class index 2"):
        load_seg_folder(tmp_path, n_labels=2)


# ----------------------------------------------------------------------------- COCO


def _coco(tmp_path, rng):
    """Two images, categories 3 ('cat') and 7 ('dog'); returns the JSON path and the
    oracle (semantic, instances) per image."""
    from pycocotools import mask as mask_utils

    (tmp_path / "images").mkdir()
    h, w = 20, 30
    for name in ("x.png", "y.png"):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(tmp_path / "images" / name)
    big = np.zeros((h, w), np.uint8)
    big[2:14, 2:20] = 1
    small = np.zeros((h, w), np.uint8)
    small[5:9, 5:9] = 1  # lies on the big one: painted after it
    crowd = np.zeros((h, w), np.uint8)
    crowd[15:19, 22:29] = 1

    def rle(m):  # compressed RLE, its counts a string as stored in JSON
        r = mask_utils.encode(np.asfortranarray(m))
        return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode()}

    flat = big.ravel(order="F")  # uncompressed RLE: run lengths, column-major, from 0s
    runs, cur, n = [], 0, 0
    for v in flat:
        if v == cur:
            n += 1
        else:
            runs.append(n)
            cur, n = v, 1
    runs.append(n)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0,
         "segmentation": {"size": [h, w], "counts": runs}},
        {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": rle(small)},
        {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 1,
         "segmentation": rle(crowd)},
        {"id": 4, "image_id": 2, "category_id": 3, "iscrowd": 0,
         "segmentation": [[10.0, 4.0, 22.0, 4.0, 22.0, 12.0, 10.0, 12.0]]},
    ]  # fmt: skip
    doc = {
        "images": [{"id": 1, "file_name": "x.png", "height": h, "width": w},
                   {"id": 2, "file_name": "y.png", "height": h, "width": w}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": anns,
    }  # fmt: skip
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    sem1 = np.zeros((h, w), np.uint8)
    inst1 = np.zeros((h, w), np.uint16)
    sem1[crowd > 0] = 255
    sem1[big > 0], inst1[big > 0] = 2, 1  # dog = label 2 (categories sorted by id: 3, 7)
    sem1[small > 0], inst1[small > 0] = 1, 2
    return path, doc, (sem1, inst1)


def test_coco_rle_polygons_and_crowd(tmp_path):
    pytest.importorskip("pycocotools")
    from objrec.data.segfolders import read_coco

    path, _, (sem1, inst1) = _coco(tmp_path, np.random.default_rng(5))
    samples, names = read_coco(path)
    assert names == ["cat", "dog"]
    _, img, sem, inst = samples[0]
    assert img.shape == (20, 30, 3)
    assert np.array_equal(sem, sem1) and np.array_equal(inst, inst1)
    _, _, sem2, inst2 = samples[1]  # the polygon: a 12 x 8 rectangle from (10, 4)
    rect = np.zeros((20, 30), bool)
    rect[4:12, 10:22] = True
    got = sem2 == 1
    assert (got & rect).sum() / (got | rect).sum() > 0.8 and got[6:10, 12:20].all()
    assert not got[15:, :].any() and np.array_equal(inst2 > 0, got)
    s = load_user_segmentation(path, seed=0)
    assert s.classes == ["cat", "dog"] and len(s.train) + len(s.val) + len(s.test) == 2


@pytest.mark.parametrize(
    "damage, message",
    [
        ("category", "unknown category_id 99"),
        ("size", r"image 1 is 21x30 \(height x width\) in the JSON file"),
        ("file", "has no file"),
        ("image_id", "refers to image_id 42"),
        ("rle_size", "RLE size"),
    ],
)
def test_coco_errors(tmp_path, damage, message):
    pytest.importorskip("pycocotools")
    path, doc, _ = _coco(tmp_path, np.random.default_rng(6))
    if damage == "category":
        doc["annotations"][1]["category_id"] = 99
    elif damage == "size":
        doc["images"][0]["height"] = 21
    elif damage == "file":
        doc["images"][1]["file_name"] = "gone.png"
    elif damage == "image_id":
        doc["annotations"][0]["image_id"] = 42
    elif damage == "rle_size":
        doc["annotations"][0]["segmentation"]["size"] = [10, 10]
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=message):
        load_coco(path)
