"""Benchmark of the classic methods: accuracy, fit time, predict throughput, peak memory.

Each (dataset, method) runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``, which includes the loaded dataset) is its own. Results are appended to a
JSON-lines file as they come, and a Markdown table is printed at the end.

    flock /tmp/objrec-bench.lock python benchmarks/classic.py \
        --datasets mnist,fashion-mnist --methods hog-svm,eigen,bovw-patch
    flock /tmp/objrec-bench.lock python benchmarks/classic.py --datasets orl-5x5,orl-cv10

Datasets: "mnist", "fashion-mnist" (trained on the full 60,000 official training images =
the reference 50,000 train + 10,000 validation, tested on the official 10,000 test);
"orl-5x5" (ORL faces, the first 5 images of each of the 40 people train, the other 5
test); "orl-cv10" (ORL faces, stratified 10-fold cross-validation, mean +- std).
``--train-size`` trains on a stratified subset instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ORL_DIR = ROOT.parent / "shared" / "data" / "orl_faces"
TARGETS = {  # (dataset, method): minimum test accuracy from the issue
    ("fashion-mnist", "hog-svm"): 0.926,
    ("mnist", "hog-svm"): 0.993,
    ("fashion-mnist", "bovw-patch"): 0.90,
    ("fashion-mnist", "bovw-sift"): 0.90,
    ("fashion-mnist", "eigen"): 0.86,
    ("mnist", "eigen"): 0.97,
    ("orl-cv10", "fisher"): 0.96,
}


def load_orl() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 400 ORL faces (400, 112, 92) uint8, person labels 0..39, image index 1..10."""
    from PIL import Image

    X, y, k = [], [], []
    for person in range(1, 41):
        for i in range(1, 11):
            X.append(np.asarray(Image.open(ORL_DIR / f"s{person}" / f"{i}.pgm").convert("L")))
            y.append(person - 1)
            k.append(i)
    return np.stack(X), np.array(y, np.int64), np.array(k)


def load_split(dataset: str, train_size: int | None, seed: int = 0):
    """(X_train, y_train, X_test, y_test) for mnist / fashion-mnist / orl-5x5."""
    if dataset == "orl-5x5":
        X, y, k = load_orl()
        return X[k <= 5], y[k <= 5], X[k > 5], y[k > 5]
    from objrec.data import load_dataset

    shared = ROOT.parent / "shared" / "data" / dataset
    ds = load_dataset(dataset, data_dir=shared if shared.is_dir() else None, progress=False)
    Xtr = np.concatenate([ds.train.X, ds.val.X])
    ytr = np.concatenate([ds.train.y, ds.val.y])
    if train_size and train_size < len(Xtr):
        from sklearn.model_selection import train_test_split

        Xtr, _, ytr, _ = train_test_split(
            Xtr, ytr, train_size=train_size, stratify=ytr, random_state=seed
        )
    return Xtr, ytr, ds.test.X, ds.test.y


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_one(dataset: str, method: str, train_size: int | None, n_jobs: int) -> dict:
    """Fit and evaluate one method on one dataset in this process."""
    import objrec

    load0 = os.getloadavg()
    res = {"dataset": dataset, "method": method, "n_jobs": n_jobs}
    if dataset == "orl-cv10":
        from sklearn.model_selection import StratifiedKFold

        X, y, _ = load_orl()
        accs, fit_s, pred_ips = [], [], []
        for tr, te in StratifiedKFold(10, shuffle=True, random_state=0).split(X, y):
            est = (
                objrec.make_method(method, n_jobs=n_jobs)
                if _takes_jobs(method)
                else objrec.make_method(method)
            )
            t = time.perf_counter()
            est.fit(X[tr], y[tr])
            fit_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            accs.append(float((est.predict(X[te]) == y[te]).mean()))
            pred_ips.append(len(te) / (time.perf_counter() - t))
        res.update(
            n_train=int(len(X) * 0.9),
            n_test=len(X) // 10,
            accuracy=float(np.mean(accs)),
            accuracy_std=float(np.std(accs)),
            fit_s=float(np.mean(fit_s)),
            predict_per_s=float(np.mean(pred_ips)),
        )
    else:
        Xtr, ytr, Xte, yte = load_split(dataset, train_size)
        est = (
            objrec.make_method(method, n_jobs=n_jobs)
            if _takes_jobs(method)
            else objrec.make_method(method)
        )
        t = time.perf_counter()
        est.fit(Xtr, ytr)
        fit = time.perf_counter() - t
        t = time.perf_counter()
        pred = est.predict(Xte)
        pred_s = time.perf_counter() - t
        res.update(
            n_train=len(Xtr),
            n_test=len(Xte),
            accuracy=float((pred == yte).mean()),
            fit_s=fit,
            predict_per_s=len(Xte) / pred_s,
        )
    res.update(peak_rss_mb=peak_rss_mb(), loadavg_start=load0, loadavg_end=os.getloadavg())
    return res


