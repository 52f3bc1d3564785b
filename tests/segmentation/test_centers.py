"""Instances from centres and offsets (Panoptic-DeepLab): the training targets against a
direct computation, the grouping on hand-built cases, and the U-Net's centre head (a
short fit, save/load, old files, ONNX)."""

import json
import math

import numpy as np
import pytest

import objrec
from crafted_files import square_and_ring
from objrec.data.scenes import render_scenes
from objrec.errors import InputError, ModelFileError
from objrec.evaluation.segmentation import panoptic_quality
from objrec.segmentation import load_segmenter, make_segmenter
from objrec.segmentation.centers import (
    center_targets,
    find_centers,
    panoptic_centers_batch,
    panoptic_from_centers,
)
from objrec.segmentation.postprocess import panoptic_from_proba


def _direct_targets(inst: np.ndarray, sigma: float):
    """Pixel by pixel: the Gaussians' maximum and the offset to the own centre of mass."""
    H, W = inst.shape
    centres = {}
    for k in sorted(set(inst.ravel().tolist()) - {0}):
        ys, xs = np.nonzero(inst == k)
        centres[k] = (ys.mean(), xs.mean())
    heat = np.zeros((H, W))
    off = np.zeros((2, H, W))
    for y in range(H):
        for x in range(W):
            for cy, cx in centres.values():
                g = math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
                heat[y, x] = max(heat[y, x], g)
            k = int(inst[y, x])
            if k:
                off[:, y, x] = (centres[k][0] - y, centres[k][1] - x)
    return heat, off


def test_center_targets_match_a_direct_computation():
    inst = np.zeros((10, 13), np.uint16)
    inst[1:4, 1:8] = 1  # an L: its centre of mass is not a pixel centre
    inst[4:9, 1:3] = 1
    inst[5:9, 6:12] = 3  # id 2 absent: no centre for it
    inst[6, 11] = 5  # a one-pixel object: its centre is the pixel
    heat, off = center_targets(np.stack([inst, np.zeros_like(inst)]), sigma=2.5)
    assert heat.shape == (2, 10, 13) and off.shape == (2, 2, 10, 13)
    assert heat.dtype == off.dtype == np.float32
    want_heat, want_off = _direct_targets(inst, 2.5)
    np.testing.assert_allclose(heat[0], want_heat, atol=1e-6)
    np.testing.assert_allclose(off[0], want_off, atol=1e-5)
    assert not heat[1].any() and not off[1].any()  # no objects, no targets
    assert heat[0, 6, 11] == pytest.approx(1.0)
    h2, o2 = center_targets(inst, sigma=2.5)  # one (H, W) map is one image
    np.testing.assert_array_equal(h2[0], heat[0])
    np.testing.assert_array_equal(o2[0], off[0])
    with pytest.raises(InputError, match="integer"):
        center_targets(inst.astype(float))
    with pytest.raises(InputError, match="negative"):
        center_targets(-np.ones((1, 4, 4), np.int32))
    with pytest.raises(InputError, match="sigma"):
        center_targets(inst, sigma=0)


def _proba_from(sem, n_labels, p=0.9):
    P = np.full((n_labels, *sem.shape), (1 - p) / (n_labels - 1), np.float32)
    for c in range(n_labels):
        P[c][sem == c] = p
    return P


def _two_touching_squares():
    """Two 6x6 squares of label 1 side by side (one component), two stray label-2 pixels
    in the left one; centres (5, 4) and (5, 10); offsets to the own square's centre."""
    H, W = 12, 16
    left = np.zeros((H, W), bool)
    right = np.zeros((H, W), bool)
    left[2:8, 1:7] = True
    right[2:8, 7:13] = True
    sem = np.zeros((H, W), np.uint8)
    sem[left | right] = 1
    sem[3, 2] = sem[6, 5] = 2
    yy, xx = np.mgrid[:H, :W]
    heat = np.maximum(np.exp(-((yy - 5) ** 2 + (xx - 4) ** 2) / 8.0),
                      np.exp(-((yy - 5) ** 2 + (xx - 10) ** 2) / 8.0)).astype(np.float32)  # fmt: skip
    off = np.zeros((2, H, W), np.float32)
    for mask, (cy, cx) in ((left, (5, 4)), (right, (5, 10))):
        off[0][mask] = (cy - yy)[mask]
        off[1][mask] = (cx - xx)[mask]
    return _proba_from(sem, 3), heat, off, left, right


