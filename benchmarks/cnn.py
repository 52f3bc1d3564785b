"""CNN training benchmark: the reference PyTorch recipe against objrec, side by side.

For each dataset (MNIST from ../shared/data/mnist, Fashion-MNIST from
/usr/share/datasets/fashion-mnist):

1. ``baseline``: ../shared/bench/seed_pytorch_baseline.py as written (simple_cnn, batch 32,
   Adam 1e-3, 5 epochs, per-sample loading): wall time and test accuracy.
2. ``default``: ``objrec.make_method("simple_cnn")`` with nothing set, i.e. what
   ``objrec train DATASET --model simple_cnn`` trains (the network's default recipe,
   ``objrec.nets.model_info("simple_cnn").defaults``, planned in optimiser steps by
   ``objrec.training.recipes``): training seconds and test accuracy, and the seconds until
   the epoch whose test accuracy first reaches the baseline's final one.
   ``simple``: the same network with a recipe tuned for the dataset (in-memory uint8
   batches, NHWC, one-cycle schedule, label smoothing), measured the same way. The number
   of epochs is fixed in advance; the test accuracy is measured after each epoch for this
   report only and never stops or steers training.
3. ``best``: objrec's best recipe (resnet_small, augmentation, SGD + one-cycle) within a
   15-minute CPU budget: test accuracy and training time.
4. simple_cnn training throughput as a fraction of the CPU's peak FP32 FLOP/s.

Each part runs in its own process so that its peak resident memory is its own.
Usage::

    flock /tmp/objrec-bench.lock python benchmarks/cnn.py [--datasets mnist fashion]
        [--parts baseline default simple best]
    python benchmarks/cnn.py --report     # the table, from benchmarks/results/cnn.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks_md import cpu_peak_flops, machine
from objrec.training.runtime import native_bf16

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT.parent / "shared" / "bench" / "seed_pytorch_baseline.py"
DATA = {
    "mnist": ROOT.parent / "shared" / "data" / "mnist",
    "fashion": Path("/usr/share/datasets/fashion-mnist"),
}
# Precision of the recipes marked BF16: bf16 autocast where the CPU computes bf16 in
# hardware (AMX or AVX512-BF16: 1.5-2.3x faster training steps), else fp32.
BF16 = "bf16" if native_bf16() else "fp32"
# Recipes (units: epochs, images per batch, learning rate per step). ``simple``: the
# shortest of the schedules tried (1-4 epochs, batch 64-256, Adam 2e-3 to 8e-3, with and
# without label smoothing, fp32 and bf16) that reached the baseline's test accuracy, as a
# time-to-accuracy benchmark chooses; Fashion-MNIST needs more epochs of simple_cnn than
# MNIST. MNIST stays in fp32: one bf16 epoch lands at the baseline's accuracy, not above.
SIMPLE = {
    "mnist": {"model": "simple_cnn", "epochs": 1, "batch_size": 64, "lr": 3e-3,
              "optimizer": "adam", "schedule": "onecycle", "label_smoothing": 0.1,
              "precision": "fp32"},
    "fashion": {"model": "simple_cnn", "epochs": 3, "batch_size": 128, "lr": 6e-3,
                "optimizer": "adam", "schedule": "onecycle", "label_smoothing": 0.1,
                "precision": BF16},
}  # fmt: skip
# The defaults: nothing set but the network (what `objrec train` and `compare` train).
DEFAULT = {"mnist": {"model": "simple_cnn"}, "fashion": {"model": "simple_cnn"}}
# The best recipes train for a fixed time budget (max_time, seconds; the one-cycle schedule
# follows the clock, see objrec.training.schedules): 840 s leaves room within 15 minutes
# for the validation passes; "epochs" is only an upper bound.
BEST = {
    "mnist": {"model": "resnet_small", "epochs": 80, "max_time": 840, "batch_size": 128,
              "lr": 0.1, "optimizer": "sgd", "schedule": "onecycle", "weight_decay": 5e-4,
              "label_smoothing": 0.1, "augment": "default", "precision": BF16},
    "fashion": {"model": "resnet_small", "epochs": 80, "max_time": 840, "batch_size": 128,
                "lr": 0.1, "optimizer": "sgd", "schedule": "onecycle", "weight_decay": 5e-4,
                "label_smoothing": 0.1, "augment": "flip", "precision": BF16},
}  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """A gzip-compressed IDX file as a uint8 array (as the baseline reads it)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(name: str):
    """(X_train 50k, y_train, X_val 10k, y_val, X_test 10k, y_test); the split is seeded."""
    d = DATA[name]
    X = read_idx(d / "train-images-idx3-ubyte.gz")
    y = read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64)
    Xt = read_idx(d / "t10k-images-idx3-ubyte.gz")
    yt = read_idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    tr, va = order[:50000], order[50000:]
    return X[tr], y[tr], X[va], y[va], Xt, yt


