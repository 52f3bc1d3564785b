"""effnet-logreg on CIFAR-10: which pooled layers and which regularisation, on 45,000 images.

    python benchmarks/pretrained_features.py            # features once (cached), then the table
    python benchmarks/pretrained_features.py --size 224

The frozen EfficientNet-Lite0 features of every CIFAR-10 image (the JPEG re-encoding,
``cifar10-jpg.tar.gz``, decoded by ``cifar_cnn.load_cifar``) are computed once by
effnet-logreg's own extraction with all of its default ``pool_layers`` and cached; each
configuration then fits standardisation + logistic regression on 45,000 training images
(a stratified, seeded 5,000 of the 50,000 are the validation split) and is scored on the
validation split and the official 10,000 test images. Prints a Markdown table and writes
``benchmarks/results/pretrained-features-<size>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks_md import machine
from cifar_cnn import CACHE, load_cifar

RESULTS = Path(__file__).resolve().parent / "results"
# (pooled layers, C values): the head alone (the features of the ImageNet classifier) and
# the head with the last two to four stages
CONFIGS = [
    (("conv_head",), (1e-3, 3e-3, 1e-2, 0.1, 1.0)),
    (("stage6", "stage7", "conv_head"), (1e-3, 3e-3, 1e-2)),
    (("stage5", "stage6", "stage7", "conv_head"), (1e-3, 3e-3, 1e-2)),
    (("stage4", "stage5", "stage6", "stage7", "conv_head"), (1e-3, 3e-3, 1e-2)),
]


def features(size: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, float]:
    """{layer: (60000, D) float32} (training images then test images), the labels of both,
    and the seconds the extraction took (0 when cached)."""
    import objrec
    from objrec.methods.pretrained import POOLED, _backbone
    from objrec.training.runtime import configure_threads

    X, y, Xt, yt = load_cifar()
    cache = CACHE / f"effnet-features-{size}.npz"
    if cache.exists():
        d = np.load(cache)
        return {n: d[n] for n in POOLED}, y, yt, 0.0
    clf = objrec.make_method("effnet-logreg", image_size=size)
    clf.image_size_ = size
    net, _ = _backbone(clf.backbone, 3, size, None)
    widths = []
    for name in POOLED:  # each layer's width, from one image
        clf.pool_layers = (name,)
        widths.append(clf._extract(net, X[:1], None).shape[1])
    clf.pool_layers = POOLED
    t = time.perf_counter()
    F = clf._extract(net, np.concatenate([X, Xt]), configure_threads(None))  # as fit does
    seconds = time.perf_counter() - t
    cols = np.cumsum([0, *widths])
    out = {n: F[:, cols[i] : cols[i + 1]] for i, n in enumerate(POOLED)}
    np.savez(cache, **out)
    return out, y, yt, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=160, help="backbone input side (default 160)")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from objrec.data.splits import stratified_indices

    feats, y, yt, seconds = features(args.size)
    n = len(y)
    fit_rows, val_rows = stratified_indices(y, 5000, 0)
    rows = []
    print(f"{machine()}; features of {n + len(yt):,} images at {args.size} px: {seconds:.0f} s")
    print("| pooled layers | features | C | val | test | fit s |\n|---|---:|---:|---:|---:|---:|")
    for layers, Cs in CONFIGS:
        F = np.concatenate([feats[name] for name in layers], axis=1)
        for C in Cs:
            t = time.perf_counter()
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
            clf.fit(F[fit_rows], y[fit_rows])
            row = {
                "layers": list(layers),
                "features": int(F.shape[1]),
                "C": C,
                "val": float(clf.score(F[val_rows], y[val_rows])),
                "test": float(clf.score(F[n:], yt)),
                "fit_s": time.perf_counter() - t,
            }
            rows.append(row)
            print(
                f"| {' + '.join(layers)} | {row['features']:,} | {C:g} | {100 * row['val']:.2f} "
                f"| {100 * row['test']:.2f} | {row['fit_s']:.0f} |",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": machine(), "size": args.size, "extract_s": seconds, "rows": rows}
    (RESULTS / f"pretrained-features-{args.size}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
