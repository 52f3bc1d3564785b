"""Ignored pixels (255, Pascal VOC's borders) in the segmentation metrics, on hand-built
cases: left out of the pixel counts, removed from predictions before PQ's IoU, and a
prediction lying mostly in them no false positive."""

import numpy as np
import pytest

from objrec.errors import InputError
from objrec.evaluation.segmentation import (
    mask_ap,
    panoptic_quality,
    segmentation_scores,
    semantic_scores,
)


def test_semantic_scores_leave_ignored_pixels_out():
    true = np.array([[[0, 1, 255], [1, 1, 0]]])
    pred = np.array([[[0, 1, 2], [1, 0, 0]]])
    got = semantic_scores(true, pred, 3, ignore_index=255)
    kept = semantic_scores(np.array([[[0, 1, 1, 1, 0]]]), np.array([[[0, 1, 1, 0, 0]]]), 3)
    np.testing.assert_equal(got, kept)  # NaN where a label never occurs, in both
    assert got["pixel_accuracy"] == pytest.approx(0.8)
    with pytest.raises(InputError, match="label 255"):
        semantic_scores(true, pred, 3)


def _case():
    """A 12x12 image: one object (label 1) at rows 0:4, cols 0:4, void at rows 0:8, cols
    4:12. Predictions: A spills from the object into the void, B is 3/4 in the void, C lies
    outside the void on background."""
    ts = np.zeros((1, 12, 12), np.uint8)
    ti = np.zeros((1, 12, 12), np.uint16)
    ts[0, 0:4, 0:4], ti[0, 0:4, 0:4] = 1, 1
    ts[0, 0:8, 4:12] = 255
    ps = np.zeros((1, 12, 12), np.uint8)
    pi = np.zeros((1, 12, 12), np.uint16)
    ps[0, 0:4, 0:6], pi[0, 0:4, 0:6] = 1, 1
    ps[0, 5:9, 6:10], pi[0, 5:9, 6:10] = 1, 2
    ps[0, 9:12, 0:4], pi[0, 9:12, 0:4] = 1, 3
    return ts, ti, ps, pi


def test_panoptic_void_rule():
    ts, ti, ps, pi = _case()
    c1 = panoptic_quality(ts, ti, ps, pi, 2, ignore_index=255)["per_class"][1]
    # A matches with IoU 1 (its void pixels removed), B is no false positive, C is one
    assert (c1["tp"], c1["fp"], c1["fn"]) == (1, 1, 0)
    assert c1["sq"] == pytest.approx(1.0) and c1["pq"] == pytest.approx(1 / 1.5)
    # B only a quarter in the void: a false positive too
    ts2 = ts.copy()
    ts2[0, 0:8, 4:12] = 0
    ts2[0, 5, 6:10] = 255
    c1 = panoptic_quality(ts2, ti, ps, pi, 2, ignore_index=255)["per_class"][1]
    assert (c1["tp"], c1["fp"]) == (1, 2)
    assert c1["sq"] == pytest.approx(16 / 24)  # A's spill now counts against its IoU


def test_mask_ap_cuts_the_void_out():
    ts, ti, ps, pi = _case()
    keep = pi == 1
    ap = mask_ap(ts, ti, np.where(keep, ps, 0), np.where(keep, pi, 0), 2, ignore_index=255)
    assert ap["ap"] == pytest.approx(1.0)  # A equals the object once the void is cut out
    both = segmentation_scores(ts, ti, ps, pi, 2, ignore_index=255)
    assert set(both) == {"semantic", "panoptic", "mask_ap"}
    assert both["semantic"]["pixel_accuracy"] == pytest.approx(1 - 16 / (144 - 64))
