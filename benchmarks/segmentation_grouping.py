"""One U-Net trained with its centre and offset head; its objects grouped by watershed
and by centres side by side, and where its semantic errors are.

    python benchmarks/segmentation_grouping.py --dataset mnist-scenes \
        --sizes 10000,10,300 --unet-width 8 --unet-epochs 5 --unet-seconds 240

Trains one network (``grouping="centers"``), then on the test scenes:

- PQ, SQ, RQ, mask AP and mIoU of the objects grouped by watershed on the probabilities
  (:mod:`objrec.segmentation.postprocess`) and by the centre/offset head
  (:mod:`objrec.segmentation.centers`), with predict time;
- the same two groupings on the true semantic masks (probabilities 1 on the true label),
  the centres still predicted: how much of the PQ the grouping alone loses;
- the per-pixel argmax's confusion: per-class IoU, its errors split into background taken
  for an object, an object taken for background, and one object class taken for another,
  and the mIoU each split would gain if it were fixed.

Saves ``benchmarks/results/segmentation-grouping-DATASET.json`` and prints a Markdown
table; it does not edit BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _miou(cm: np.ndarray) -> tuple[float, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    den = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(den > 0, tp / den, np.nan)
    return float(np.nanmean(iou)), iou


def semantic_errors(true: np.ndarray, pred: np.ndarray, thing_pred: np.ndarray, L: int) -> dict:
    """Where the argmax ``pred`` (N, H, W) goes wrong against ``true``: per-class IoU, the
    wrong pixels split into bg->object, object->bg and object->other object (shares of
    all wrong pixels), foreground IoU, and the mIoU with each kind fixed (object->object:
    the true label; object->bg: the best object label ``thing_pred``; bg->object: 0)."""
    from objrec.evaluation.segmentation import confusion_matrix
    from objrec.segmentation.base import IGNORE

    keep = true != IGNORE
    t, p, tp_ = true[keep], pred[keep], thing_pred[keep]

    def cmat(a, b):
        return confusion_matrix(a.reshape(1, 1, -1), b.reshape(1, 1, -1), L)

    cm = cmat(t, p)
    miou, iou = _miou(cm)
    wrong = t != p
    bg_obj = wrong & (t == 0)
    obj_bg = wrong & (p == 0)
    obj_obj = wrong & (t > 0) & (p > 0)
    n_wrong = max(int(wrong.sum()), 1)
    fixed = {}
    for name, mask, value in (("obj_obj", obj_obj, t), ("obj_bg", obj_bg, tp_),
                              ("bg_obj", bg_obj, np.zeros_like(t))):  # fmt: skip
        q = np.where(mask, value, p)
        fixed[name] = _miou(cmat(t, q))[0]
    fg_t, fg_p = t > 0, p > 0
    return {
        "miou": miou,
        "iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixel_accuracy": float((~wrong).mean()),
        "foreground_iou": float((fg_t & fg_p).sum() / max((fg_t | fg_p).sum(), 1)),
        "wrong_share": {
            k: float(v.sum() / n_wrong)
            for k, v in (("bg_obj", bg_obj), ("obj_bg", obj_bg), ("obj_obj", obj_obj))
        },
        "miou_if_fixed": fixed,
        "thing_pixels_right_class": float((tp_ == t)[t > 0].mean()),
        "confusion": cm.tolist(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-scenes")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--sizes", default="10000,10,300", help="TRAIN,VAL,TEST scenes")
    p.add_argument("--unet-width", type=int, default=8)
    p.add_argument("--unet-epochs", type=int, default=5)
    p.add_argument("--unet-seconds", type=float, default=240.0)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--center-sigma", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from objrec.cpu import keep_freed_memory
    from objrec.data.scenes import load_scene_set
    from objrec.evaluation.segmentation import segmentation_scores
    from objrec.segmentation import make_segmenter
    from objrec.segmentation.base import IGNORE
    from objrec.segmentation.centers import panoptic_centers_batch
    from objrec.segmentation.postprocess import panoptic_batch

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    command = "python benchmarks/segmentation_grouping.py " + " ".join(sys.argv[1:])
    sizes = tuple(int(s) for s in args.sizes.split(","))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    data = load_scene_set(args.dataset, data_dir=args.data_dir, sizes=sizes)
    build_s = time.perf_counter() - t0
    tr, te, L = data.train, data.test, data.n_labels
    seg = make_segmenter("unet", width=args.unet_width, epochs=args.unet_epochs,
                         max_seconds=args.unet_seconds, batch_size=args.unet_batch,
                         grouping="centers", center_sigma=args.center_sigma,
                         progress=True)  # fmt: skip
    t = time.perf_counter()
    seg.fit(tr.images, tr.semantic, instances=tr.instances)
    fit_s = time.perf_counter() - t
    load_fit = os.getloadavg()

    t = time.perf_counter()
    proba, heat, offset = seg.predict_heads(te.images)
    net_s = time.perf_counter() - t
    rows = {}

    def score(name, fn, P):
        t = time.perf_counter()
        sem, inst, sc = fn(P)
        s = time.perf_counter() - t
        m = segmentation_scores(te.semantic, te.instances, sem, inst, L, scores=sc,
                                ignore_index=IGNORE)  # fmt: skip
        n_pred = [len(np.unique(k)) - 1 for k in inst]
        n_true = [len(np.unique(k)) - 1 for k in te.instances]
        rows[name] = {
            "pq": m["panoptic"]["pq"], "pq_things": m["panoptic"]["pq_things"],
            "sq": m["panoptic"]["sq"], "rq": m["panoptic"]["rq"],
            "mask_ap": m["mask_ap"]["ap"], "ap50": m["mask_ap"]["ap50"],
            "miou": m["semantic"]["miou"],
            "objects_per_scene": float(np.mean(n_pred)), "true_per_scene": float(np.mean(n_true)),
            "group_ms_per_scene": 1000 * s / len(te), "net_ms_per_scene": 1000 * net_s / len(te),
        }  # fmt: skip
        print(name, json.dumps(rows[name]), flush=True)

    score("watershed", lambda P: panoptic_batch(P), proba)
    score("centers", lambda P: panoptic_centers_batch(P, heat, offset), proba)
    onehot = np.eye(L, dtype=np.float32)[np.where(te.semantic == IGNORE, 0, te.semantic)]
    onehot = onehot.transpose(0, 3, 1, 2)
    score("watershed, true semantic", lambda P: panoptic_batch(P), onehot)
    score("centers, true semantic", lambda P: panoptic_centers_batch(P, heat, offset), onehot)
    errors = semantic_errors(te.semantic, proba.argmax(1), proba[:, 1:].argmax(1) + 1, L)
    out = {
        "dataset": args.dataset, "sizes": sizes, "command": command, "git": _git(),
        "classes": ["background", *data.classes], "backgrounds": data.backgrounds,
        "scene_build_seconds": build_s, "fit_seconds": fit_s,
        "load_before": load_before, "load_after_fit": load_fit, "load_after": os.getloadavg(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": seg.get_params(), "history": seg.history_, "groupings": rows,
        "semantic_argmax": errors,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"segmentation-grouping-{args.dataset}.json").write_text(
        json.dumps(out, indent=1) + "\n"
    )
    print(render(out))
    return 0


def render(r: dict) -> str:
    la, lf, lb = r["load_before"], r["load_after_fit"], r["load_after"]
    lines = [
        f"`{r['command']}` (git {r['git']}; load average {la[0]:.1f} before, {lf[0]:.1f} after "
        f"fit, {lb[0]:.1f} after; fit {r['fit_seconds']:.0f} s, "
        f"{r['history'][-1]['epoch']} epochs; peak RSS {r['peak_rss_mib']:.0f} MiB)",
        "",
        "| grouping | PQ | PQ things | SQ | RQ | mask AP | AP50 | mIoU | objects / scene "
        "(true) | grouping ms/scene |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in r["groupings"].items():
        lines.append(
            f"| {name} | {m['pq']:.3f} | {m['pq_things']:.3f} | {m['sq']:.3f} | {m['rq']:.3f} | "
            f"{m['mask_ap']:.3f} | {m['ap50']:.3f} | {m['miou']:.3f} | "
            f"{m['objects_per_scene']:.2f} ({m['true_per_scene']:.2f}) | "
            f"{m['group_ms_per_scene']:.1f} |"
        )
    e = r["semantic_argmax"]
    ws, fx = e["wrong_share"], e["miou_if_fixed"]
    iou = ", ".join(
        f"{n} {v:.2f}" for n, v in zip(r["classes"], e["iou"], strict=True) if v is not None
    )
    lines += [
        "",
        f"Per-pixel argmax: mIoU {e['miou']:.3f}, pixel accuracy {e['pixel_accuracy']:.3f}, "
        f"foreground IoU {e['foreground_iou']:.3f}, object pixels given their right class "
        f"{e['thing_pixels_right_class']:.3f}. Wrong pixels: background taken for an object "
        f"{ws['bg_obj']:.0%}, object for background {ws['obj_bg']:.0%}, object for another "
        f"class {ws['obj_obj']:.0%}. mIoU with one kind fixed: object/object "
        f"{fx['obj_obj']:.3f}, object->background {fx['obj_bg']:.3f}, background->object "
        f"{fx['bg_obj']:.3f}. Per-class IoU: {iou}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
