"""``objrec info MODEL``: print a model's metadata (method, classes, input, metrics, versions)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="show a trained model's metadata",
        description="Print the metadata of a model: a run folder (runs/NAME) or its model/ "
        "folder; for an objrec compare run, of every model in it.",
    )
    p.add_argument(
        "model", metavar="MODEL", help="run folder, model folder, or an objrec compare run"
    )
    p.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    p.set_defaults(func=run)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def run(args) -> int:
    """One model's metadata; every model's, one block each, for a compare run."""
    from pathlib import Path

    from objrec.artifact import model_folders

    root = Path(args.model)
    models = model_folders(root)
    if models == [root]:
        return show_one(root, args)
    if args.json:
        from objrec.artifact import read_metadata, resolve
        from objrec.io import to_json

        print(to_json([{**read_metadata(m), "folder": str(resolve(m))} for m in models]))
        return 0
    for i, m in enumerate(models):
        if i:
            print()
        print(f"== {m.parent.name}")
        show_one(m, args)
    return 0


def show_one(model, args) -> int:
    from objrec.artifact import read_metadata, resolve
    from objrec.io import to_json

    folder = resolve(model)
    meta = read_metadata(folder)
    if args.json:
        print(to_json({**meta, "folder": str(folder)}))
        return 0
    classes = meta.display_names
    shape = list(meta.input_shape)
    rows = [
        ("model", str(folder)),
        ("task", meta.task),
        ("method", meta.get("method", "?")),
        ("estimator", meta.get("estimator", "?")),
        ("classes", f"{len(classes)}: {_fmt(classes[:20])}{', ...' if len(classes) > 20 else ''}"),
        ("input", " x ".join(map(str, shape)) + (" (grey)" if len(shape) == 2 else "")),
        ("created", meta.get("created", "?")),
    ]
    for key in ("preprocessing", "training", "metrics", "params"):
        if meta.get(key):
            rows.append((key, _fmt(meta[key])))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    rows.append(
        ("files", ", ".join(f"{p.name} ({p.stat().st_size / 1024:.1f} KiB)" for p in files))
    )
    rows.append(("versions", _fmt(meta.get("versions", {}))))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
