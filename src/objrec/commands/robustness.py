"""``objrec robustness RUN|MODEL...``: accuracy of trained models under every nuisance
family and severity, with the corruption error against the pixels-knn baseline."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "robustness",
        help="measure trained models under pose, illumination, deformation, occlusion, "
        "background, noise and blur",
        description="Measure trained models on the test split corrupted by each nuisance family "
        "at each severity (1 mild .. 5 hard). Prints a table naming each family (accuracy "
        "averaged over severities, mean, mCE and relative mCE against pixels-knn as ImageNet-C "
        "uses AlexNet) and writes robustness.json, robustness.csv, robustness_summary.csv and "
        "plots into the output folder.",
    )
    p.add_argument("models", metavar="RUN|MODEL", nargs="*", help="run folders or model folders")
    p.add_argument(
        "--families",
        nargs="+",
        metavar="NAME",
        help="families (pose illumination deformation occlusion background noise blur) or "
        "single nuisances such as translate, rotate (default: every family)",
    )
    p.add_argument("--severities", default="1-5", help="e.g. 1-5 (default) or 1,3,5")
    p.add_argument(
        "--dataset",
        help="dataset name or folder whose test split to use (default: the one the first "
        "model was trained on, from its metadata)",
    )
    p.add_argument("--data-dir", help="folder to look in first for a named dataset's files")
    p.add_argument(
        "--split", choices=("test", "val"), default="test", help="split to corrupt (default test)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=2000,
        help="test images per (family, severity), stratified; 0 for all (default 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    p.add_argument(
        "--baseline",
        default="auto",
        help="reference for mCE: 'auto' (a pixels-knn among the models, else one trained on at "
        "most --baseline-train images of the training split), a model folder, or 'none'",
    )
    p.add_argument(
        "--baseline-train",
        type=int,
        default=10000,
        help="training images for the auto baseline (default 10000)",
    )
    p.add_argument("--out", help="output folder (default runs/robustness-TIMESTAMP)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="--out names a folder holding another run: delete that run's files first",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g = p.add_argument_group(
        "invariance by training",
        "train METHOD on --dataset plainly and with augmentation by --train-families, then "
        "measure both under those families and the held-out ones (--families, default all)",
    )
    g.add_argument("--heldout", metavar="METHOD", help="method name, e.g. simple_cnn or hog-svm")
    g.add_argument(
        "--train-families",
        nargs="+",
        metavar="NAME",
        default=["pose"],
        help="families (or single nuisances) to augment the training set with (default pose)",
    )
    g.add_argument("--train-severities", default="1-5", help="severities drawn for augmentation")
    g.add_argument("--copies", type=int, default=1, help="corrupted copies per training image")
    g.add_argument(
        "--train-limit",
        type=int,
        default=0,
        help="train on at most this many images (stratified; 0 = the whole training split)",
    )
    from objrec.commands.data import add_image_options

    add_image_options(p.add_argument_group("images (default: as the first model records)"))
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import contextlib

    with contextlib.ExitStack() as stack:  # holds the run folder's lock
        return _run(args, stack)


def _run(args, stack) -> int:
    import numpy as np

    import objrec
    from objrec.artifact import model_folders, read_metadata, recorded_dataset
    from objrec.errors import ObjrecError
    from objrec.evaluation import robustness as rb
    from objrec.evaluation.nuisances import resolve
    from objrec.runs import open_run, write_run_info

    sev = rb.parse_severities(args.severities)
    for family in [*(args.families or ()), *(getattr(args, "train_families", None) or ())]:
        resolve(family)  # unknown names fail before any model or data is loaded
    if args.heldout:
        return run_heldout(args, sev, stack)
    if not args.models:
        raise ObjrecError(
            "give at least one run or model folder (or --heldout METHOD --dataset NAME)"
        )
    models = {}
    dataset_name, split_seed = None, 0
    paths = [m for path in args.models for m in model_folders(path)]  # compare runs: every model
    for path in paths:
        meta = read_metadata(path)
        if dataset_name is None:
            dataset_name, split_seed = recorded_dataset(path, meta)
        est = objrec.load(path)
        name = base = rb.method_label(est)
        i = 2
        while name in models:
            name = f"{base}-{i}"
            i += 1
        models[name] = est
    dataset_name = args.dataset or dataset_name
    if not dataset_name:
        raise ObjrecError(
            "the models do not record the dataset they were trained on; name it with --dataset"
        )
    from objrec.data import load_dataset
    from objrec.data.images import spec_for_model

    # the images as the first model was trained on them, unless --size/--color/--fit say otherwise
    first_est = next(iter(models.values()))
    shape = tuple(getattr(first_est, "input_shape_", ()) or ())
    spec = spec_for_model(getattr(first_est, "objrec_metadata_", {}), shape) if shape else None
    data = load_dataset(
        dataset_name, data_dir=args.data_dir, seed=split_seed, progress=not args.quiet,
        size=args.size or (spec and spec.size), color=args.color or (spec and spec.color),
        fit=args.fit or (spec and spec.fit),
    )  # fmt: skip
    split = getattr(data, args.split)
    if len(split.y) == 0:
        raise ObjrecError(f"{dataset_name} has an empty {args.split} split; try --split test")
    first = next(iter(models.values()))
    shape = tuple(getattr(first, "input_shape_", ()) or ())
    if shape and tuple(split.X.shape[1:]) != shape:
        raise ObjrecError(
            f"{dataset_name} images are {split.X.shape[1:]}, the model expects {shape}; "
            "use the dataset the model was trained on (--dataset)"
        )

    baseline = rb.BASELINE
    if args.baseline == "none":
        baseline = None
    elif args.baseline != "auto":
        est = objrec.load(args.baseline)
        baseline = rb.method_label(est)
        models.setdefault(baseline, est)
    elif rb.BASELINE not in models:
        Xb, yb = rb.subsample(data.train.X, data.train.y, args.baseline_train or None, args.seed)
        if not args.quiet:
            print(f"training the {rb.BASELINE} baseline on {len(yb):,} training images ...")
        models[rb.BASELINE] = objrec.make_method(rb.BASELINE).fit(Xb, yb)

    folder = stack.enter_context(
        open_run(args.out, prefix="robustness", overwrite=args.overwrite, command="robustness")
    )
    write_run_info(
        folder,
        {
            "command": "robustness",
            "models": [str(p) for p in args.models],
            "dataset": dataset_name,
            "split": args.split,
            "families": args.families,
            "severities": sev,
            "limit": args.limit,
            "seed": args.seed,
            "baseline": args.baseline,
        },
    )
    out = rb.run_suite(
        models,
        split.X,
        np.asarray(split.y),
        folder=folder,
        families=args.families,
        severities=sev,
        seed=args.seed,
        limit=args.limit or None,
        baseline=baseline,
        plots=not args.no_plots,
        progress=not args.quiet,
    )
    print(out["table"])
    print(f"written to {folder}/ (robustness.json, robustness.csv, robustness_summary.csv)")
    return 0


def run_heldout(args, sev, stack) -> int:
    """``--heldout METHOD``: the held-out-family protocol of :mod:`objrec.evaluation.augment`."""
    import numpy as np

    import objrec
    from objrec.errors import ObjrecError
    from objrec.evaluation import robustness as rb
    from objrec.evaluation.augment import heldout_family_protocol
    from objrec.io import write_json
    from objrec.runs import open_run, write_run_info

    if not args.dataset:
        raise ObjrecError("--heldout needs --dataset (the data to train and test on)")
    if args.models:
        raise ObjrecError("--heldout trains its own models; leave out the RUN|MODEL arguments")
    from objrec.data import load_dataset

    data = load_dataset(
        args.dataset, data_dir=args.data_dir, progress=not args.quiet,
        size=args.size, color=args.color, fit=args.fit,
    )  # fmt: skip
    Xtr, ytr = rb.subsample(data.train.X, data.train.y, args.train_limit or None, args.seed)
    split = getattr(data, args.split)
    Xte, yte = rb.subsample(split.X, np.asarray(split.y), args.limit or None, args.seed)
    if not args.quiet:
        print(
            f"training {args.heldout} on {len(ytr):,} images, plain and augmented with "
            f"{', '.join(args.train_families)} ..."
        )
    result = heldout_family_protocol(
        objrec.make_method(args.heldout),
        Xtr,
        ytr,
        Xte,
        yte,
        train_families=args.train_families,
        test_families=args.families,
        train_severities=rb.parse_severities(args.train_severities),
        severities=sev,
        copies=args.copies,
        seed=args.seed,
        progress=not args.quiet,
    )
    folder = stack.enter_context(
        open_run(args.out, prefix="heldout", overwrite=args.overwrite, command="robustness")
    )
    write_run_info(
        folder,
        {"command": "robustness --heldout", **{k: v for k, v in vars(args).items() if k != "func"}},
    )
    write_json(folder / "heldout.json", result.to_dict())
    result.robustness.write(folder)
    if not args.no_plots:
        from objrec.report.robustness_plots import write_robustness_plots

        write_robustness_plots(result.robustness, folder, Xte[0])
    print(result.format_table())
    print(f"written to {folder}/ (heldout.json, robustness.json, robustness.csv)")
    return 0
