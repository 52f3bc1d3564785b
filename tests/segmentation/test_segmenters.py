"""Segmenters: the estimator contract, learning an easy scene set, save/load, and the
post-processing from probabilities to objects on hand-built cases."""

import numpy as np
import pytest

from crafted_files import square_and_ring
from objrec.data.scenes import render_scenes
from objrec.errors import InputError, ModelFileError, ObjrecError
from objrec.evaluation.segmentation import semantic_scores
from objrec.segmentation import load_segmenter, make_segmenter
from objrec.segmentation.postprocess import panoptic_batch, panoptic_from_proba


@pytest.fixture(scope="module")
def easy_scenes():
    """32x32 scenes of 8x8 objects: class 0 a full square, class 1 a ring."""
    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 40, seed=0, size=32, max_objects=3)
    te = render_scenes(X, np.array([0, 1]), 10, seed=1, size=32, max_objects=3)
    return tr, te


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _proba_from(sem, n_labels, p=0.9):
    P = np.full((n_labels, *sem.shape), (1 - p) / (n_labels - 1), np.float32)
    for c in range(n_labels):
        P[c][sem == c] = p
    return P


def test_postprocess_components_vote_and_small_pieces():
    sem = np.zeros((24, 24), np.uint8)
    sem[2:8, 2:8] = 1
    sem[4, 4] = 2  # one stray pixel of another label: voted away
    sem[14:20, 14:20] = 2
    sem[22, 0] = 1  # a single pixel: under min_area, background
    s, inst, scores = panoptic_from_proba(_proba_from(sem, 3), min_area=4)
    assert sorted(np.unique(inst).tolist()) == [0, 1, 2]
    assert (s[2:8, 2:8] == 1).all() and (s[14:20, 14:20] == 2).all() and s[22, 0] == 0
    assert ((s > 0) == (inst > 0)).all()
    assert set(scores) == {1, 2} and all(0 < v <= 1 for v in scores.values())


def test_postprocess_mix_threshold_splits_a_minority_label_and_votes_away_noise():
    # one 20x40 component; its last columns hold a second label
    def one_component(label2_cols):
        sem = np.zeros((30, 50), np.uint8)
        sem[5:25, 5:45] = 1
        sem[5:25, 45 - label2_cols : 45] = 2
        return sem

    # 8 of 40 columns: label 2 holds 23% of the component's object probability (p = 0.9),
    # above the default mix (0.15): two objects, each with its own label
    sem = one_component(8)
    s, inst, _ = panoptic_from_proba(_proba_from(sem, 3), split_radius=100)
    assert len(np.unique(inst)) - 1 == 2
    assert (s == sem).all()
    # with the earlier threshold (0.3) the same component is one object of the majority label
    s, inst, _ = panoptic_from_proba(_proba_from(sem, 3), split_radius=100, mix=0.3)
    assert len(np.unique(inst)) - 1 == 1 and set(np.unique(s).tolist()) == {0, 1}
    # 2 of 40 columns (10% of the mass): noise, voted to the majority's label
    sem = one_component(2)
    s, inst, _ = panoptic_from_proba(_proba_from(sem, 3), split_radius=100)
    assert len(np.unique(inst)) - 1 == 1
    assert (s[5:25, 5:45] == 1).all()


def test_postprocess_splits_touching_discs_and_mixed_labels():
    shape = (40, 60)
    sem = np.zeros(shape, np.uint8)
    sem[_disc(shape, 20, 18, 10) | _disc(shape, 20, 38, 10)] = 1  # two touching blobs
    _, inst, _ = panoptic_from_proba(_proba_from(sem, 3))
    assert len(np.unique(inst)) - 1 == 2
    assert inst[20, 12] != inst[20, 44] and inst[20, 12] > 0
    # the same shapes, half label 1, half label 2: split by label, two objects
    sem2 = np.zeros(shape, np.uint8)
    sem2[_disc(shape, 20, 18, 10)] = 1
    sem2[_disc(shape, 20, 38, 10) & ~_disc(shape, 20, 18, 10)] = 2
    s2, inst2, _ = panoptic_from_proba(_proba_from(sem2, 3), split_radius=100)
    assert s2[20, 12] == 1 and s2[20, 44] == 2 and inst2[20, 12] != inst2[20, 44]


def test_postprocess_bad_input():
    with pytest.raises(InputError):
        panoptic_from_proba(np.zeros((1, 4, 4)))
    with pytest.raises(InputError):
        panoptic_batch(np.zeros((2, 4, 4)))