def test_two_touching_squares_become_two_objects():
    proba, heat, off, left, right = _two_touching_squares()
    sem, inst, scores = panoptic_from_centers(proba, heat, off, min_area=4)
    assert sorted(np.unique(inst).tolist()) == [0, 1, 2]
    a, b = inst[5, 3], inst[5, 11]
    assert a != b and (inst == a).sum() == 36 and (inst == b).sum() == 36
    assert ((inst == a) == left).all() and ((inst == b) == right).all()
    assert (sem[left | right] == 1).all() and (sem[~(left | right)] == 0).all()  # vote: 1
    assert set(scores) == {1, 2} and all(0 < v <= 1 for v in scores.values())
    # the same pixels through the watershed: one component, too thin to split, one object
    _, ws_inst, _ = panoptic_from_proba(proba, min_area=4)
    assert len(np.unique(ws_inst)) - 1 == 1


def test_grouping_follows_the_offsets_and_falls_back_to_components():
    proba, heat, off, left, right = _two_touching_squares()
    yy, xx = np.mgrid[: heat.shape[0], : heat.shape[1]]
    to_left = np.stack([5 - yy, 4 - xx]).astype(np.float32)  # every pixel points to (5, 4)
    _, inst, _ = panoptic_from_centers(proba, heat, to_left, min_area=4)
    assert sorted(np.unique(inst).tolist()) == [0, 1] and ((inst > 0) == (left | right)).all()
    # no centre above the threshold: the connected foreground is one object
    _, inst, _ = panoptic_from_centers(proba, heat * 0.05, off, min_area=4)
    assert sorted(np.unique(inst).tolist()) == [0, 1]
    # objects under min_area become background
    sem, inst, _ = panoptic_from_centers(proba, heat, off, min_area=40)
    assert not inst.any() and not sem.any()
    with pytest.raises(InputError, match="offsets"):
        panoptic_from_centers(proba, heat, off[:1])
    with pytest.raises(InputError, match="share N"):
        panoptic_centers_batch(proba[None], heat[None], np.stack([off, off]))


def test_find_centers_suppresses_neighbours_and_plateaus():
    heat = np.zeros((20, 20), np.float32)
    heat[5, 5], heat[6, 7], heat[15, 15] = 0.9, 0.5, 0.3  # (6, 7) is in (5, 5)'s window
    heat[10:12, 1:3] = 0.6  # a 2x2 plateau: one centre
    heat[18, 1] = 0.05  # under the threshold
    got = find_centers(heat, threshold=0.1, nms_kernel=7)
    assert got.tolist() == [[5, 5], [10, 1], [15, 15]]
    assert find_centers(heat, nms_kernel=1).tolist()[:2] == [[5, 5], [10, 1]]
    assert len(find_centers(heat, top_k=2)) == 2
    with pytest.raises(InputError, match="nms_kernel"):
        find_centers(heat, nms_kernel=0)


@pytest.fixture(scope="module")
def square_scenes():
    """32x32 scenes of 8x8 objects: label 1 a full square, 2 a ring."""
    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 24, seed=0, size=32, max_objects=4)
    te = render_scenes(X, np.array([0, 1]), 6, seed=1, size=32, max_objects=4)
    return tr, te


def test_true_targets_group_back_into_the_true_objects(square_scenes):
    """The grouping inverts the targets: true probabilities, heatmap and offsets give
    the true objects back (PQ 1 where no two centres share an NMS window)."""
    tr, _ = square_scenes
    heat, off = center_targets(tr.instances, sigma=2.0)
    proba = np.eye(3, dtype=np.float32)[tr.semantic].transpose(0, 3, 1, 2)
    sem, inst, _ = panoptic_centers_batch(proba, heat, off, nms_kernel=3, min_area=1)
    pq = panoptic_quality(tr.semantic, tr.instances, sem, inst, 3)
    assert pq["pq_things"] > 0.97


