"""Train the reference network in each framework, each in its own process, on one split.

:func:`run_frameworks` writes the split once (``split.npz``: uint8 images ``(N, H, W, C)``,
labels, the training split's channel mean and std), starts ``python -m
objrec.frameworks.worker`` once per framework with that framework's environment (Keras 3
picks its backend from ``KERAS_BACKEND``), and returns one row per framework. A framework
whose packages are not installed, or whose process fails, is a row with ``status`` and
``note`` saying why (and how to install it) instead of an exception.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from objrec.errors import ObjrecError
from objrec.frameworks import FRAMEWORKS, INSTALL_HINT, Framework

#: The reference network's parameter count for 28x28x1 input and 10 classes.
REFERENCE_PARAMS = 121_930


def resolve(names: Sequence[str] | None) -> list[Framework]:
    """The frameworks named (all of them when None), unknown names refused."""
    if not names:
        return list(FRAMEWORKS.values())
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown:
        raise ObjrecError(
            f"unknown framework(s) {', '.join(unknown)}; choose from {', '.join(FRAMEWORKS)}"
        )
    return [FRAMEWORKS[n] for n in dict.fromkeys(names)]


def missing_modules(fw: Framework) -> list[str]:
    """The modules ``fw`` needs that cannot be found (found without importing them)."""
    return [m for m in fw.needs if importlib.util.find_spec(m) is None]


def write_split(data, path: str | Path) -> Path:
    """Save ``data`` (an objrec Dataset) as the workers' ``.npz``; grey images get a channel
    axis, so every array is (N, H, W, C) uint8."""
    mean, std = data.channel_stats()
    arrays = {"mean": np.asarray(mean), "std": np.asarray(std), "n_classes": len(data.classes)}
    for name, split in data.splits.items():
        x = np.asarray(split.X)
        arrays[f"x_{name}"] = x[..., None] if x.ndim == 3 else x
        arrays[f"y_{name}"] = np.asarray(split.y, dtype=np.int64)
    np.savez(path, **arrays)
    return Path(path)


def time_to_accuracy(row: dict, target: float | None) -> float | None:
    """Seconds of training until the validation accuracy first reaches ``target``."""
    if target is None or not row.get("val_acc"):
        return None
    for secs, acc in zip(row["wall_seconds"], row["val_acc"], strict=True):
        if acc >= target - 1e-6:  # float32 means (Lightning) vs exact counts
            return secs
    return None


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that give every framework the same ``threads`` compute threads:
    OpenMP (PyTorch, oneDNN), MKL, TensorFlow's intra-op pool (inter-op 1) and XLA (jax)."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={n}",
    }


def run_one(
    fw: Framework,
    split: Path,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    timeout: float,
    threads: int = 1,
    export: bool = False,
) -> dict:
    """One framework's row: the worker's measurements, or ``status``/``note`` when it is not
    installed or its process fails. ``threads``: compute threads of the worker; ``export``:
    also export the trained model and check its parity (``exports``)."""
    row: dict = {"framework": fw.name, "label": fw.label, "notes_column": fw.notes_column}
    missing = missing_modules(fw)
    if missing:
        row.update(status="not installed", note=f"needs {', '.join(missing)}: {INSTALL_HINT}")
        return row
    out = split.with_name(f"{fw.name}.json")
    cmd = [sys.executable, "-m", "objrec.frameworks.worker", fw.module, str(split), str(out)]
    cmd += ["--epochs", str(epochs), "--batch-size", str(batch_size), "--seed", str(seed)]
    if export:
        cmd += ["--export", str(split.with_name(f"{fw.name}-export"))]
    env = {
        **os.environ,
        **thread_env(threads),
        **fw.env,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore",
    }
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.update(status="failed", note=f"timed out after {timeout:.0f} s")
        return row
    row["process_seconds"] = time.perf_counter() - t
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        row.update(status="failed", note=f"exit {proc.returncode}: {tail[0][:300]}")
        return row
    row.update(json.loads(out.read_text()), status="ok", note="")
    row["first_epoch_seconds"] = row["epoch_seconds"][0]
    later = row["epoch_seconds"][1:]
    row["later_epoch_seconds"] = float(np.mean(later)) if later else None
    row["train_seconds"] = row["wall_seconds"][-1]
    row["final_val_acc"] = row["val_acc"][-1]
    return row


def run_frameworks(
    data,
    frameworks: Sequence[Framework],
    *,
    epochs: int = 5,
    batch_size: int = 32,
    seed: int = 0,
    timeout: float = 3600,
    threads: int | None = None,
    export: bool = False,
    log: Callable[..., None] = print,
) -> list[dict]:
    """Train the reference network in every framework on ``data``'s split; one dict per
    framework (keys: ``test_acc`` 0..1, ``epoch_seconds``, ``wall_seconds`` (cumulative),
    ``val_acc`` per epoch, ``first_epoch_seconds``, ``later_epoch_seconds`` (mean of the
    others), ``import_seconds``, ``peak_rss_mib``, ``params``, ``lines``,
    ``seconds_to_pytorch_acc``: training seconds until the validation accuracy first
    reaches the PyTorch hand loop's final one; ``status`` ok / not installed / failed).
    ``threads``: compute threads of every worker (default: the usable cores); ``export``:
    each framework's deployment formats, exported and checked (``exports``, see
    :mod:`objrec.frameworks.exports`)."""
    from objrec.cpu import usable_cores

    threads = threads or usable_cores()
    rows = []
    with tempfile.TemporaryDirectory(prefix="objrec-frameworks-") as tmp:
        split = write_split(data, Path(tmp) / "split.npz")
        for fw in frameworks:
            log(f"{fw.name}: training ({fw.label}) ...", flush=True)
            row = run_one(
                fw,
                split,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                timeout=timeout,
                threads=threads,
                export=export,
            )
            row["threads"] = threads
            if row["status"] == "ok":
                log(
                    f"  test acc {row['test_acc']:.2%}, {row['train_seconds']:.1f} s "
                    f"({row['first_epoch_seconds']:.1f} s first epoch)",
                    flush=True,
                )
            else:
                log(f"  {row['status']}: {row['note']}", flush=True)
            rows.append(row)
    ref = next((r for r in rows if r["framework"] == "pytorch" and r["status"] == "ok"), None)
    target = ref["final_val_acc"] if ref else None
    for r in rows:
        r["pytorch_val_acc_target"] = target
        r["seconds_to_pytorch_acc"] = time_to_accuracy(r, target)
    return rows
