"""Segmentation metrics: pixel accuracy, per-class IoU / mIoU / Dice, panoptic quality
(PQ = SQ x RQ) and COCO-style instance mask AP.

Conventions (as :mod:`objrec.data.scenes`): a semantic mask is an integer array
(N, H, W) of labels ``0..n_labels-1`` with 0 = background; an instance map is an integer
array (N, H, W) of object ids, 0 = none, unique within one image.

Panoptic quality follows Kirillov et al. (CVPR 2019): within each class, a predicted
and a ground-truth segment match when their IoU is above 0.5 (such a match is unique);
``PQ_c = sum of matched IoUs / (TP + FP/2 + FN/2)``, ``SQ_c`` = mean matched IoU and
``RQ_c = TP / (TP + FP/2 + FN/2)``; the overall figures average the classes that occur
(in ground truth or prediction). The ``stuff`` labels (default the background, 0) form
one segment per image whatever the instance ids say; every other label is a "thing"
whose segments are the (label, instance id) pairs.

Mask AP follows COCO's ``COCOeval`` for ``iouType='segm'`` with one area range (all)
and up to ``max_dets`` detections per image: per class and IoU threshold
(0.50:0.05:0.95) detections are matched greedily by descending score to the unmatched
ground-truth instance of highest IoU >= threshold, precision is made monotone and read
at 101 recall points; AP averages classes with ground truth and thresholds.

Ignored pixels (``ignore_index``, e.g. 255 as in Pascal VOC: object borders, regions
nobody labelled) count in no metric: they are left out of the pixel counts; for PQ they
are removed from the predicted segments before the IoU, and a predicted segment lying
more than half in them is no false positive (Kirillov et al.'s "void" rule); for mask AP
they are cut out of every predicted and ground-truth mask.
"""

from __future__ import annotations

import numpy as np

from objrec.errors import InputError

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)


def _check_masks(true: np.ndarray, pred: np.ndarray, what: str = "masks") -> tuple:
    true, pred = np.asarray(true), np.asarray(pred)
    if true.ndim == 2:
        true = true[None]
    if pred.ndim == 2:
        pred = pred[None]
    if true.shape != pred.shape or true.ndim != 3:
        raise InputError(
            f"{what}: ground truth {true.shape} and prediction {pred.shape} must both be (N, H, W)"
        )
    for a, name in ((true, "ground truth"), (pred, "prediction")):
        if not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
            raise InputError(f"{what}: {name} must hold integers, got {a.dtype}")
        if a.size and a.min() < 0:
            raise InputError(f"{what}: {name} holds negative values")
    return true, pred


def confusion_matrix(true, pred, n_labels: int) -> np.ndarray:
    """Pixel counts int64 (n_labels, n_labels): row = true label, column = predicted."""
    true, pred = _check_masks(true, pred)
    top = max(int(true.max(initial=0)), int(pred.max(initial=0)))
    if top >= n_labels:
        raise InputError(f"label {top} found, but n_labels={n_labels} (labels 0..{n_labels - 1})")
    idx = true.astype(np.int64).ravel() * n_labels + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


def _drop_ignored(true, pred, ignore_index):
    """Both masks flattened to (1, 1, P) without the pixels where ``true`` is ignored."""
    true, pred = _check_masks(true, pred)
    if ignore_index is None:
        return true, pred
    keep = true != ignore_index
    return true[keep].reshape(1, 1, -1), pred[keep].reshape(1, 1, -1)


def semantic_scores(true, pred, n_labels: int, *, ignore_index: int | None = None) -> dict:
    """Pixel accuracy, per-label IoU and Dice (NaN for a label absent from both masks),
    mIoU and mean Dice over the labels that occur, background included (label 0) and
    ``miou_objects`` without it; pixels whose true label is ``ignore_index`` left out."""
    cm = confusion_matrix(*_drop_ignored(true, pred, ignore_index), n_labels)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    total = cm.sum()
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "iou": iou.tolist(),
        "dice": dice.tolist(),
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "miou_objects": float(np.nanmean(iou[1:])) if np.isfinite(iou[1:]).any() else float("nan"),
        "mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan"),
    }


