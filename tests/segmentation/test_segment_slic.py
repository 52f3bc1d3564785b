"""The SLIC superpixel segmenter: features, learning easy scenes above the all-background
baseline, the probability contract, save/load; ignored pixels in training."""

import numpy as np
import pytest

from crafted_files import square_and_ring
from objrec.data.scenes import render_scenes
from objrec.errors import InputError
from objrec.evaluation.segmentation import semantic_scores
from objrec.segmentation import load_segmenter, make_segmenter
from objrec.segmentation.base import IGNORE
from objrec.segmentation.slic import N_FEATURES, superpixel_features, superpixel_labels


@pytest.fixture(scope="module")
def scenes():
    """40 training and 10 test scenes 48x48 of two 10x10 object classes (square, ring)."""
    X = square_and_ring(12)
    tr = render_scenes(X, np.array([0, 1]), 40, seed=0, size=48, max_objects=3)
    te = render_scenes(X, np.array([0, 1]), 10, seed=1, size=48, max_objects=3)
    return tr, te


def test_features_on_a_hand_built_image():
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 255  # left black, right white
    lab = np.zeros((16, 16, 3), np.float32)
    lab[:, 8:, 0] = 100.0
    seg = np.zeros((16, 16), np.int64)
    seg[:, 8:] = 1
    F = superpixel_features(lab, seg, 2)
    assert F.shape == (2, N_FEATURES) and F.dtype == np.float32
    assert F[0, 0] == pytest.approx(0.0) and F[1, 0] == pytest.approx(100.0)  # mean L
    assert F[0, 3] == pytest.approx(0.0) and F[1, 3] == pytest.approx(0.0)  # std L
    # shape: area / mean area = 1, box 16 x 8 of 16 x 16, fill 1
    assert F[:, 16:20] == pytest.approx(np.array([[1, 1, 0.5, 1]] * 2))
    # contrast with the neighbour: -100 and +100 in L
    assert F[0, 23] == pytest.approx(-100.0) and F[1, 23] == pytest.approx(100.0)
    # box HOG (32) and context HOG (72): unit norm; the edge at column 8 is vertical, so
    # the gradient is horizontal: all of it in orientation bin 0
    for hog, n in ((F[:, 26:58], 4), (F[:, 58:], 9)):
        assert np.allclose((hog**2).sum(1), 1.0, atol=1e-3)
        cells = hog.reshape(2, n, 8)
        assert np.allclose(cells[..., 1:], 0) and (cells[..., 0] >= 0).all()


def test_superpixel_labels_majority_and_ignore():
    seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    mask = np.array([[2, 2, IGNORE, IGNORE], [2, 0, IGNORE, 1]])
    label, n, valid = superpixel_labels(seg, 2, mask, 3)
    assert label.tolist() == [2, 1] and n.tolist() == [3, 1]
    assert valid.tolist() == [True, False]  # superpixel 1 is 3/4 ignored


def test_slic_learns_easy_scenes_and_round_trips(scenes, tmp_path):
    tr, te = scenes
    seg = make_segmenter("slic", n_segments=120, max_iter=25, learning_rate=0.2)
    seg.fit(tr.images, tr.semantic)
    P = seg.predict_proba(te.images)
    assert P.shape == (10, 3, 48, 48) and P.dtype == np.float32
    assert np.allclose(P.sum(1), 1, atol=1e-5)
    pred = seg.predict(te.images)
    got = semantic_scores(te.semantic, pred, 3)
    base = semantic_scores(te.semantic, np.zeros_like(te.semantic), 3)
    fg_true, fg_pred = te.semantic > 0, pred > 0
    fg_iou = (fg_true & fg_pred).sum() / (fg_true | fg_pred).sum()
    assert fg_iou > 0.5  # the all-background guess scores 0
    assert got["miou"] > base["miou"] + 0.2
    sem, inst, scores = seg.predict_panoptic(te.images)
    assert sem.shape == inst.shape == (10, 48, 48) and len(scores) == 10
    seg.save(tmp_path / "s")
    again = load_segmenter(tmp_path / "s")
    assert type(again).__name__ == "SlicSegmenter"
    assert np.array_equal(again.predict_proba(te.images), P)


def test_slic_ignores_pixels_and_checks_input(scenes):
    tr, _ = scenes
    masks = tr.semantic.copy()
    masks[:, :, :8] = IGNORE  # a band nobody labelled
    seg = make_segmenter("slic", n_segments=120, max_iter=5).fit(tr.images[:20], masks[:20])
    assert seg.n_labels_ == 3 and set(seg.classifier_.classes_.tolist()) <= {0, 1, 2}
    with pytest.raises(InputError, match="not fitted"):
        make_segmenter("slic").predict(tr.images[:1])
    with pytest.raises(InputError, match="do not match"):
        make_segmenter("slic").fit(tr.images[:2], tr.semantic[:2, :10])


def test_slic_one_label_everywhere(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, (3, 24, 24, 3), np.uint8)
    seg = make_segmenter("slic", n_segments=30).fit(X, np.zeros((3, 24, 24), np.uint8))
    P = seg.predict_proba(X)
    assert P.shape == (3, 2, 24, 24) and (P[:, 0] == 1).all()
    seg.save(tmp_path / "c")
    assert (load_segmenter(tmp_path / "c").predict(X) == 0).all()