def test_unet_center_head_fits_saves_loads(square_scenes, tmp_path):
    pytest.importorskip("torch")
    tr, te = square_scenes
    seg = make_segmenter("unet", width=4, depth=2, epochs=4, batch_size=8, lr=1e-2,
                         grouping="centers", center_sigma=2.0)  # fmt: skip
    seg.fit(tr.images, tr.semantic, instances=tr.instances)
    h = seg.history_
    assert {"train_semantic_loss", "train_center_loss", "train_offset_loss"} <= set(h[0])
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert h[-1]["train_offset_loss"] < h[0]["train_offset_loss"]
    parts = sum(h[0][f"train_{k}_loss"] for k in ("semantic", "center", "offset"))
    assert h[0]["train_loss"] == pytest.approx(parts, rel=1e-6)  # the loss is their sum
    P, heat, off = seg.predict_heads(te.images)
    assert P.shape == (6, 3, 32, 32) and heat.shape == (6, 32, 32) and off.shape == (6, 2, 32, 32)
    assert np.allclose(P, seg.predict_proba(te.images), atol=1e-6)
    for grouping in ("centers", "watershed"):
        sem, inst, scores = seg.predict_panoptic(te.images, grouping=grouping)
        assert sem.shape == inst.shape == (6, 32, 32) and inst.dtype == np.uint16
        assert ((sem > 0) == (inst > 0)).all() and len(scores) == 6
    with pytest.raises(InputError, match="grouping"):
        seg.predict_panoptic(te.images, grouping="boundaries")
    folder = objrec.save(seg, tmp_path / "m", class_names=["bg", "square", "ring"])
    raw = json.loads((folder / "objrec.json").read_text())
    assert raw["params"]["grouping"] == "centers"
    again = load_segmenter(folder)
    assert again.grouping == "centers"
    for a, b in zip(again.predict_heads(te.images), (P, heat, off), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # a file whose params say "centers" over weights without the head is refused
    plain = make_segmenter("unet", width=4, depth=2, epochs=1, batch_size=8,
                           grouping="watershed").fit(tr.images, tr.semantic)  # fmt: skip
    assert not any(k.startswith("centers.") for k in plain.net_.state_dict())
    with pytest.raises(InputError, match="no centre"):
        plain.predict_panoptic(te.images, grouping="centers")
    old = objrec.save(plain, tmp_path / "old")
    meta = json.loads((old / "objrec.json").read_text())
    meta["params"]["grouping"] = "centers"
    (old / "objrec.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="grouping"):
        objrec.load(old)
    # a file saved before the centre head (no params.grouping) loads as watershed
    del meta["params"]["grouping"]
    for k in ("center_sigma", "center_weight", "offset_weight"):
        del meta["params"][k]
    (old / "objrec.json").write_text(json.dumps(meta))
    loaded = objrec.load(old)
    assert loaded.grouping == "watershed"
    np.testing.assert_allclose(loaded.predict_proba(te.images), plain.predict_proba(te.images),
                               atol=1e-6)  # fmt: skip
    with pytest.raises(InputError, match="do not match"):
        make_segmenter("unet", width=4, depth=2, epochs=1).fit(
            tr.images, tr.semantic, instances=tr.instances[:, :16]
        )


def test_unet_center_head_onnx_parity(square_scenes, tmp_path):
    pytest.importorskip("onnxruntime")
    from objrec.segmentation.export import onnx_parity, unet_to_onnx

    tr, te = square_scenes
    seg = make_segmenter("unet", width=4, depth=2, epochs=1, batch_size=12, grouping="centers")
    seg.fit(tr.images, tr.semantic)  # no instance maps: connected regions stand in
    path = unet_to_onnx(seg, tmp_path / "c.onnx", side=32)
    r = onnx_parity(seg, path, te.images)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] > 0.999
    assert r["center_max_abs_diff"] < 1e-4 and r["offset_max_abs_diff"] < 1e-3
    import onnx

    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["proba", "center", "offset"]
    assert {p.key: p.value for p in model.metadata_props}["grouping"] == "centers"