def _segment_keys(sem: np.ndarray, inst: np.ndarray, stuff: frozenset) -> np.ndarray:
    """int64 key per pixel: label * 2**32 + instance id (id 0 for stuff labels)."""
    sem = sem.astype(np.int64)
    inst = inst.astype(np.int64)
    if stuff:
        inst = np.where(np.isin(sem, list(stuff)), 0, inst)
    return sem * (1 << 32) + inst


def panoptic_quality(
    true_sem, true_inst, pred_sem, pred_inst, n_labels: int, *, stuff=(0,),
    ignore_index: int | None = None,
) -> dict:  # fmt: skip
    """PQ, SQ and RQ per label and overall (see the module docstring).

    Returns ``pq``, ``sq``, ``rq`` (means over labels that occur), ``pq_things`` /
    ``pq_stuff`` (the same restricted to thing / stuff labels) and ``per_class``: a list of
    dicts ``{label, pq, sq, rq, tp, fp, fn}`` (NaN figures for labels that never occur).
    """
    true_sem, pred_sem = _check_masks(true_sem, pred_sem, "semantic masks")
    true_inst, pred_inst = _check_masks(true_inst, pred_inst, "instance maps")
    if true_inst.shape != true_sem.shape:
        raise InputError(f"instance maps {true_inst.shape} differ from masks {true_sem.shape}")
    stuff = frozenset(int(s) for s in stuff)
    tp = np.zeros(n_labels, np.int64)
    fp = np.zeros(n_labels, np.int64)
    fn = np.zeros(n_labels, np.int64)
    iou_sum = np.zeros(n_labels)
    void_all = (true_sem == ignore_index) if ignore_index is not None else None
    top_true = true_sem if void_all is None else np.where(void_all, 0, true_sem)
    top = max(int(top_true.max(initial=0)), int(pred_sem.max(initial=0)))
    if top >= n_labels:
        raise InputError(f"label {top} found, but n_labels={n_labels}")
    for i in range(len(true_sem)):
        g = _segment_keys(true_sem[i], true_inst[i], stuff).ravel()
        p = _segment_keys(pred_sem[i], pred_inst[i], stuff).ravel()
        void_keys = None
        if void_all is not None and void_all[i].any():
            void = void_all[i].ravel()
            all_keys, all_area = np.unique(p, return_counts=True)
            void_keys = (all_keys, all_area)
            g, p = g[~void], p[~void]
        g_keys, g_area = np.unique(g, return_counts=True)
        p_keys, p_area = np.unique(p, return_counts=True)
        gi = np.searchsorted(g_keys, g)
        pi = np.searchsorted(p_keys, p)
        pair, inter = np.unique(gi * len(p_keys) + pi, return_counts=True)
        a, b = pair // len(p_keys), pair % len(p_keys)
        same = (g_keys[a] >> 32) == (p_keys[b] >> 32)
        a, b, inter = a[same], b[same], inter[same]
        union = g_area[a] + p_area[b] - inter
        iou = inter / union
        hit = iou > 0.5
        g_matched = np.zeros(len(g_keys), bool)
        p_matched = np.zeros(len(p_keys), bool)
        g_matched[a[hit]] = True
        p_matched[b[hit]] = True
        labels_hit = (g_keys[a[hit]] >> 32).astype(np.int64)
        np.add.at(tp, labels_hit, 1)
        np.add.at(iou_sum, labels_hit, iou[hit])
        np.add.at(fn, (g_keys[~g_matched] >> 32).astype(np.int64), 1)
        unmatched = ~p_matched
        if void_keys is not None:  # mostly void: no false positive
            full_area = void_keys[1][np.searchsorted(void_keys[0], p_keys)]
            unmatched &= (full_area - p_area) * 2 <= full_area
        np.add.at(fp, (p_keys[unmatched] >> 32).astype(np.int64), 1)
    denom = tp + 0.5 * fp + 0.5 * fn
    with np.errstate(invalid="ignore", divide="ignore"):
        pq = np.where(denom > 0, iou_sum / denom, np.nan)
        sq = np.where(tp > 0, iou_sum / np.maximum(tp, 1), np.where(denom > 0, 0.0, np.nan))
        rq = np.where(denom > 0, tp / denom, np.nan)
    things = np.array([c not in stuff for c in range(n_labels)])

    def _mean(v, sel=None):
        v = v if sel is None else v[sel]
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    per_class = [
        {
            "label": c,
            "pq": float(pq[c]),
            "sq": float(sq[c]),
            "rq": float(rq[c]),
            "tp": int(tp[c]),
            "fp": int(fp[c]),
            "fn": int(fn[c]),
        }
        for c in range(n_labels)
    ]
    return {
        "pq": _mean(pq),
        "sq": _mean(sq),
        "rq": _mean(rq),
        "pq_things": _mean(pq, things),
        "pq_stuff": _mean(pq, ~things),
        "per_class": per_class,
    }