class TestProbe:
    """Callback: test accuracy after each epoch, for the report only (its time is excluded)."""

    def __init__(self, est, X, y):
        self.est, self.X, self.y, self.acc, self.seconds = est, X, y, [], 0.0

    def on_train_begin(self, state):
        pass

    def on_epoch_end(self, state, logs):
        import torch

        t = time.perf_counter()
        net = getattr(state.model, "module", state.model)
        net.eval()
        x = self.est.to_tensor(self.X)
        with torch.no_grad():
            pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
        self.acc.append(float((pred.numpy() == np.searchsorted(self.est.classes_, self.y)).mean()))
        self.seconds += time.perf_counter() - t

    def on_train_end(self, state):
        pass


def warm_imports() -> None:
    """Import what ``fit`` imports, before the clock starts, as the baseline script does.

    The baseline's clock starts after its imports and after building its Adam optimiser
    (whose first construction in a process imports ``torch._dynamo``, about 2.5 s here);
    ``CNNClassifier.fit`` imports its modules lazily, so without this its clock would
    include them.
    """
    import importlib

    import torch

    for name in ("torch._dynamo", "tqdm.auto", "objrec.nets", "objrec.training.callbacks",
                 "objrec.training.checkpoint", "objrec.training.loop", "objrec.training.runtime",
                 "objrec.training.schedules", "objrec.training.streaming",
                 "objrec.training.recipes"):  # fmt: skip
        importlib.import_module(name)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def run_objrec(dataset: str, recipe: dict, probe_test: bool = True) -> dict:
    """Train ``recipe`` on ``dataset``; per-epoch history, with the test accuracy beside it
    when ``probe_test`` (not for time-budgeted recipes: the probe's time would come out of
    their training budget)."""
    import objrec
    from objrec.nets import create_model
    from objrec.nets.summary import forward_flops

    X, y, Xv, yv, Xt, yt = load(dataset)
    est = objrec.make_method(recipe["model"], **{k: v for k, v in recipe.items() if k != "model"})
    probe = TestProbe(est, Xt, yt)
    warm_imports()
    t0 = time.perf_counter()
    est.fit(X, y, Xv, yv, callbacks=[probe] if probe_test else [])
    wall = time.perf_counter() - t0 - probe.seconds
    import torch

    flops = forward_flops(create_model(recipe["model"]), (1, 28, 28))
    plan = est.recipe_  # the resolved recipe, as trained (batch and rate after clipping)
    resolved = {"model": recipe["model"], **plan["settings"], "batch_size": plan["batch_size"],
                "lr": plan["lr"], "precision": est.precision}  # fmt: skip
    return {
        "recipe": {**resolved, **recipe},
        "plan": plan,
        "threads": torch.get_num_threads(),
        "wall_seconds": wall,
        "history": est.history_,
        "test_accuracy_per_epoch": probe.acc,
        "test_accuracy": float(est.score(Xt, yt)),
        "val_accuracy": est.val_accuracy_,
        "forward_flops_per_image": flops,
        "train_images": len(y),
    }


def run_part(part: str, dataset: str) -> dict:
    """Run one part in a child process; adds its peak RSS (MiB) and load averages."""
    load0 = os.getloadavg()
    if part == "baseline":
        cmd = [sys.executable, str(BASELINE), str(DATA[dataset]), "5"]
    else:
        cmd = [sys.executable, __file__, "_child", part, dataset]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone
        wall = time.perf_counter() - t0
        log.seek(0)
        out = log.read()
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{part} on {dataset} failed ({code}):\n{out[-2000:]}")
    if part == "baseline":
        m = re.search(r"test_accuracy ([\d.]+) train_seconds ([\d.]+)", out)
        res = {"test_accuracy": float(m.group(1)), "train_seconds": float(m.group(2)), "log": out}
    else:
        res = json.loads(out.strip().splitlines()[-1])
    res.update(
        process_seconds=wall,
        peak_rss_mib=usage.ru_maxrss / 1024,
        loadavg_before=load0,
        loadavg_after=os.getloadavg(),
    )
    return res


