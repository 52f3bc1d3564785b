"""Invariance suite benchmark: every approach under each nuisance family and severity on
MNIST and Fashion-MNIST, and the held-out-family augmentation protocol.

    flock /tmp/objrec-bench.lock python benchmarks/robustness.py
    python benchmarks/robustness.py --datasets cifar10 --section "Robustness on CIFAR-10"

``cifar10`` is objrec's named dataset where its binary files are found, else the JPEG
re-encoding in ``../shared/data/cifar10-jpg.tar.gz`` (decoded once by
``benchmarks/cifar_cnn.py``'s loader; figures on it are on re-encoded pixels).

Each method is fitted on a stratified subset of the training split (``--train``, default
10,000 images) and measured on a stratified subset of the official test set (``--test``,
default 2,000 images) corrupted by every family at severities 1-5 (the same corrupted
images for every method). Writes ``benchmarks/results/robustness.json`` and the
``## Robustness`` section of BENCHMARKS.md (a ``### Reading`` block already there is kept).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import objrec
import objrec.data
from benchmarks_md import machine, write_section
from objrec.evaluation import nuisances as nz
from objrec.evaluation import robustness as rb
from objrec.evaluation.augment import heldout_family_protocol

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "robustness.json"
DEFAULT_METHODS = [
    "pixels-knn",
    "hog-svm",
    "bovw-patch",
    "eigen",
    "mlp",
    "simple_cnn",
    "resnet_small",
]
IDX_FOLDERS = {
    "mnist": ROOT.parent / "shared" / "data" / "mnist",
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(name: str):
    """(train X, train y, test X, test y): objrec.data's training split and official test
    split, or the IDX files read directly when objrec.data cannot load the set."""
    try:
        d = objrec.data.load_dataset(
            name, data_dir=IDX_FOLDERS.get(name), download=False, progress=False
        )
        return d.train.X, d.train.y, d.test.X, d.test.y, f"objrec.data ({d.source})"
    except objrec.ObjrecError as e:
        if name == "cifar10":
            from cifar_cnn import SHARED, load_cifar

            print(f"  objrec.data could not load {name} ({e}); reading the JPEG copy", flush=True)
            Xtr, ytr, Xte, yte = load_cifar()
            return Xtr, ytr, Xte, yte, f"JPEG re-encoding, {SHARED / 'cifar10-jpg.tar.gz'}"
        print(f"  objrec.data could not load {name} ({e}); reading the IDX files", flush=True)
    folder = IDX_FOLDERS[name]
    part = {
        k: _read_idx(folder / f"{k}.gz")
        for k in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    return (
        part["train-images-idx3-ubyte"],
        part["train-labels-idx1-ubyte"].astype(np.int64),
        part["t10k-images-idx3-ubyte"],
        part["t10k-labels-idx1-ubyte"].astype(np.int64),
        f"IDX files in {folder}",
    )


def fit_method(name: str, X, y):
    params = {"verbose": False} if name in objrec.list_methods("cnn") else {}
    est = objrec.make_method(name, **params)
    t0 = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - t0


def prepare(name, args, log) -> dict:
    """The dataset's training and test subsets."""
    Xtr, ytr, Xte, yte, source = load(name)
    Xtr, ytr = rb.subsample(Xtr, ytr, args.train, args.seed)
    Xte, yte = rb.subsample(Xte, yte, args.test, args.seed)
    log(f"{name}: {len(ytr):,} training images, {len(yte):,} test images ({source})")
    return {"Xtr": Xtr, "ytr": ytr, "Xte": Xte, "yte": yte, "source": source, "models": {}}


def fit_all(data, names, out, log) -> None:
    available = objrec.list_methods()
    for m in names:
        if m not in available:
            log(f"  {m}: not available, skipped")
            continue
        log(f"  fitting {m} ...")
        data["models"][m], out["fit_seconds"][m] = fit_method(m, data["Xtr"], data["ytr"])
        log(f"  {m}: fitted in {out['fit_seconds'][m]:.0f} s")


def stage_fast(data, args, out, log) -> None:
    """Every method but the slow ones, on the full test subset."""
    fit_all(data, [m for m in args.methods if m not in args.slow_methods], out, log)
    t0 = time.perf_counter()
    res = rb.evaluate_robustness(
        data["models"], data["Xte"], data["yte"], severities=args.severities, seed=args.seed
    )
    log(f"  suite: {time.perf_counter() - t0:.0f} s")
    log(res.format_table())
    out["robustness"] = res.to_dict()


def stage_slow(data, args, out, log) -> None:
    """Methods too slow at prediction for the full suite: a suite of their own on fewer
    test images, with the baseline measured on the same images for their mCE."""
    slow = [m for m in args.methods if m in args.slow_methods]
    if not slow:
        return
    fit_all(data, slow, out, log)
    models = {m: data["models"][m] for m in slow if m in data["models"]}
    if rb.BASELINE in data["models"]:
        models = {rb.BASELINE: data["models"][rb.BASELINE], **models}
    Xs, ys = rb.subsample(data["Xte"], data["yte"], args.slow_test, args.seed)
    t0 = time.perf_counter()
    res = rb.evaluate_robustness(models, Xs, ys, severities=args.severities, seed=args.seed)
    log(f"  suite of the slow methods on {len(ys)} images: {time.perf_counter() - t0:.0f} s")
    log(res.format_table())
    out["robustness_slow"] = res.to_dict()


