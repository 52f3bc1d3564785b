"""The REST server of two source trees side by side: requests/s and p99 under one load.

    python benchmarks/serving_ab.py --baseline-src /path/to/old/checkout/src [--rounds 3]

For a change to the server's request path (decoding, limits), this answers "how much
slower or faster" on one machine in one run: the same simple_cnn model (saved by the
baseline tree, in the oldest metadata format both read), the same 28x28 PNG, ``objrec
serve`` of each tree in turn (1 and 2 workers, ONNX Runtime, 1 thread each), loaded by
``hey`` with ``benchmarks/serving.py``'s ``load_test``. The trees take turns for
``--rounds`` rounds, so load from other work on the machine falls on both alike; the
result is the median of each side and the ratio new / baseline. Writes
``benchmarks/results/serving_ab.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks_md import machine
from serving import DATA, load_test

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving_ab.json"

TRAIN = """
import gzip, sys
import numpy as np
import objrec
def idx(p):
    b = gzip.open(p).read()
    return np.frombuffer(b, np.uint8, offset=16 if b[3] == 3 else 8)
X = idx(sys.argv[1] + "/train-images-idx3-ubyte.gz").reshape(-1, 28, 28)[:5000]
y = idx(sys.argv[1] + "/train-labels-idx1-ubyte.gz")[:5000].astype(np.int64)
est = objrec.make_method("simple_cnn", epochs=1, verbose=0).fit(X, y)
objrec.save(est, sys.argv[2])
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--baseline-src", required=True, help="the other tree's src/ folder")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    trees = {"baseline": str(Path(args.baseline_src).resolve()), "new": str(ROOT / "src")}
    tmp = Path(tempfile.mkdtemp(prefix="serving-ab-"))
    model = tmp / "model"
    env = {**os.environ, "PYTHONPATH": trees["baseline"]}
    subprocess.run(
        [sys.executable, "-c", TRAIN, str(DATA / "mnist"), str(model)], env=env, check=True
    )
    import numpy as np
    from PIL import Image

    png_path = tmp / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(png_path)
    png = png_path.read_bytes()
    runs: dict[str, dict[int, list[dict]]] = {t: {w: [] for w in args.workers} for t in trees}
    saved = os.environ.get("PYTHONPATH")
    try:
        for r in range(args.rounds):
            for w in args.workers:
                for t in trees if r % 2 == 0 else reversed(list(trees)):
                    os.environ["PYTHONPATH"] = trees[t]  # the server process imports this tree
                    res = load_test(model, png, w, args.requests, args.concurrency, tmp)[0]
                    runs[t][w].append(res)
                    print(f"round {r + 1} {t} {w} worker(s): {res['requests_per_s']:.0f} req/s, "
                          f"p99 {res['p99_ms']:.1f} ms, non-200 {res['non_200']}", flush=True)  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    out = {"machine": machine(), "trees": trees, "loadavg": os.getloadavg(), "runs": runs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{machine()}\n")
    print("| workers | baseline req/s | new req/s | ratio | baseline p99 ms | new p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for w in args.workers:
        med = {
            t: (
                statistics.median(x["requests_per_s"] for x in runs[t][w]),
                statistics.median(x["p99_ms"] for x in runs[t][w]),
            )
            for t in trees
        }
        (br, bp), (nr, np99) = med["baseline"], med["new"]
        print(
            f"| {w} | {br:,.0f} | {nr:,.0f} | {nr / br:.3f} | {bp:.1f} | {np99:.1f} | {np99 / bp:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
