"""Where the U-Net's semantic errors come from: its labels or its objects. A second network
that classifies each found object from its crop, against oracles that fix one part.

    python benchmarks/segmentation_objects.py --unet-seconds 720 --crop-seconds 150

Trains the default U-Net (``--grouping``) for ``--unet-seconds`` on the training scenes,
groups its test predictions into objects (``predict_panoptic``) and scores, on the test
scenes (mIoU of the semantic output, PQ, mask AP):

- ``unet``: as it is (each object labelled by its pixels' probabilities);
- ``oracle labels``: each predicted object given the true label most of its pixels have
  (the best any per-object classifier could do on these objects);
- ``oracle classes``: every pixel that is an object in both truth and prediction given its
  true label (only the object/background errors left);
- a crop classifier (:func:`crop_net`: five 3x3 convolutions, 28x28 input of RGB and the
  object's mask on a square box 1.15x the object's, trained ``--crop-seconds`` with AdamW,
  one-cycle, label smoothing 0.1, box jitter), twice: trained on the true objects of the
  training scenes (``true crops``), and on the U-Net's predicted objects of the training
  scenes labelled by their true majority (``predicted crops``). Each relabels the predicted
  objects by ``log p_crop + a log p_unet`` (``p_unet`` the object's share of the U-Net's
  probability mass per label), ``a`` in 0 and 1; ``true crops`` also labels the true test
  objects (``true objects, crop labels``: what a perfect grouping would give).

Prints one JSON line per row and a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def object_boxes(instances: np.ndarray) -> np.ndarray:
    """int64 (K, 6): (scene, id, y0, y1, x0, x1) of every object of instance maps (N, H, W)
    (rows y0:y1, columns x0:x1)."""
    from scipy import ndimage

    out = []
    for i, m in enumerate(instances):
        for k, sl in enumerate(ndimage.find_objects(m.astype(np.int64))):
            if sl is not None:
                out.append((i, k + 1, sl[0].start, sl[0].stop, sl[1].start, sl[1].stop))
    return np.asarray(out, np.int64).reshape(-1, 6)


def crops(images, instances, boxes, side=28, margin=1.15, jitter=0.0, rng=None, chunk=512):
    """float32 (K, 4, side, side): RGB in -1..1 and the object's mask, resampled
    (bilinear) from a square box of ``margin`` x the object's longer side + 2 pixels, its
    size and centre moved by up to ``jitter`` of it."""
    import torch
    import torch.nn.functional as F

    _, H, W = instances.shape
    out = torch.empty((len(boxes), 4, side, side))
    for s in range(0, len(boxes), chunk):
        b = boxes[s : s + chunk]
        img = torch.from_numpy(images[b[:, 0]]).permute(0, 3, 1, 2).float() / 127.5 - 1
        own = instances[b[:, 0]].astype(np.int64) == b[:, 1, None, None]
        x = torch.cat([img, torch.from_numpy(own).float()[:, None]], 1)
        cy, cx = (b[:, 2] + b[:, 3]) / 2.0, (b[:, 4] + b[:, 5]) / 2.0
        size = np.maximum(b[:, 3] - b[:, 2], b[:, 5] - b[:, 4]) * margin + 2
        if jitter:
            size = size * np.exp(rng.uniform(-jitter, jitter, len(b)))
            cy = cy + rng.uniform(-1, 1, len(b)) * jitter * size
            cx = cx + rng.uniform(-1, 1, len(b)) * jitter * size
        theta = np.zeros((len(b), 2, 3), np.float32)
        theta[:, 0, 0], theta[:, 0, 2] = size / W, 2 * cx / W - 1
        theta[:, 1, 1], theta[:, 1, 2] = size / H, 2 * cy / H - 1
        grid = F.affine_grid(torch.from_numpy(theta), (len(b), 4, side, side), align_corners=False)
        out[s : s + len(b)] = F.grid_sample(x, grid, align_corners=False)
    return out


def crop_net(n_classes: int, width: int = 32):
    """(B, 4, 28, 28) -> (B, n_classes) logits."""
    from torch import nn

    def blk(a, b):
        return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b),
                             nn.ReLU(inplace=True))  # fmt: skip

    w = width
    return nn.Sequential(
        blk(4, w), blk(w, w), nn.MaxPool2d(2), blk(w, 2 * w), blk(2 * w, 2 * w), nn.MaxPool2d(2),
        blk(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, n_classes),
    )  # fmt: skip


def train_crops(images, instances, labels, n_classes, seconds, *, bs=128, lr=3e-3, seed=0):
    """The crop network trained ``seconds`` on the objects of ``instances`` (their class
    ``labels`` (K,) 0..n_classes-1, in :func:`object_boxes` order); returns (net, log)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    boxes = object_boxes(instances)
    net = crop_net(n_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    y = torch.from_numpy(np.asarray(labels, np.int64))
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    start, log = time.perf_counter(), []
    while time.perf_counter() - start < seconds:
        X = crops(images, instances, boxes, jitter=0.08, rng=rng)
        perm, hits, n = torch.randperm(len(X)), 0, 0
        net.train()
        for b in range(0, len(X) - bs + 1, bs):
            t = (time.perf_counter() - start) / seconds
            if t >= 1:
                break
            f = t / 0.05 if t < 0.05 else 0.5 * (1 + math.cos(math.pi * (t - 0.05) / 0.95))
            for g in opt.param_groups:
                g["lr"] = lr * max(f, 0.01)
            idx = perm[b : b + bs]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(X[idx])
            loss = F.cross_entropy(out.float(), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits, n = hits + int((out.argmax(1) == y[idx]).sum()), n + len(idx)
        if n == 0:  # the time ran out at the epoch's first batch
            break
        log.append({"epoch": len(log) + 1, "train_accuracy": hits / n,
                    "seconds": time.perf_counter() - start})  # fmt: skip
    return net.eval(), log


def classify(net, images, instances, boxes):
    """Class probabilities float32 (K, C) of the objects ``boxes``."""
    import torch

    X = crops(images, instances, boxes)
    with torch.inference_mode():
        return torch.cat(
            [net(X[s : s + 1024]).float().softmax(1) for s in range(0, len(X), 1024)]
        ).numpy()


def majority(semantic, instances, boxes) -> np.ndarray:
    """Per object the true object label (1..) most of its pixels have, 0 where none of
    its pixels is an object."""
    out = np.zeros(len(boxes), np.int64)
    for j, (i, k, *_) in enumerate(boxes):
        t = semantic[i][instances[i] == k]
        t = t[(t > 0) & (t != 255)]
        out[j] = np.bincount(t).argmax() if len(t) else 0
    return out


def relabel(instances, boxes, labels, sem=None) -> np.ndarray:
    """A semantic mask uint8 (N, H, W): each object of ``boxes`` painted with its label
    (``labels`` (K,), 0 keeps ``sem``'s pixels)."""
    out = np.zeros(instances.shape, np.uint8) if sem is None else sem.copy()
    for (i, k, *_), c in zip(boxes, labels, strict=True):
        if c:
            out[i][instances[i] == k] = c
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-scenes")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--sizes", default="10000,100,1000", help="TRAIN,VAL,TEST scenes")
    p.add_argument("--unet-seconds", type=float, default=720.0)
    p.add_argument("--crop-seconds", type=float, default=150.0)
    p.add_argument("--grouping", default="watershed", choices=["centers", "watershed"])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from benchmarks_md import machine
    from objrec.cpu import keep_freed_memory
    from objrec.data.scenes import load_scene_set
    from objrec.evaluation.segmentation import segmentation_scores
    from objrec.segmentation import make_segmenter
    from objrec.segmentation.base import IGNORE

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    data = load_scene_set(args.dataset, data_dir=args.data_dir, sizes=sizes)
    tr, te, L = data.train, data.test, data.n_labels
    head = {"command": "python benchmarks/segmentation_objects.py " + " ".join(sys.argv[1:]),
            "machine": machine(), "sizes": sizes}  # fmt: skip
    print(json.dumps(head), flush=True)
    seg = make_segmenter("unet", epochs=100, max_seconds=args.unet_seconds, grouping=args.grouping)
    t = time.perf_counter()
    seg.fit(tr.images, tr.semantic, instances=tr.instances)
    print(json.dumps({"unet_fit_seconds": time.perf_counter() - t, "epochs": len(seg.history_)}))
    P = seg.predict_proba(te.images)
    sem, inst, scores = seg.predict_panoptic(te.images)
    boxes = object_boxes(inst)
    mass = np.stack([P[i][1:, inst[i] == k].sum(1) for i, k, *_ in boxes])
    mass /= mass.sum(1, keepdims=True)
    rows = []

    def score(name, s, i=inst, sc=scores):
        m = segmentation_scores(te.semantic, te.instances, s, i, L, scores=sc, ignore_index=IGNORE)
        rows.append({"row": name, "miou": m["semantic"]["miou"], "pq": m["panoptic"]["pq"],
                     "ap": m["mask_ap"]["ap"]})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)

    score("unet", sem)
    score("oracle labels", relabel(inst, boxes, majority(te.semantic, inst, boxes), sem))
    both = (sem > 0) & (te.semantic > 0) & (te.semantic != IGNORE)
    score("oracle classes", np.where(both, te.semantic, sem).astype(np.uint8))

    def crop_rows(name, net):
        pc = classify(net, te.images, inst, boxes)
        for a in (0.0, 1.0):
            lab = (np.log(pc + 1e-6) + a * np.log(mass + 1e-6)).argmax(1) + 1
            score(f"{name}, a={a:g}", relabel(inst, boxes, lab, sem))

    tb = object_boxes(tr.instances)
    net, log = train_crops(tr.images, tr.instances, majority(tr.semantic, tr.instances, tb) - 1,
                           L - 1, args.crop_seconds)  # fmt: skip
    gb = object_boxes(te.instances)
    truth = majority(te.semantic, te.instances, gb)
    pg = classify(net, te.images, te.instances, gb)
    print(json.dumps({"true crops": log[-1], "true test objects accuracy":
                      float((pg.argmax(1) + 1 == truth).mean())}), flush=True)  # fmt: skip
    score(
        "true objects, crop labels", relabel(te.instances, gb, pg.argmax(1) + 1), te.instances, None
    )
    crop_rows("true crops", net)

    pred = [seg.predict_panoptic(tr.images[s : s + 500])[1] for s in range(0, len(tr), 500)]
    pred = np.concatenate(pred)
    pb = object_boxes(pred)
    lab = majority(tr.semantic, pred, pb)
    for (i, k, *_), c in zip(pb, lab, strict=True):
        if c == 0:  # an object on background has no true label: left out
            pred[i][pred[i] == k] = 0
    pb = object_boxes(pred)
    net, log = train_crops(tr.images, pred, majority(tr.semantic, pred, pb) - 1, L - 1,
                           args.crop_seconds)  # fmt: skip
    print(json.dumps({"predicted crops": log[-1], "objects": len(pb)}), flush=True)
    crop_rows("predicted crops", net)

    print("\n| row | mIoU | PQ | mask AP |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['row']} | {r['miou']:.3f} | {r['pq']:.3f} | {r['ap']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
