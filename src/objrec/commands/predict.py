"""``objrec predict MODEL PATH...``: top-k classes for image files, folders and globs."""

from __future__ import annotations

import sys

from objrec.cli_types import positive_int, probability


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files with a trained model",
        description="Classify images of any size and colour mode with a trained model. PATH may "
        "be files, folders (searched recursively for images) or glob patterns. An unreadable "
        "file is reported on its own line and the others are still classified (exit status 1).",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="run folder, model folder, or an objrec compare run (its best model, or --method)",
    )
    p.add_argument(
        "--method",
        metavar="NAME",
        help="with a compare run folder: the model of this method (default: the best one, "
        "as recorded in the run's metrics.json, chosen on validation accuracy)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("paths", metavar="PATH", nargs="+", help="image files, folders or globs")
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="classes per image (capped at the class count)",
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="images per inference batch"
    )
    p.add_argument(
        "--backend",
        choices=("native", "onnxruntime", "auto"),
        default="native",
        help="run the estimator itself, or an in-memory ONNX export through ONNX Runtime",
    )
    p.add_argument(
        "--reject-below",
        type=probability,
        default=None,
        metavar="P",
        help="answer 'unknown' when the top probability (the out-of-distribution score "
        "printed as 'max p') is below P (0..1)",
    )
    p.set_defaults(func=run)


def choose_model(path, method: str | None = None, *, log=None):
    """The model folder to use for ``path``: itself for a model or run folder; for an
    ``objrec compare`` run, the model of ``method``, else the best one recorded in the
    run's ``metrics.json`` (``best_method``), else refused naming the methods."""
    from pathlib import Path

    from objrec.artifact import model_folders
    from objrec.errors import ObjrecError
    from objrec.io import read_json

    root = Path(path)
    models = model_folders(root)
    if models == [root]:
        if method:
            raise ObjrecError(
                f"--method {method}: {root} holds one model; --method chooses among the "
                "models of an objrec compare run"
            )
        return root
    by_name = {m.parent.name: m for m in models}
    if method:
        if method not in by_name:
            raise ObjrecError(
                f"--method {method}: not in {root}; its models: {', '.join(sorted(by_name))}"
            )
        return by_name[method]
    best = None
    try:
        best = read_json(root / "metrics.json").get("best_method")
    except (OSError, ValueError):
        pass
    if best in by_name:
        if log:
            log(
                f"objrec: {root} is a comparison; using its best model, {best} (--method to choose)"
            )
        return by_name[best]
    raise ObjrecError(
        f"{root} is a comparison of {len(by_name)} models; choose one with --method "
        f"({', '.join(sorted(by_name))})"
    )


def run(args) -> int:
    import csv
    import json

    from objrec.errors import ObjrecError
    from objrec.serving.ood import check_threshold
    from objrec.serving.predictor import Predictor
    from objrec.serving.preprocess import find_images

    reject_below = check_threshold(args.reject_below)
    model = choose_model(
        args.model, args.method, log=None if args.quiet else lambda m: print(m, file=sys.stderr)
    )
    predictor = Predictor.from_path(model, backend=args.backend)
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
