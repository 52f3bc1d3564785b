"""``objrec compare DATASET``: train every chosen method on one split, evaluate each once on
the same test set, print a ranked table and write one run folder with ``report.html``."""

from __future__ import annotations

from objrec.cli_types import non_negative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="train and compare methods of all four approaches on one dataset, with an HTML report",
        description="Train every chosen method on the same training split (networks also get the "
        "validation split), evaluate each once on the same test split, print a table ranked by "
        "test accuracy with cost columns, and write one run folder holding every model, the "
        "metrics (JSON, CSV), the plots and report.html. Default methods: hog-svm, bovw-patch, "
        "eigen, simple_cnn and resnet_small (those available).",
    )
    p.add_argument(
        "dataset", metavar="DATASET", help="digits, mnist, fashion-mnist, ... or a folder"
    )
    p.add_argument("--data-dir", help="folder to look in first for a named dataset's files")
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="NAME",
        help="methods to compare (objrec methods lists them)",
    )
    p.add_argument(
        "--budget",
        choices=("quick", "full"),
        default="quick",
        help="per-method presets, e.g. training epochs of the networks (default quick)",
    )
    p.add_argument(
        "--recipe",
        choices=("default", "seed"),
        help="training recipe of every network: default (each network's best measured one) "
        "or seed (the source notes' Adam 1e-3, batch 32, 5 epochs)",
    )
    p.add_argument(
        "--robustness",
        action="store_true",
        help="also run the invariance suite on every method (adds the pixels-knn baseline)",
    )
    from objrec.commands.data import add_image_options

    add_image_options(p)
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the train/val/test split"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=256, help="inference batch size (default 256)"
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="train every method on at most N images of the training split, stratified by "
        "class and seeded (a cheap try on a big dataset); validation and test stay whole",
    )
    p.add_argument("--name", help="run name: runs/NAME (default compare-DATASET)")
    p.add_argument("--out", help="output folder, used as given (overrides --name)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="--out names a folder holding another run: delete that run's files first",
    )
    p.add_argument("--no-report", action="store_true", help="skip report.html and the plots")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    import contextlib

    with contextlib.ExitStack() as stack:  # holds the run folder's lock
        return _run(args, stack)


def _run(args, stack) -> int:
    from pathlib import Path

    from objrec.data import load_dataset
    from objrec.evaluation.compare import compare, resolve_methods
    from objrec.evaluation.table import format_table
    from objrec.runs import open_run, write_run_info

    methods = resolve_methods(args.methods)  # fail on unknown names before loading data
    data = load_dataset(
        args.dataset, data_dir=args.data_dir, seed=args.seed, progress=not args.quiet,
        size=args.size, color=args.color, fit=args.fit,
    )  # fmt: skip
    if data.image_note and not args.quiet:
        print(data.image_note)
    if args.limit:
        from objrec.evaluation.compare import limit_train

        data = limit_train(data, args.limit, args.seed)
    name = args.name or f"compare-{Path(str(data.name)).name}"
    folder = stack.enter_context(
        open_run(args.out, name=name, overwrite=args.overwrite, command="compare")
    )
    write_run_info(
        folder,
        {
            "command": "compare",
            "dataset": data.name,
            "data_dir": args.data_dir,
            "source": str(data.source),
            "seed": args.seed,
            "methods": methods,
            "budget": args.budget,
            "robustness": args.robustness,
            "batch_size": args.batch_size,
            "limit": args.limit,
            "n_train": len(data.train.y),
            "n_val": len(data.val.y),
            "n_test": len(data.test.y),
            "image": data.image_spec().to_dict(),
            "image_note": data.image_note,
        },
    )
    log = (lambda *a, **k: None) if args.quiet else print
    log(
        f"{data.name}: {len(data.train.y):,} train / {len(data.val.y):,} val / "
        f"{len(data.test.y):,} test images, {len(data.classes)} classes -> {folder}/"
    )
    out = compare(
        data,
        methods=methods,
        budget=args.budget,
        folder=folder,
        robustness=args.robustness,
        report=not args.no_report,
        batch_size=args.batch_size,
        progress=not args.quiet,
        log=log,
        split_seed=args.seed,
        params=_recipe_params(methods, args.recipe),
    )
    print()
    print(format_table(out["table"]))
    for name, why in out["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"\nbest on validation: {out['best']}")
    if out.get("robustness"):
        print("\nrobustness (accuracy per nuisance family, mean over severities):")
        print(out["robustness"]["table"])
    if out.get("report"):
        print(f"report: {out['report']}")
    print(f"run folder: {folder}/ ({out['seconds']:.0f} s)")
    return 0


def _recipe_params(methods: list[str], recipe: str | None) -> dict | None:
    """``{method: {"recipe": recipe}}`` for the networks among ``methods`` (None: no recipe);
    ``seed`` also sets its epochs, over the budget's, so that it is the notes' recipe exactly."""
    if not recipe:
        return None
    from objrec.methods import method_spec
    from objrec.training.recipes import SEED_RECIPE

    params = {"recipe": recipe}
    if recipe == "seed":
        params["epochs"] = SEED_RECIPE["epochs"]
    return {m: dict(params) for m in methods if method_spec(m).approach == "cnn"}