def instances_of(sem: np.ndarray, inst: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """The objects of one image: (instance id, label, bool mask (H, W)) for every id > 0;
    the label is the most frequent semantic label under the instance."""
    out = []
    for k in np.unique(inst):
        if k == 0:
            continue
        m = inst == k
        out.append((int(k), int(np.bincount(sem[m].astype(np.int64)).argmax()), m))
    return out


def _ap_101(tps: np.ndarray, n_gt: int) -> float:
    """COCO's 101-point interpolated AP from a score-sorted TP (1) / FP (0) sequence."""
    if n_gt == 0:
        return float("nan")
    if len(tps) == 0:
        return 0.0
    tp = np.cumsum(tps)
    fp = np.cumsum(1 - tps)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(
        np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0).mean()
    )


def mask_ap(
    true_sem,
    true_inst,
    pred_sem,
    pred_inst,
    n_labels: int,
    *,
    scores=None,
    max_dets: int = 100,
    background: int = 0,
    ignore_index: int | None = None,
) -> dict:
    """COCO-style instance mask AP (see the module docstring).

    Parameters
    ----------
    true_sem, true_inst, pred_sem, pred_inst : (N, H, W) integer masks and instance maps.
    scores : per image a dict {predicted instance id: confidence}; None gives every
        detection the same score (then ties keep instance id order).
    Returns ``ap`` (mean over IoU 0.50:0.95 and labels with ground truth), ``ap50``,
    ``ap75`` and ``per_class`` AP (NaN where a label has no ground truth instance).
    """
    true_sem, pred_sem = _check_masks(true_sem, pred_sem, "semantic masks")
    true_inst, pred_inst = _check_masks(true_inst, pred_inst, "instance maps")
    if scores is not None and len(scores) != len(true_sem):
        raise InputError(f"scores for {len(scores)} images, masks for {len(true_sem)}")
    if ignore_index is not None:  # ignored pixels cut out of every mask
        void = true_sem == ignore_index
        true_sem, true_inst = np.where(void, background, true_sem), np.where(void, 0, true_inst)
        pred_inst = np.where(void, 0, pred_inst)
    # per label: list of (score, image, per-threshold matched flags) and gt counts
    dets: dict[int, list] = {c: [] for c in range(n_labels) if c != background}
    n_gt = np.zeros(n_labels, np.int64)
    for i in range(len(true_sem)):
        gts = [g for g in instances_of(true_sem[i], true_inst[i]) if g[1] != background]
        prs = [p for p in instances_of(pred_sem[i], pred_inst[i]) if p[1] != background]
        sc = scores[i] if scores is not None else {}
        for c in {g[1] for g in gts} | {p[1] for p in prs}:
            if c >= n_labels:
                raise InputError(f"label {c} found, but n_labels={n_labels}")
            g_c = [g[2] for g in gts if g[1] == c]
            p_c = [(float(sc.get(p[0], 1.0)), p[2]) for p in prs if p[1] == c]
            p_c = sorted(p_c, key=lambda t: -t[0])[:max_dets]  # stable: ties keep id order
            n_gt[c] += len(g_c)
            if not p_c:
                continue
            G = np.stack(g_c).reshape(len(g_c), -1).astype(np.float64) if g_c else None
            P = np.stack([m for _, m in p_c]).reshape(len(p_c), -1).astype(np.float64)
            if G is not None:
                inter = P @ G.T
                union = P.sum(1)[:, None] + G.sum(1)[None, :] - inter
                ious = inter / np.maximum(union, 1)
            else:
                ious = np.zeros((len(p_c), 0))
            for d in range(len(p_c)):
                dets[c].append([p_c[d][0], i, d, None])
            flags = np.zeros((len(IOU_THRESHOLDS), len(p_c)), np.int8)
            for t, thr in enumerate(IOU_THRESHOLDS):
                taken = np.zeros(ious.shape[1], bool)
                for d in range(len(p_c)):
                    best, best_iou = -1, min(thr, 1 - 1e-10)
                    for g in range(ious.shape[1]):
                        if taken[g] or ious[d, g] < best_iou:
                            continue
                        best, best_iou = g, ious[d, g]
                    if best >= 0:
                        taken[best] = True
                        flags[t, d] = 1
            for d in range(len(p_c)):
                dets[c][len(dets[c]) - len(p_c) + d][3] = flags[:, d]
    ap = np.full((len(IOU_THRESHOLDS), n_labels), np.nan)
    for c, items in dets.items():
        if n_gt[c] == 0:
            continue
        if not items:
            ap[:, c] = 0.0
            continue
        # COCOeval sorts all detections of a label by score with a stable (mergesort) sort
        order = np.argsort([-s for s, *_ in items], kind="mergesort")
        flags = np.array([items[j][3] for j in order]).reshape(len(items), -1)
        for t in range(len(IOU_THRESHOLDS)):
            ap[t, c] = _ap_101(flags[:, t], int(n_gt[c]))

    def _m(v):
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return {
        "ap": _m(ap),
        "ap50": _m(ap[0]),
        "ap75": _m(ap[5]),
        "per_class": [_m(ap[:, c]) if c != background else float("nan") for c in range(n_labels)],
    }


