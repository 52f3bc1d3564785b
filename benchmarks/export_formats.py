"""Size, batch-1 latency, batch-256 throughput and test accuracy of a model's exports, per
format and precision (ONNX, ExecuTorch and LiteRT float and int8, TorchScript).

    python benchmarks/export_formats.py MODEL [--data-dir DIR] [--json OUT] [--files DIR]
        [--export-only] [--formats onnx torchscript executorch tflite]

LiteRT (``tflite``) needs litert-torch, which lives in its own environment (``make
litert-env``, without ONNX Runtime or ExecuTorch): run it there with ``--formats tflite``.
Formats whose runtime is not installed are left out with a message. A LiteRT model has a
fixed batch of 1, so its batch-256 figure is 256 invocations of one interpreter.

MODEL: a trained CNN's run or model folder; its dataset's test split is the accuracy set,
512 of its training images calibrate int8. Every export goes through ``objrec``'s own
checks (parity, or the int8 limits) before it is timed. Latency: median of 200 calls on one
image; throughput: images/s of the median of 15 calls on 256 images. Prints a Markdown
table. ``--files DIR`` keeps the exported files there and reuses those already there
(each was checked when written), so ``--export-only`` can make them outside the benchmark
lock and a second run time them under it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _throughput(run, X: np.ndarray, repeats: int = 15) -> float:
    run(X)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(X)
        times.append(time.perf_counter() - t)
    return len(X) / float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--files", default=None, help="folder keeping the exported files")
    ap.add_argument("--export-only", action="store_true", help="export, do not time")
    ap.add_argument(
        "--formats",
        nargs="+",
        choices=("onnx", "torchscript", "executorch", "tflite"),
        default=["onnx", "torchscript", "executorch", "tflite"],
        help="the formats to export and time (default: every one whose runtime is installed)",
    )
    args = ap.parse_args()

    import objrec
    from objrec.artifact import resolve
    from objrec.commands.export import quantization_data
    from objrec.serving.export import export, latency_ms, runner

    est = objrec.load(resolve(args.model))
    meta = est.objrec_metadata_
    X, y, calib = quantization_data(est, meta, None, None, 512, args.data_dir)
    classes = np.asarray(est.classes_)
    import importlib.util

    needs = {
        "onnx": ["onnxruntime"],
        "torchscript": [],
        "executorch": ["executorch"],
        "tflite": ["litert_torch", "ai_edge_litert"],
    }
    files = {
        "onnx": [(None, "model.onnx"), ("int8", "model-int8.onnx")],
        "torchscript": [(None, "model.pt")],
        "executorch": [(None, "model.pte"), ("int8", "model-int8.pte")],
        "tflite": [(None, "model.tflite"), ("int8", "model-int8.tflite")],
    }
    formats = []
    for fmt in args.formats:
        missing = [m for m in needs[fmt] if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{fmt}: {', '.join(missing)} not installed, its rows are left out")
            continue
        formats += [(fmt, quant, name) for quant, name in files[fmt]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.files or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        float_top1 = None
        for fmt, quant, name in formats:
            out = folder / name
            kw = (
                {"quantize": quant, "calibration_images": calib, "check_labels": y} if quant else {}
            )
            if not out.exists():
                res = export(est, out, format=fmt, check_images=X, dynamic_batch=True, **kw)
                print(f"exported {out}: {[str(r) for r in res.reports]} {res.quantization or ''}")
            if args.export_only:
                continue
            run = runner(out, fmt)
            proba = np.concatenate([run(X[i : i + 256]) for i in range(0, len(X), 256)])
            top1 = proba.argmax(1)
            if float_top1 is None:
                float_top1 = top1
            rows.append(
                {
                    "format": fmt,
                    "precision": quant or "float32",
                    "size_kib": out.stat().st_size / 1024,
                    "latency_ms": latency_ms(run, X[:1], repeats=200, warmup=20),
                    "throughput_256": _throughput(run, X[:256]),
                    "test_accuracy": float(np.mean(classes[top1] == y)),
                    "top1_agreement": float(np.mean(top1 == float_top1)),
                    "n_test": len(X),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    if args.export_only:
        return
    print()
    print(
        "| format | precision | size KiB | 1-image ms | img/s at batch 256 | test acc % | same top-1 as float % |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['format']} | {r['precision']} | {r['size_kib']:.1f} | {r['latency_ms']:.3f} | "
            f"{r['throughput_256']:,.0f} | {100 * r['test_accuracy']:.2f} | "
            f"{100 * r['top1_agreement']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