def test_forest_learns_easy_scenes_and_round_trips(easy_scenes, tmp_path):
    tr, te = easy_scenes
    seg = make_segmenter("forest", n_estimators=10, pixels_per_image=200, scales=(1.0, 2.0))
    seg.fit(tr.images, tr.semantic)
    P = seg.predict_proba(te.images)
    assert P.shape == (10, 3, 32, 32) and np.allclose(P.sum(1), 1, atol=1e-5)
    sem, _, _ = seg.predict_panoptic(te.images)
    fg_true, fg_pred = te.semantic > 0, sem > 0
    fg_iou = (fg_true & fg_pred).sum() / (fg_true | fg_pred).sum()
    assert fg_iou > 0.4  # objects found (0.57 when written); an all-background guess scores 0
    seg.save(tmp_path / "f")
    again = load_segmenter(tmp_path / "f")
    assert (again.predict(te.images) == seg.predict(te.images)).all()


def test_unet_loss_falls_and_round_trips(easy_scenes, tmp_path):
    pytest.importorskip("torch")
    tr, te = easy_scenes
    seg = make_segmenter("unet", width=4, depth=2, epochs=6, batch_size=8, lr=1e-2)
    seg.fit(tr.images, tr.semantic)
    losses = [h["train_loss"] for h in seg.history_]
    assert losses[-1] < 0.9 * losses[0]  # Dice + cross-entropy 1.24 -> 1.01 when written
    pred = seg.predict(te.images)
    assert pred.shape == (10, 32, 32) and pred.dtype == np.uint8
    base = semantic_scores(te.semantic, np.zeros_like(te.semantic), 3)["pixel_accuracy"]
    assert semantic_scores(te.semantic, pred, 3)["pixel_accuracy"] >= base - 0.02
    seg.save(tmp_path / "u")
    again = load_segmenter(tmp_path / "u")
    assert np.allclose(again.predict_proba(te.images), seg.predict_proba(te.images), atol=1e-5)
    with pytest.raises(InputError, match="multiples"):
        seg.predict(np.zeros((1, 30, 30, 3), np.uint8))


def test_unet_precision(easy_scenes):
    """bf16 autocast trains the same network as float32 (first-epoch losses within a few
    per cent, both falling); prediction is float32 either way; a bad name is refused."""
    pytest.importorskip("torch")
    tr, _ = easy_scenes
    runs = {}
    for precision in ("fp32", "bf16"):
        seg = make_segmenter("unet", width=4, depth=2, epochs=3, batch_size=8, lr=1e-2,
                             precision=precision)  # fmt: skip
        runs[precision] = [h["train_loss"] for h in seg.fit(tr.images, tr.semantic).history_]
        assert seg.predict_proba(tr.images[:2]).dtype == np.float32
    assert abs(runs["bf16"][0] - runs["fp32"][0]) < 0.05 * runs["fp32"][0]
    assert all(r[-1] < r[0] for r in runs.values())
    with pytest.raises(InputError, match="precision"):
        make_segmenter("unet", precision="fp16").fit(tr.images, tr.semantic)


def test_contract_errors(tmp_path):
    with pytest.raises(ObjrecError, match="unknown segmentation method"):
        make_segmenter("deeplab")
    seg = make_segmenter("forest")
    with pytest.raises(InputError, match="not fitted"):
        seg.predict(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="do not match"):
        seg.fit(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 9), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        seg.fit(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ModelFileError):
        load_segmenter(tmp_path)


def test_unet_onnx_parity(easy_scenes, tmp_path):
    pytest.importorskip("onnxruntime")
    from objrec.segmentation.export import onnx_parity, unet_to_onnx

    tr, te = easy_scenes
    seg = make_segmenter("unet", width=4, depth=2, epochs=1, batch_size=20).fit(
        tr.images, tr.semantic
    )
    path = unet_to_onnx(seg, tmp_path / "unet.onnx", side=32)
    r = onnx_parity(seg, path, te.images)
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] > 0.999
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (props["task"], props["method"], props["input_dtype"]) == ("segment", "unet", "uint8")
    assert json.loads(props["classes"]) == [0, 1, 2] and json.loads(props["input_shape"]) == [
        32,
        32,
        3,
    ]
    assert json.loads(props["class_names"]) is None  # not saved, so no names recorded
    import objrec

    named = objrec.load(seg.save(tmp_path / "m", class_names=["bg", "square", "ring"]))
    props = {
        p.key: p.value
        for p in onnx.load(str(unet_to_onnx(named, tmp_path / "n.onnx", side=32))).metadata_props
    }
    assert json.loads(props["class_names"]) == ["bg", "square", "ring"]
    with pytest.raises(InputError, match="U-Net"):
        unet_to_onnx(make_segmenter("forest"), tmp_path / "f.onnx")
