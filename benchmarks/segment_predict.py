"""Time and peak memory of a U-Net's ``predict_proba`` and ``predict_panoptic`` on many
scenes at once.

    python benchmarks/segment_predict.py --scenes 2000

Fits a default-width U-Net for one epoch on 200 mnist-scenes scenes (its accuracy does not
matter here: the cost of prediction depends on the network and the scene count only), then
predicts ``--scenes`` test scenes (the test split repeated) with each call, measuring the
resident memory above the start (:class:`objrec.evaluation.cost.PeakMemory`) and the wall
time. Prints one JSON line per call; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--scenes", type=int, default=2000, help="scenes predicted at once")
    p.add_argument("--grouping", default="watershed", choices=["centers", "watershed"])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import numpy as np
    import torch

    from benchmarks_md import machine
    from objrec.cpu import keep_freed_memory
    from objrec.data.scenes import load_scene_set
    from objrec.evaluation.cost import PeakMemory
    from objrec.segmentation import make_segmenter

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    data = load_scene_set("mnist-scenes", data_dir=args.data_dir, sizes=(200, 10, 500))
    tr = data.train
    seg = make_segmenter("unet", epochs=1, grouping=args.grouping)
    seg.fit(tr.images, tr.semantic, instances=tr.instances)
    reps = -(-args.scenes // len(data.test))
    X = np.concatenate([data.test.images] * reps)[: args.scenes]
    for name in ("predict_proba", "predict_panoptic"):
        with PeakMemory() as mem:
            t = time.perf_counter()
            out = getattr(seg, name)(X)
            seconds = time.perf_counter() - t
        del out
        print(json.dumps({"call": name, "scenes": len(X), "grouping": args.grouping,
                          "seconds": round(seconds, 2), "peak_mib": round(mem.peak_mib),
                          "machine": machine()}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
