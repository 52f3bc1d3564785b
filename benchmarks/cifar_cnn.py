"""CIFAR-10 with the scratch CNN recipe (``airbench``): time to accuracy, time per epoch,
throughput as a share of the machine's peak.

    python benchmarks/cifar_cnn.py --budget 1200

Data: the JPEG re-encoding of CIFAR-10 (``../shared/data/cifar10-jpg.tar.gz``, decoded once
into ``~/.cache/objrec/cifar_cnn``), split as the named dataset is: 45,000 training and
5,000 validation images (stratified, seed 0) and the 10,000 official test images.

1. A few bf16 steps and fp32 steps (batch as the recipe) time one step of each; times
   an epoch's steps give the time per epoch. FLOPs per image are counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (forward and backward of one step).
2. Training with the recipe's defaults, except ``epochs``: the number (fractional, as
   airbench94's 9.9) that the measured step time fits into ``--budget`` seconds
   (``--epochs`` sets it instead). Every ``--eval-every`` steps and at the end of each
   epoch the test accuracy is measured (outside the timed training, under bf16 autocast):
   without TTA on ``--eval-images`` test images on the way, with the recipe's TTA on all
   10,000 at the end.

Peaks use the clock of ``/proc/cpuinfo`` (``cpu MHz``): fp32 FMA peak = cores x 2 FMA units
x 16 lanes x 2 flop x GHz; bf16 AMX peak = cores x 1024 flop/cycle x GHz.
"""

from __future__ import annotations

import argparse
import json
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from objrec.cpu import keep_freed_memory
from objrec.methods.cnn import _channel_stats, stratified_holdout
from objrec.nets import create_model
from objrec.training import airbench
from objrec.training.recipes import AIRBENCH_RECIPE
from objrec.training.runtime import configure_threads

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CACHE = Path.home() / ".cache" / "objrec" / "cifar_cnn"
RESULTS = Path(__file__).resolve().parent / "results"


def load_cifar() -> tuple:
    """(X_train, y_train, X_test, y_test) uint8 (N, 32, 32, 3) / int64, decoded once."""
    npz = CACHE / "cifar10-jpg.npz"
    if not npz.exists():
        from PIL import Image

        root = CACHE / "cifar10-jpg"
        if not root.exists():
            with tarfile.open(SHARED / "cifar10-jpg.tar.gz") as tar:
                tar.extractall(CACHE, filter="data")
        out = {}
        classes = sorted(p.name for p in (root / "train").iterdir())
        for split in ("train", "test"):
            xs, ys = [], []
            for k, c in enumerate(classes):
                for f in sorted((root / split / c).iterdir()):
                    xs.append(np.asarray(Image.open(f).convert("RGB")))
                    ys.append(k)
            out[f"X_{split}"], out[f"y_{split}"] = np.stack(xs), np.array(ys, np.int64)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(npz, classes=np.array(classes), **out)
    d = np.load(npz)
    return d["X_train"], d["y_train"], d["X_test"], d["y_test"]


def clock_ghz() -> float:
    """The clock of /proc/cpuinfo's first ``cpu MHz`` line, in GHz."""
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    raise RuntimeError("no cpu MHz in /proc/cpuinfo")