def child(part: str, dataset: str) -> None:
    recipe = {"simple": SIMPLE, "default": DEFAULT, "best": BEST}[part][dataset]
    res = run_objrec(dataset, recipe, probe_test=not recipe.get("max_time"))
    print(json.dumps(res))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion"], choices=list(DATA))
    ap.add_argument(
        "--parts",
        nargs="+",
        default=["baseline", "default", "simple", "best"],
        choices=["baseline", "default", "simple", "best"],
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cnn.json"))
    ap.add_argument("--report", action="store_true", help="only print the table of saved results")
    args = ap.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    if args.report:
        print(report(results))
        return
    peak, assumption = cpu_peak_flops()
    results["cpu"] = {"peak_flops": peak, "assumption": assumption, "machine": machine()}
    for ds in args.datasets:
        for part in args.parts:
            print(f"== {ds} {part} (load {os.getloadavg()[0]:.2f})", flush=True)
            res = run_part(part, ds)
            results.setdefault(ds, {})[part] = res
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2))
            summary = {k: v for k, v in res.items() if k not in ("log", "history", "recipe")}
            print(json.dumps(summary), flush=True)
    print(report(results))


def _epochs(res: dict) -> str:
    done = len(res["history"])
    budget = res["recipe"].get("max_time")
    return f"{done} ep ({budget} s budget)" if budget else f"{done} ep"


def report(results: dict) -> str:
    """The BENCHMARKS.md table from the saved results."""
    peak = results["cpu"]["peak_flops"]
    lines = [
        "| dataset | run | test acc | train time (s) | time to baseline acc (s) | speed-up | peak RSS (MiB) | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for ds in ("mnist", "fashion"):
        r = results.get(ds)
        if not r:
            continue
        base = r.get("baseline")
        if base:
            lines.append(
                f"| {ds} | baseline script (5 epochs, batch 32) | {base['test_accuracy']:.4f} | "
                f"{base['train_seconds']:.1f} | - | 1.0x | {base['peak_rss_mib']:.0f} | {base['loadavg_before'][0]:.2f} |"
            )
        parts = (
            ("default", "objrec defaults"),
            ("simple", "objrec simple_cnn tuned"),
            ("best", "objrec best"),
        )
        for part, label in parts:
            res = r.get(part)
            if not res:
                continue
            secs = np.cumsum([h["seconds"] for h in res["history"]])
            reach, ratio = "not reached", "-"
            if not res["test_accuracy_per_epoch"]:
                reach = "not probed"
            elif base:
                hit = [
                    i
                    for i, a in enumerate(res["test_accuracy_per_epoch"])
                    if a >= base["test_accuracy"]
                ]
                if hit:  # epochs' seconds plus fit's set-up before the first epoch
                    t = secs[hit[0]] + max(0.0, res["wall_seconds"] - secs[-1])
                    reach = f"{t:.1f} (epoch {hit[0] + 1})"
                    ratio = f"{base['train_seconds'] / t:.1f}x"
            rec = res["recipe"]
            lines.append(
                f"| {ds} | {label}: {rec['model']}, {_epochs(res)}, batch {rec['batch_size']}, "
                f"{rec['optimizer']} {rec['lr']}, {rec['schedule']}, "
                f"label smoothing {rec.get('label_smoothing', 0)}, aug {rec.get('augment')}, "
                f"{rec.get('precision', 'fp32')} | "
                f"{res['test_accuracy']:.4f} | {res['wall_seconds']:.1f} | {reach} | {ratio} | "
                f"{res['peak_rss_mib']:.0f} | {res['loadavg_before'][0]:.2f} |"
            )
            if part in ("default", "simple"):
                plan = res.get("plan")  # images trained = steps x batch (epochs may span passes)
                images = (
                    plan["total_steps"] * plan["batch_size"]
                    if plan
                    else res["train_images"] * len(res["history"])
                )
                ips = images / sum(h["seconds"] for h in res["history"])
                train_flops = 3 * res["forward_flops_per_image"]
                notes.append(
                    f"{ds} ({part}): simple_cnn trained in {rec.get('precision', 'fp32')} at {ips:.0f} "
                    f"images/s ({res['threads']} threads) x "
                    f"{train_flops / 1e6:.1f} MFLOP/image (3 x {res['forward_flops_per_image'] / 1e6:.2f} "
                    f"forward) = {ips * train_flops / 1e9:.1f} GFLOP/s = {ips * train_flops / peak:.1%} of peak"
                )
    lines.append("")
    lines.append(f"Machine: {results['cpu'].get('machine', '?')}.")
    lines.append(f"Peak: {results['cpu']['assumption']}.")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
