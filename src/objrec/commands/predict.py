"""``objrec predict MODEL PATH...``: top-k classes for image files, folders and globs."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files with a trained model",
        description="Classify images of any size and colour mode with a trained model. PATH may "
        "be files, folders (searched recursively for images) or glob patterns. An unreadable "
        "file is reported on its own line and the others are still classified (exit status 1).",
    )
    p.add_argument("model", metavar="MODEL", help="run folder or model folder")
    p.add_argument("paths", metavar="PATH", nargs="+", help="image files, folders or globs")
    p.add_argument(
        "--top-k", type=int, default=5, help="classes per image (capped at the class count)"
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--batch-size", type=int, default=256, help="images per inference batch")
    p.add_argument(
        "--backend",
        choices=("native", "onnxruntime", "auto"),
        default="native",
        help="run the estimator itself, or an in-memory ONNX export through ONNX Runtime",
    )
    p.add_argument(
        "--reject-below",
        type=float,
        default=None,
        metavar="P",
        help="answer 'unknown' when the top probability (the out-of-distribution score "
        "printed as 'max p') is below P (0..1)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import csv
    import json

    from objrec.errors import ObjrecError
    from objrec.serving.ood import check_threshold
    from objrec.serving.predictor import Predictor
    from objrec.serving.preprocess import find_images

    if args.top_k < 1:
        raise ObjrecError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise ObjrecError(f"--batch-size must be at least 1, got {args.batch_size}")
    reject_below = check_threshold(args.reject_below)
    predictor = Predictor.from_path(args.model, backend=args.backend)
    paths = find_images(args.paths)
    if not paths:
        raise ObjrecError("no image files found in " + " ".join(args.paths))
    k = min(args.top_k, predictor.n_classes)
    out = sys.stdout
    writer = None
    if args.format == "csv":
        writer = csv.writer(out)
        head = ["path"]
        for i in range(1, k + 1):
            head += [f"label_{i}", f"probability_{i}"]
        writer.writerow([*head, "label", "max_probability", "error"])
    failed = 0
    for r in predictor.predict_files(
        paths, k=k, batch_size=args.batch_size, reject_below=reject_below
    ):
        failed += r.error is not None
        label = None
        if r.error is None:
            label = "unknown" if r.ood["unknown"] else r.top_k[0]["label"]
            if r.ood["warning"]:
                print(f"objrec: warning: {r.path}: {r.ood['warning']}", file=sys.stderr)
        if args.format == "json":
            rec = (
                {"path": r.path, "label": label, "top_k": r.top_k, "ood": r.ood}
                if r.error is None
                else {"path": r.path, "error": r.error}
            )
            out.write(json.dumps(rec) + "\n")
        elif args.format == "csv":
            row = [r.path]
            for t in r.top_k or []:
                row += [t["label"], f"{t['probability']:.6f}"]
            row += [""] * (1 + 2 * k - len(row))
            mp = "" if r.ood is None else f"{r.ood['max_probability']:.6f}"
            writer.writerow([*row, label or "", mp, r.error or ""])
        elif r.error is not None:
            out.write(f"{r.path}  ERROR: {r.error}\n")
        else:
            top = "  ".join(f"{t['label']} {t['probability']:.3f}" for t in r.top_k)
            mp = r.ood["max_probability"]
            if r.ood["unknown"]:
                out.write(f"{r.path}  unknown  (max p {mp:.3f} < {reject_below:g})  {top}\n")
            else:
                out.write(f"{r.path}  {top}  (max p {mp:.3f})\n")
        out.flush()
    if failed:
        print(f"objrec: {failed} of {len(paths)} files could not be read", file=sys.stderr)
    return 1 if failed else 0
