"""How far the RBF-kernel approximation behind ``hog-svm`` goes: landmarks and loss.

    flock /tmp/objrec-bench.lock python benchmarks/hog_kernel.py fashion-mnist \
        "n_components=4000" "n_components=8000" "n_components=4000, loss='hinge'"

Computes ``hog-svm``'s default descriptor (HOG, cells 4x4 and 7x7 in 2x2 blocks, 9
orientations, L2-Hys, square-root gamma: 1,620 values per 28x28 image) once for the 60,000
official training and 10,000 test images (cached as ``/tmp/objrec-hog-DATASET.npz``), then
fits :class:`objrec.methods.kernel.NystroemClassifier` with each given set of keyword
arguments and prints its test accuracy and fit seconds (one line per setting, appended to
``benchmarks/results/hog_kernel.jsonl``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "hog_kernel.jsonl"


def features(dataset: str):
    """HOG of the 60k training and 10k test images: (F, y, Ft, yt), F float32 (N, 1620)."""
    from objrec.data import load_dataset
    from objrec.methods.features import _hog_chunk

    cache = Path(f"/tmp/objrec-hog-{dataset}.npz")
    if cache.exists():
        z = np.load(cache)
        return z["F"], z["y"], z["Ft"], z["yt"]
    d = load_dataset(dataset, progress=False)
    X, y = np.concatenate([d.train.X, d.val.X]), np.concatenate([d.train.y, d.val.y])
    Xt, yt = d.test.X, d.test.y
    t = time.perf_counter()
    hog = [(4, 2), (7, 2)], 9, "L2-Hys", True
    F = np.concatenate([_hog_chunk(X[i : i + 5000], *hog) for i in range(0, len(X), 5000)])
    Ft = _hog_chunk(Xt, *hog)
    print("hog", F.shape, f"{time.perf_counter() - t:.1f} s", flush=True)
    F, Ft = F.astype(np.float32), Ft.astype(np.float32)
    np.savez(cache, F=F, y=y, Ft=Ft, yt=yt)
    return F, y, Ft, yt


def main(argv: list[str]) -> int:
    from objrec.methods.kernel import NystroemClassifier

    dataset, settings = argv[0], argv[1:]
    F, y, Ft, yt = features(dataset)
    for spec in settings:
        kw = eval(f"dict({spec})", {"__builtins__": {"dict": dict}})  # keyword arguments only
        t = time.perf_counter()
        model = NystroemClassifier(**kw).fit(F, y)
        fit = time.perf_counter() - t
        acc = float((model.predict(Ft) == yt).mean())
        row = {"dataset": dataset, "params": spec, "test_accuracy": acc, "fit_seconds": fit,
               "loadavg": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        print(spec, f"acc {acc:.4f} fit {fit:.0f}s", flush=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