def stage_protocol(data, args, out, log) -> None:
    """The held-out-family protocol, reusing the plainly fitted models."""
    out["protocol"] = []
    for m in args.protocol_methods:
        if m not in data["models"]:
            continue
        log(f"  held-out protocol: {m} trained with {', '.join(args.protocol_families)} ...")
        t0 = time.perf_counter()
        params = {"verbose": False} if m in objrec.list_methods("cnn") else {}
        hp = heldout_family_protocol(
            objrec.make_method(m, **params),
            data["Xtr"],
            data["ytr"],
            data["Xte"],
            data["yte"],
            train_families=args.protocol_families,
            severities=args.severities,
            copies=1,
            seed=args.seed,
            plain=data["models"][m],
        )
        log(hp.format_table())
        d = hp.to_dict()
        d["seconds"] = time.perf_counter() - t0
        out["protocol"].append(d)


def invocation() -> str:
    """The command line as run: with ``flock`` when the parent process is flock (the shared
    benchmark lock), with ``nice`` when run at a lower priority."""
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        parent = ""
    prefix = "flock /tmp/objrec-bench.lock " if Path(parent).name == "flock" else ""
    niceness = os.nice(0)
    prefix += f"nice -n {niceness} " if niceness else ""
    return prefix + shlex.join(["python", "benchmarks/robustness.py", *sys.argv[1:]])


def source_tree() -> str:
    """The commit the benchmark ran from, and whether objrec's sources had local changes."""
    import subprocess

    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "src/objrec")
    return git("rev-parse", "--short", "HEAD") + (
        " with local changes in src/objrec" if dirty else ""
    )


def pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}"