def _takes_jobs(method: str) -> bool:
    import objrec

    return "n_jobs" in objrec.make_method(method).get_params()


def table(rows: list[dict]) -> str:
    """Markdown table of result rows."""
    lines = [
        "| dataset | method | train / test | test accuracy | target | fit (s) | predict (img/s) | peak RSS (MB) | load avg (start, end) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['method']} | | error: {r['error']} | | | | | |")
            continue
        acc = f"{100 * r['accuracy']:.2f}%"
        if "accuracy_std" in r:
            acc += f" ± {100 * r['accuracy_std']:.2f}"
        tgt = TARGETS.get((r["dataset"], r["method"]))
        tgt_s = (
            "" if tgt is None else f"{100 * tgt:.1f}% {'met' if r['accuracy'] >= tgt else 'MISSED'}"
        )
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['n_train']} / {r['n_test']} | {acc} | {tgt_s} | "
            f"{r['fit_s']:.1f} | {r['predict_per_s']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r['loadavg_start'][0]:.1f}, {r['loadavg_end'][0]:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--datasets", default="mnist,fashion-mnist,orl-5x5,orl-cv10")
    p.add_argument(
        "--methods",
        default="hog-svm,eigen,bovw-patch,fisher,pixels-knn,pixels-svm,pixels-logreg,pixels-rf,"
        "pixels-rbf,hog-knn,sift-svm,bovw-sift",
    )
    p.add_argument(
        "--runs",
        default=None,
        help="explicit DATASET:METHOD pairs, comma-separated, run in this order "
        "(instead of every dataset x method)",
    )
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per (dataset, method)")
    p.add_argument("--out", default="benchmarks/results/classic.jsonl")
    p.add_argument(
        "--table", metavar="JSONL", help="only print the Markdown table of an earlier results file"
    )
    p.add_argument("--one", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.table:  # the last successful run of each (dataset, method), else its last error
        last: dict = {}
        for line in Path(a.table).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                key = (r["dataset"], r["method"])
                if "error" not in r or "error" in last.get(key, {"error": 1}):
                    last[key] = r
        print(table(sorted(last.values(), key=lambda r: (r["dataset"], r["method"]))))
        return 0
    if a.one:
        print(json.dumps(run_one(a.one[0], a.one[1], a.train_size, a.n_jobs)))
        return 0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"# {' '.join(sys.argv)}  (load average {os.getloadavg()})", flush=True)
    if a.runs:
        pairs = [tuple(r.split(":", 1)) for r in a.runs.split(",")]
    else:
        pairs = [(d, m) for d in a.datasets.split(",") for m in a.methods.split(",")]
    for ds, m in pairs:
        cmd = [sys.executable, __file__, "--one", ds, m, "--n-jobs", str(a.n_jobs)]
        if a.train_size:
            cmd += ["--train-size", str(a.train_size)]
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
            if proc.returncode != 0:
                raise RuntimeError(
                    proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
                )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"dataset": ds, "method": m, "error": f"timeout after {a.timeout:.0f} s"}
        except Exception as e:  # keep going: one failing method must not lose the others
            row = {"dataset": ds, "method": m, "error": str(e)[:200]}
        row["wall_s"] = time.perf_counter() - t
        row["train_size_arg"] = a.train_size
        rows.append(row)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(table([row]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