def segmentation_scores(
    true_sem, true_inst, pred_sem, pred_inst, n_labels: int, *, scores=None,
    ignore_index: int | None = None,
) -> dict:  # fmt: skip
    """All of the above in one dict: ``semantic``, ``panoptic`` and ``mask_ap``."""
    ig = {"ignore_index": ignore_index}
    return {
        "semantic": semantic_scores(true_sem, pred_sem, n_labels, **ig),
        "panoptic": panoptic_quality(true_sem, true_inst, pred_sem, pred_inst, n_labels, **ig),
        "mask_ap": mask_ap(true_sem, true_inst, pred_sem, pred_inst, n_labels, scores=scores, **ig),
    }


def per_image_scores(
    true_sem, true_inst, pred_sem, pred_inst, n_labels: int, *, ignore_index: int | None = None
) -> dict:
    """Per image (arrays float64 (N,)): ``pq`` (:func:`panoptic_quality` of that image
    alone: the mean over the labels it or its prediction holds, background included) and
    ``miou`` (:func:`semantic_scores`' mIoU of that image alone), to rank images from
    right to wrong; pixels whose true label is ``ignore_index`` left out of both."""
    true_sem, pred_sem = _check_masks(true_sem, pred_sem, "semantic masks")
    true_inst, pred_inst = _check_masks(true_inst, pred_inst, "instance maps")
    n = len(true_sem)
    pq, miou = np.zeros(n), np.zeros(n)
    for i in range(n):
        s = slice(i, i + 1)
        ig = {"ignore_index": ignore_index}
        pq[i] = panoptic_quality(
            true_sem[s], true_inst[s], pred_sem[s], pred_inst[s], n_labels, **ig
        )["pq"]
        miou[i] = semantic_scores(true_sem[s], pred_sem[s], n_labels, **ig)["miou"]
    return {"pq": pq, "miou": miou}