def markdown(results, args, load_before, load_after, seconds) -> str:
    cmd = invocation()
    fams = nz.list_families()
    lines = [
        f"## {args.section}",
        "",
        f"Command: `{cmd}` ({seconds / 60:.0f} min; load average "
        f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f} before, "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} after; {machine()}; "
        f"Python {platform.python_version()}; source {source_tree()}).",
        "",
        f"Every method is fitted on **{args.train:,} training images** (a stratified subset of "
        "the training split, to fit the time on 2 cores; the full-data accuracies are in the "
        f"methods' own sections) with its default parameters and measured on **{args.test:,} "
        "test images** (stratified from the official test set) corrupted by each family at "
        f"severities {args.severities} (the same corrupted images for every method; each "
        "family's nuisances spread evenly over the images, seed "
        f"{args.seed}). Accuracy in %, averaged over the severities. mCE: errors summed over "
        "severities divided by `pixels-knn`'s, averaged over families (ImageNet-C's mCE with "
        "pixels-knn in AlexNet's role); relative mCE counts only the accuracy lost to the "
        "nuisance. Below 1: more robust than the baseline. `resnet_small` trains with its "
        "default augmentation (random shifts/crops, small rotation and scale, cutout); the "
        "others see only the unchanged training images.",
        "",
        "Families: "
        + "; ".join(f"**{f}** ({', '.join(nz.FAMILIES[f])})" for f in fams)
        + ". Level 5 is hard but still recognisable (calibrated by eye on MNIST and "
        "Fashion-MNIST montages: `objrec.report.robustness_plots.severity_montage_figure`).",
        "",
    ]
    for r in results:
        res = rb.RobustnessResult.from_dict(r["robustness"])
        slow = (
            rb.RobustnessResult.from_dict(r["robustness_slow"])
            if r.get("robustness_slow")
            else None
        )
        lines += [f"### {r['dataset']}", ""]
        head = ["method", "fit s", "clean", *res.families, "mean", "mCE", "rel. mCE"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        rows = [(row, "") for row in res.summary_rows()]
        if slow is not None:
            rows += [
                (row, " \\*") for row in slow.summary_rows() if row["method"] in args.slow_methods
            ]
        for row, mark in rows:
            m = row["method"]
            cells = [
                f"`{m}`{mark}",
                f"{r['fit_seconds'].get(m, float('nan')):.0f}",
                pct(row["clean"]),
                *[pct(row[f]) for f in res.families],
                pct(row["mean"]),
                "-" if row["mCE"] is None else f"{row['mCE']:.2f}",
                "-" if row["relative_mCE"] is None else f"{row['relative_mCE']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if slow is not None:
            base = slow.summary_rows()[0] if slow.methods[0] == rb.BASELINE else None
            lines += [
                "",
                f"\\* measured in a suite of its own on {slow.n_images} of the test images "
                "(prediction too slow for the full suite here), its mCE against `pixels-knn` "
                "on those same images"
                + (
                    f" (`pixels-knn` there: clean {pct(base['clean'])}, mean {pct(base['mean'])})."
                    if base
                    else "."
                ),
            ]
        # Per nuisance at the hardest level and averaged over levels.
        lines += [
            "",
            f"Per nuisance, accuracy % at severity {res.severities[-1]} (mean over severities "
            "in brackets):",
            "",
        ]
        cols = [(f"`{m}`", res, i) for i, m in enumerate(res.methods)]
        if slow is not None:
            cols += [
                (f"`{m}`\\*", slow, i) for i, m in enumerate(slow.methods) if m in args.slow_methods
            ]
        head = ["nuisance", *[c[0] for c in cols]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

        def cell(rr, m, f, i):
            if f in rr.members:
                acc = rr.members[f][1][m, i]
            else:
                acc = rr.accuracy[m, rr.families.index(f)]
            return f"{pct(acc[-1])} ({pct(np.nanmean(acc))})"

        for f in res.families:
            for i, nn in enumerate(nz.FAMILIES[f]):
                cells = [f"{f}: {nn}"] + [cell(rr, m, f, i) for _, rr, m in cols]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        secs = res.predict_seconds
        n_sets = 1 + len(res.families) * len(res.severities)
        lines.append(
            f"Suite prediction time ({n_sets} sets of {res.n_images:,} images): "
            + ", ".join(f"`{m}` {secs.get(m, 0):.0f} s" for m in res.methods)
            + (
                "; "
                + ", ".join(
                    f"`{m}` {slow.predict_seconds.get(m, 0):.0f} s on {slow.n_images} images"
                    for m in slow.methods
                    if m in args.slow_methods
                )
                if slow is not None
                else ""
            )
            + "."
        )
        lines.append("")
        if r.get("protocol"):
            lines += [
                f"#### Invariance by training on {r['dataset']}: held-out families",
                "",
                "`AugmentedFit(method, families=[...], severities=1-5, copies=1)`: the training "
                "set plus one corrupted copy of each image (a random family of those named, a "
                "random severity), against the same method trained plainly; both measured "
                "under every family. Accuracy % (mean over severities), gain in points.",
                "",
            ]
            for p in r["protocol"]:
                lines += [
                    f"`{p['method']}` augmented with {', '.join(p['trained'])} "
                    f"({p['seconds']:.0f} s):",
                    "",
                    "| family | role | plain | augmented | gain |",
                    "|---|---|---|---|---|",
                ]
                for row in p["rows"]:
                    lines.append(
                        f"| {row['family']} | {row['role']} | {pct(row['plain'])} | "
                        f"{pct(row['augmented'])} | {100 * row['gain']:+.1f} |"
                    )
                lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--severities", default="1-5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol-dataset", default="mnist")
    p.add_argument("--protocol-methods", nargs="*", default=["simple_cnn", "hog-svm"])
    p.add_argument("--protocol-families", nargs="+", default=["pose", "noise"])
    p.add_argument(
        "--slow-methods",
        nargs="*",
        default=["bovw-patch"],
        help="methods measured in a suite of their own on --slow-test images",
    )
    p.add_argument("--slow-test", type=int, default=500)
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    p.add_argument(
        "--section",
        default="Robustness",
        help="BENCHMARKS.md section to write; another than the default also writes "
        "benchmarks/results/robustness-<section words joined by ->.json",
    )
    args = p.parse_args()
    results_file = RESULTS
    if args.section != "Robustness":
        slug = "-".join(args.section.lower().replace("robustness", "").split())
        results_file = RESULTS.with_name(f"robustness-{slug}.json")
    args.severities = rb.parse_severities(args.severities)
    sev_text = rb._span(args.severities)

    def log(msg):
        print(msg, flush=True)

    load_before = os.getloadavg()
    log(f"load average before: {load_before}")
    t0 = time.perf_counter()
    sev_list = args.severities
    results = {
        n: {"dataset": n, "source": None, "n_train": 0, "fit_seconds": {}, "robustness": None}
        for n in args.datasets
    }
    data = {}
    text = ""

    def save():
        nonlocal text
        done = [r for r in results.values() if r["robustness"]]
        args.severities = sev_text
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(
            json.dumps(
                {"args": vars(args), "source_tree": source_tree(), "results": done}, indent=1
            )
        )
        # Written after every stage, so that an interrupted run still leaves its tables.
        text = markdown(done, args, load_before, os.getloadavg(), time.perf_counter() - t0)
        if not args.no_write:
            write_section(args.section, text, keep="Reading")
        args.severities = sev_list

    # Stages in order of importance: every fast method on every dataset, then the held-out
    # protocol, then the slow methods.
    for name in args.datasets:
        data[name] = prepare(name, args, log)
        results[name].update(source=data[name]["source"], n_train=len(data[name]["ytr"]))
        stage_fast(data[name], args, results[name], log)
        save()
    if args.protocol_dataset in data and args.protocol_methods:
        stage_protocol(data[args.protocol_dataset], args, results[args.protocol_dataset], log)
        save()
    for name in args.datasets:
        stage_slow(data[name], args, results[name], log)
        save()
    log(f"load average after: {os.getloadavg()}; {time.perf_counter() - t0:.0f} s")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