def train_step(net, opt, loss_fn, x, y, amp: bool) -> None:
    """One step of the recipe's loop on batch ``x``: forward (bf16 autocast when ``amp``),
    the summed loss in float32, backward, ``opt.step()``."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = net(x)
    loss = loss_fn(out.float(), y).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_seconds(net, x, y, amp: bool, steps: int) -> float:
    """Median seconds of one training step (fwd + bwd + SGD) on batch ``x`` (after one warm-up)."""
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        train_step(net, opt, loss_fn, x, y, amp)
        if i:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def train_flops_per_image(widths) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net = create_model("airbench", 3, 10, (32, 32), widths=widths).train()
    x = torch.randn(32, 3, 32, 32)
    with FlopCounterMode(display=False) as fc:
        net(x).sum().backward()
    return fc.get_total_flops() / 32


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=1200.0, help="training seconds to fit")
    ap.add_argument("--epochs", type=float, help="epochs instead of the budget's")
    ap.add_argument("--eval-every", type=int, default=10, help="steps between test evaluations")
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--timing-steps", type=int, default=2)
    ap.add_argument(
        "--limit", type=int, help="use only this many images of each split (smoke test)"
    )
    ap.add_argument(
        "--threads", type=int, help="PyTorch threads (default: as objrec train chooses them)"
    )
    ap.add_argument("--out", default=str(RESULTS / "cifar_cnn.json"))
    args = ap.parse_args(argv)
    keep_freed_memory()  # as the objrec command does
    threads = configure_threads(args.threads)
    load = os.getloadavg()
    Xtr, ytr, Xte, yte = load_cifar()
    tr, va = stratified_holdout(ytr, 5000 / len(ytr), 0)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    X, y = to_t(Xtr[tr]), torch.from_numpy(ytr[tr])
    Xv, yv = to_t(Xtr[va]), torch.from_numpy(ytr[va])
    Xt, yt = to_t(Xte), torch.from_numpy(yte)
    if args.limit:
        X, y, Xv, yv, Xt, yt = (a[: args.limit] for a in (X, y, Xv, yv, Xt, yt))
    mean, std = _channel_stats(X)
    rec = dict(AIRBENCH_RECIPE, augment={"translate": 2, "flip": True})
    widths = (64, 256, 256)
    batch = int(rec["batch_size"])
    steps_per_epoch = -(-len(y) // batch)

    ghz = clock_ghz()
    peak_fp32 = 2 * 2 * 16 * 2 * ghz * 1e9  # 2 cores
    peak_bf16 = 2 * 1024 * ghz * 1e9
    flops = train_flops_per_image(widths)
    torch.manual_seed(0)
    timing_net = create_model("airbench", 3, 10, (32, 32), widths=widths)
    timing_net = timing_net.to(memory_format=torch.channels_last)
    xb = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    yb = torch.randint(0, 10, (batch,))
    t_bf16 = step_seconds(timing_net, xb, yb, True, args.timing_steps)
    t_fp32 = step_seconds(timing_net, xb, yb, False, args.timing_steps)
    timing = {
        "batch": batch,
        "step_seconds_bf16": t_bf16,
        "step_seconds_fp32": t_fp32,
        "epoch_seconds_bf16": t_bf16 * steps_per_epoch,
        "epoch_seconds_fp32": t_fp32 * steps_per_epoch,
        "train_gflop_per_image": flops / 1e9,
        "bf16_tflops": flops * batch / t_bf16 / 1e12,
        "fp32_tflops": flops * batch / t_fp32 / 1e12,
        "bf16_fraction_of_amx_peak": flops * batch / t_bf16 / peak_bf16,
        "fp32_fraction_of_fma_peak": flops * batch / t_fp32 / peak_fp32,
        "clock_ghz": ghz,
        "peak_bf16_tflops": peak_bf16 / 1e12,
        "peak_fp32_tflops": peak_fp32 / 1e12,
    }
    print(json.dumps(timing, indent=1), flush=True)
    epochs = args.epochs or round(0.95 * args.budget / timing["epoch_seconds_bf16"], 2)
    rec["epochs"] = max(epochs, 1 / steps_per_epoch)

    curve = []
    sub = slice(0, len(yt), max(1, len(yt) // args.eval_images))

    def on_eval(net, logs):
        tta, net.tta = net.tta, 0
        acc = airbench.evaluate(net, Xt[sub], yt[sub], mean, std, amp=True)
        net.tta = tta
        curve.append({**logs, "test_accuracy_no_tta_subset": acc})
        print(
            f"step {logs['step']} {logs['train_seconds']:.0f}s test(no TTA) {acc:.4f}", flush=True
        )

    torch.manual_seed(0)
    net = create_model("airbench", 3, 10, (32, 32), widths=widths)
    t0 = time.perf_counter()
    history = airbench.train(
        net, X, y, mean, std, rec, X_val=None, amp=True, seed=0,
        on_epoch=on_eval, eval_every=args.eval_every, log=print,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    final = airbench.evaluate(net, Xt, yt, mean, std, amp=True)  # TTA level 2
    net.tta = 0
    final_no_tta = airbench.evaluate(net, Xt, yt, mean, std, amp=True)
    result = {
        "command": "python benchmarks/cifar_cnn.py " + " ".join(argv or os.sys.argv[1:]),
        "machine": "Intel Xeon (AVX-512, AVX512-BF16, AMX), 2 cores",
        "threads": threads,
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "recipe": {k: v for k, v in rec.items()},
        "n_train": len(y),
        "timing": timing,
        "train_seconds": history[-1]["train_seconds"],
        "wall_seconds_with_evals": wall,
        "test_accuracy_tta2": final,
        "test_accuracy_no_tta": final_no_tta,
        "curve": curve,
        "history": history,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("train_seconds", "test_accuracy_tta2")}))


if __name__ == "__main__":
    main()
