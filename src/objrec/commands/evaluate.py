"""``objrec evaluate RUN|MODEL``: every metric and the inference cost of a trained model on a
split of its dataset; a table on the terminal, JSON and CSV in the run folder."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a trained model on the test (or validation) split",
        description="Evaluate a trained model (run folder or model folder) on a split of the "
        "dataset it was trained on: accuracy, balanced accuracy, macro/weighted precision, "
        "recall and F1, per-class scores, top-k accuracy, confusion matrix, log loss and "
        "calibration error (where the model gives probabilities), the most confused pairs and "
        "the top losses; plus throughput, single-image latency, size on disk and peak memory. "
        "Writes evaluation-SPLIT.json, evaluation-SPLIT.csv and evaluation-SPLIT-per-class.csv "
        "into the run folder.",
    )
    p.add_argument(
        "model",
        metavar="RUN|MODEL",
        help="run folder (runs/NAME), model folder, or an objrec compare run (every model in it)",
    )
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument(
        "--dataset",
        help="dataset name or folder (default: the one recorded with the model)",
    )
    p.add_argument("--data-dir", help="folder to look in first for a named dataset's files")
    p.add_argument("--seed", type=int, help="seed of the dataset split (default: the one recorded)")
    p.add_argument("--batch-size", type=int, default=256, help="inference batch size (default 256)")
    p.add_argument("--out", help="folder for the JSON/CSV files (default: the run folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    """Evaluate one model, or every model of an ``objrec compare`` run folder."""
    from pathlib import Path

    from objrec.artifact import model_folders, resolve

    root = Path(args.model)
    models = model_folders(root)
    if models == [root]:
        return evaluate_one(resolve(root), args)
    if args.out:
        from objrec.errors import ObjrecError

        raise ObjrecError("--out applies to one model; a comparison's results stay in its folders")
    from objrec.evaluation.table import format_table

    rows = []
    for m in models:
        print(f"== {m.parent.name}")
        evaluate_one(m, args, rows=rows)
        print()
    rows.sort(key=lambda r: -r["test_accuracy"])
    print(format_table(rows))
    return 0


def evaluate_one(model_folder, args, rows: list | None = None) -> int:
    """Evaluate the model in ``model_folder``; print and write its results (append its
    table row to ``rows`` when given)."""
    from pathlib import Path

    import objrec
    from objrec.artifact import read_metadata, recorded_dataset
    from objrec.errors import ObjrecError
    from objrec.evaluation.compare import _write_csv, evaluate_estimator
    from objrec.evaluation.cost import folder_size
    from objrec.evaluation.metrics import summary_row
    from objrec.evaluation.table import human_bytes
    from objrec.io import write_json

    meta = read_metadata(model_folder)
    est = objrec.load(model_folder)
    name, seed = recorded_dataset(model_folder, meta)
    name = args.dataset or name
    seed = args.seed if args.seed is not None else seed
    if not name:
        raise ObjrecError(
            f"{model_folder}: the model does not record its dataset; name it with --dataset"
        )
    from objrec.data import load_dataset
    from objrec.data.images import spec_for_model

    shape = tuple(getattr(est, "input_shape_", ()) or ())
    spec = spec_for_model(meta, shape) if shape else None  # decode as the model was trained
    data = load_dataset(
        name, data_dir=args.data_dir, seed=seed, progress=not args.quiet,
        **({"size": spec.size, "color": spec.color, "fit": spec.fit} if spec else {}),
    )  # fmt: skip
    split = getattr(data, args.split)
    if len(split.y) == 0:
        raise ObjrecError(f"{name} has an empty {args.split} split; choose another with --split")
    shape = tuple(getattr(est, "input_shape_", ()) or ())
    if shape and tuple(split.X.shape[1:]) != shape:
        raise ObjrecError(
            f"{name} images are {split.X.shape[1:]}, the model expects {shape}; evaluate on the "
            "dataset the model was trained on (--dataset), resized to its input"
        )
    from objrec.serving.predictor import class_names

    names = class_names(meta, est.classes_)
    metrics, cost, _ = evaluate_estimator(
        est,
        split.X,
        split.y,
        classes=names,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    cost["model_bytes"] = folder_size(model_folder)
    for k in ("fit_seconds", "fit_peak_mib"):
        if training.get(k) is not None:
            cost[k] = training[k]
    method = meta.get("method", type(est).__name__)
    out_dir = (
        Path(args.out)
        if args.out
        else (model_folder.parent if model_folder.name == "model" else model_folder)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"evaluation-{args.split}"
    write_json(
        out_dir / f"{stem}.json",
        {
            "model": str(model_folder),
            "method": method,
            "dataset": name,
            "split": args.split,
            "seed": seed,
            f"{args.split}_accuracy": metrics["accuracy"],
            "cost": cost,
            "metrics": metrics,
        },
    )
    row = {"method": method, "dataset": name, "split": args.split, **summary_row(metrics), **cost}
    if rows is not None:
        from objrec.methods import method_spec

        try:
            approach = method_spec(method).approach
        except ObjrecError:
            approach = "-"
        rows.append({**row, "approach": approach, "test_accuracy": metrics["accuracy"]})
    _write_csv(out_dir / f"{stem}.csv", [row])
    _write_csv(out_dir / f"{stem}-per-class.csv", metrics["per_class"])

    lines = [
        ("model", f"{method} ({model_folder})"),
        ("data", f"{name}, {args.split} split, {metrics['n_samples']:,} images"),
        ("accuracy", f"{metrics['accuracy']:.2%}"),
        ("balanced accuracy", f"{metrics['balanced_accuracy']:.2%}"),
    ]
    for avg in ("macro", "weighted"):
        lines.append(
            (
                f"{avg} P / R / F1",
                " / ".join(f"{metrics[f'{avg}_{m}']:.3f}" for m in ("precision", "recall", "f1")),
            )
        )
    for k, v in metrics["top_k_accuracy"].items():
        if k != "1":
            lines.append((f"top-{k} accuracy", f"{v:.2%}"))
    if metrics["log_loss"] is not None:
        lines.append(("log loss", f"{metrics['log_loss']:.4f}"))
        lines.append(("ECE", f"{metrics['ece']:.4f}"))
    else:
        lines.append(("log loss / ECE", "- (the model gives scores, not probabilities)"))
    lines += [
        ("throughput", f"{cost['images_per_second']:,.0f} images/s (batch {cost['batch_size']})"),
        ("one image", f"{cost['latency_ms']:.2f} ms"),
        ("model size", human_bytes(cost["model_bytes"])),
        ("predict peak memory", f"{cost['predict_peak_mib']:.0f} MiB"),
    ]
    if "fit_seconds" in cost:
        lines.append(
            ("fit", f"{cost['fit_seconds']:.1f} s, peak {cost.get('fit_peak_mib', 0):.0f} MiB")
        )
    w = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{w}}  {v}")
    print()
    cw = max(5, *(len(c["class"]) for c in metrics["per_class"]))
    print(f"{'class':<{cw}}  precision  recall     F1  support")
    for c in metrics["per_class"]:
        print(
            f"{c['class']:<{cw}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:5.3f}  "
            f"{c['support']:7d}"
        )
    if metrics["most_confused"]:
        print(
            "\nmost confused: "
            + ", ".join(
                f"{c['true']}->{c['pred']} ({c['count']})" for c in metrics["most_confused"][:5]
            )
        )
    print(f"\nwritten to {out_dir}/{stem}.json, {stem}.csv, {stem}-per-class.csv")
    return 0
