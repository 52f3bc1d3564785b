"""Segmentation metrics against hand-computed cases and, where installed, torchmetrics'
PanopticQuality and pycocotools' COCOeval ('segm')."""

import numpy as np
import pytest

from objrec.errors import InputError
from objrec.evaluation.segmentation import (
    confusion_matrix,
    mask_ap,
    panoptic_quality,
    semantic_scores,
)


def test_semantic_hand_case():
    t = np.array([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    p = np.array([[[0, 1, 1, 1], [0, 0, 1, 2]]])
    cm = confusion_matrix(t, p, 3)
    assert cm.tolist() == [[3, 1, 0], [0, 3, 1], [0, 0, 0]]
    s = semantic_scores(t, p, 3)
    assert s["pixel_accuracy"] == pytest.approx(6 / 8)
    assert s["iou"][0] == pytest.approx(3 / 4) and s["iou"][1] == pytest.approx(3 / 5)
    assert s["iou"][2] == 0.0  # predicted, never true: counts as 0
    assert s["miou"] == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    assert s["dice"][1] == pytest.approx(6 / 8)
    s4 = semantic_scores(t, p, 4)  # label 3 occurs nowhere: NaN, left out of the mean
    assert np.isnan(s4["iou"][3]) and s4["miou"] == pytest.approx(s["miou"])


def test_bad_input():
    with pytest.raises(InputError, match="must both be"):
        semantic_scores(np.zeros((1, 4, 4), int), np.zeros((1, 4, 5), int), 2)
    with pytest.raises(InputError, match="n_labels"):
        semantic_scores(np.full((1, 2, 2), 5), np.zeros((1, 2, 2), int), 3)
    with pytest.raises(InputError, match="integers"):
        semantic_scores(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), 3)


def _square(shape, y, x, h, w):
    m = np.zeros(shape, bool)
    m[y : y + h, x : x + w] = True
    return m


def test_panoptic_hand_case():
    """Two true objects of label 1; prediction: one matched (IoU 16/20), one missed, one
    spurious object of label 2. Background: one stuff segment each side."""
    H = W = 20
    ts = np.zeros((H, W), np.uint8)
    ti = np.zeros((H, W), np.uint16)
    ts[_square((H, W), 0, 0, 4, 5)] = 1  # area 20
    ti[_square((H, W), 0, 0, 4, 5)] = 1
    ts[_square((H, W), 10, 10, 3, 3)] = 1
    ti[_square((H, W), 10, 10, 3, 3)] = 2
    ps = np.zeros((H, W), np.uint8)
    pi = np.zeros((H, W), np.uint16)
    ps[_square((H, W), 0, 0, 4, 4)] = 1  # area 16 inside the first: IoU 16/20
    pi[_square((H, W), 0, 0, 4, 4)] = 7
    ps[_square((H, W), 15, 0, 2, 2)] = 2
    pi[_square((H, W), 15, 0, 2, 2)] = 3
    r = panoptic_quality(ts, ti, ps, pi, 3)
    c1 = r["per_class"][1]
    assert (c1["tp"], c1["fp"], c1["fn"]) == (1, 0, 1)
    assert c1["sq"] == pytest.approx(0.8) and c1["rq"] == pytest.approx(1 / 1.5)
    assert c1["pq"] == pytest.approx(0.8 / 1.5)
    c2 = r["per_class"][2]
    assert (c2["tp"], c2["fp"], c2["fn"], c2["pq"]) == (0, 1, 0, 0.0)
    bg_true = H * W - 20 - 9
    bg_pred = H * W - 16 - 4
    bg_inter = bg_true - 4  # true background minus the spurious square's 4 pixels
    iou_bg = bg_inter / (bg_true + bg_pred - bg_inter)
    assert r["per_class"][0]["pq"] == pytest.approx(iou_bg)
    assert r["pq"] == pytest.approx((iou_bg + 0.8 / 1.5 + 0) / 3)
    assert r["pq_things"] == pytest.approx((0.8 / 1.5) / 2)


def test_panoptic_perfect_and_ids_do_not_matter():
    rng = np.random.default_rng(0)
    sem, inst = _random_panoptic(rng, 3, 24)
    perm = inst.copy()
    perm[inst > 0] += 40  # other ids, same segments
    r = panoptic_quality(sem, inst, sem, perm, 4)
    assert r["pq"] == pytest.approx(1.0) and r["sq"] == pytest.approx(1.0)


def _random_panoptic(rng, n, side, n_labels=4):
    sem = np.zeros((n, side, side), np.uint8)
    inst = np.zeros((n, side, side), np.uint16)
    for i in range(n):
        for k in range(1, int(rng.integers(1, 6)) + 1):
            y, x = rng.integers(0, side - 4, 2)
            h, w = rng.integers(3, 10, 2)
            sem[i, y : y + h, x : x + w] = rng.integers(1, n_labels)
            inst[i, y : y + h, x : x + w] = k
        # an id covered entirely disappears; make labels constant per instance
        for k in np.unique(inst[i])[1:]:
            m = inst[i] == k
            sem[i][m] = np.bincount(sem[i][m]).argmax()
    return sem, inst


def _perturb(rng, sem, inst, n_labels=4):
    ps, pi = sem.copy(), inst.copy()
    for i in range(len(sem)):
        shift = rng.integers(-2, 3, 2)
        ps[i] = np.roll(ps[i], shift, (0, 1))
        pi[i] = np.roll(pi[i], shift, (0, 1))
        if rng.random() < 0.5:  # relabel one object
            ids = np.unique(pi[i])[1:]
            if len(ids):
                ps[i][pi[i] == rng.choice(ids)] = rng.integers(1, n_labels)
        y, x = rng.integers(0, sem.shape[1] - 5, 2)  # a spurious object
        ps[i, y : y + 4, x : x + 4] = rng.integers(1, n_labels)
        pi[i, y : y + 4, x : x + 4] = 60
    return ps, pi


def test_panoptic_against_torchmetrics():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchmetrics")
    from torchmetrics.detection import PanopticQuality

    rng = np.random.default_rng(1)
    for _ in range(5):
        ts, ti = _random_panoptic(rng, 4, 32)
        ps, pi = _perturb(rng, ts, ti)
        ours = panoptic_quality(ts, ti, ps, pi, 4)
        metric = PanopticQuality(
            things={1, 2, 3}, stuffs={0}, return_sq_and_rq=True, return_per_class=True
        )
        pred = torch.from_numpy(np.stack([ps, pi.astype(np.int64)], -1).astype(np.int64))
        target = torch.from_numpy(np.stack([ts, ti.astype(np.int64)], -1).astype(np.int64))
        per = metric(pred, target).numpy().reshape(-1, 3)  # rows: things 1, 2, 3 then stuff 0
        for c, row_index in ((1, 0), (2, 1), (3, 2), (0, 3)):
            row = ours["per_class"][c]
            if np.isnan(row["pq"]):
                continue
            assert [row["pq"], row["sq"], row["rq"]] == pytest.approx(
                per[row_index].tolist(), abs=1e-6
            )
        overall = PanopticQuality(things={1, 2, 3}, stuffs={0})(pred, target)
        assert ours["pq"] == pytest.approx(float(overall), abs=1e-6)


def test_mask_ap_hand_cases():
    H = W = 16
    ts = np.zeros((1, H, W), np.uint8)
    ti = np.zeros((1, H, W), np.uint16)
    ts[0, :4, :4] = 1
    ti[0, :4, :4] = 1
    assert mask_ap(ts, ti, ts, ti, 2)["ap"] == pytest.approx(1.0)
    # IoU 12/16 = 0.75: matched at thresholds 0.50..0.75 (6 of 10)
    ps = np.zeros_like(ts)
    pi = np.zeros_like(ti)
    ps[0, :4, :3] = 1
    pi[0, :4, :3] = 1
    r = mask_ap(ts, ti, ps, pi, 2)
    assert r["ap"] == pytest.approx(0.6) and r["ap50"] == 1.0 and r["ap75"] == 1.0
    # a confident false positive ranked first, then the true hit: precision 1/2 at recall 1
    ps2, pi2 = ps.copy(), pi.copy()
    ps2[0, 10:14, 10:14] = 1
    pi2[0, 10:14, 10:14] = 2
    r = mask_ap(ts, ti, ps2, pi2, 2, scores=[{1: 0.2, 2: 0.9}])
    assert r["ap50"] == pytest.approx(0.5)
    r = mask_ap(ts, ti, ps2, pi2, 2, scores=[{1: 0.9, 2: 0.2}])
    assert r["ap50"] == pytest.approx(1.0)
    # nothing predicted: AP 0, not NaN
    assert mask_ap(ts, ti, np.zeros_like(ts), np.zeros_like(ti), 2)["ap"] == 0.0


def test_mask_ap_against_pycocotools():
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(2)
    ts, ti = _random_panoptic(rng, 6, 32)
    ps, pi = _perturb(rng, ts, ti)
    scores = []
    gt_anns, dt_anns = [], []
    for i in range(len(ts)):
        ids = np.unique(pi[i])[1:]
        sc = {int(k): float(rng.random()) for k in ids}
        scores.append(sc)
        for sem, inst, anns, det in ((ts, ti, gt_anns, False), (ps, pi, dt_anns, True)):
            for k in np.unique(inst[i])[1:]:
                m = inst[i] == k
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                ann = {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(np.bincount(sem[i][m]).argmax()),
                    "segmentation": rle,
                    "area": int(m.sum()),
                    "iscrowd": 0,
                    "bbox": list(mask_utils.toBbox(rle)),
                }
                if det:
                    ann["score"] = sc[int(k)]
                anns.append(ann)
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "height": 32, "width": 32} for i in range(len(ts))],
        "annotations": gt_anns,
        "categories": [{"id": c} for c in (1, 2, 3)],
    }
    gt.createIndex()
    dt = gt.loadRes(dt_anns)
    ev = COCOeval(gt, dt, "segm")
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.params.maxDets = [100]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K)
    ref = prec[prec > -1].mean()
    ours = mask_ap(ts, ti, ps, pi, 4, scores=scores)
    assert ours["ap"] == pytest.approx(ref, abs=1e-9)
    ref50 = prec[0][prec[0] > -1].mean()
    assert ours["ap50"] == pytest.approx(ref50, abs=1e-9)
