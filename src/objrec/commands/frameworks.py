"""``objrec frameworks DATASET``: the reference network trained in Keras 3, raw TensorFlow,
PyTorch and Lightning on the same split; a table, ``frameworks.json``/``.csv`` and
``frameworks.html`` in one run folder."""

from __future__ import annotations

from pathlib import Path

from objrec.cli_types import non_negative_int, positive_int
from objrec.errors import ObjrecError


def register(sub) -> None:
    p = sub.add_parser(
        "frameworks",
        help="train the reference simple_cnn in Keras, TensorFlow, PyTorch and Lightning",
        description="Train the source notes' reference network (simple_cnn) once per framework "
        "(Keras 3 on its TensorFlow, torch and jax backends; raw TensorFlow; a PyTorch hand "
        "loop and objrec's own loop; PyTorch Lightning), each in its own process, on objrec's split with the same "
        "normalisation, Adam 1e-3 and seed; print test accuracy, time per epoch, import time, "
        "peak memory, parameters and lines of code, and write frameworks.json/.csv and "
        "frameworks.html (the notes' opinion table beside the measured rows). Images are "
        "brought to the reference's 28x28 (a folder of photos, the 8x8 digits); --size "
        "chooses another size from 10 to 29 pixels a side, where every framework's network "
        "is still the same one. Frameworks not installed are listed with how to install "
        "them: pip install 'objrec[frameworks]'.",
    )
    p.add_argument(
        "dataset", metavar="DATASET", help="digits, mnist, fashion-mnist, ... or a folder"
    )
    p.add_argument("--data-dir", help="folder to look in first for a named dataset's files")
    p.add_argument(
        "--frameworks",
        nargs="+",
        metavar="NAME",
        help="keras, keras-torch, keras-jax, tensorflow, pytorch, objrec, lightning (default: all)",
    )
    p.add_argument("--epochs", type=positive_int, default=5, help="epochs (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="split and training seed")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="compute threads of every framework's process (default: the usable cores)",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="train on at most N images of the training split (stratified, seeded); "
        "validation and test stay whole",
    )
    from objrec.commands.data import add_image_options

    add_image_options(p)
    p.add_argument("--name", help="run name: runs/NAME (default frameworks-DATASET)")
    p.add_argument("--out", help="output folder, used as given (overrides --name)")
    p.add_argument(
        "--overwrite", action="store_true", help="--out holds another run: replace its files"
    )
    p.add_argument(
        "--export",
        action="store_true",
        help="also export each trained model (ONNX for PyTorch, SavedModel and .tflite for "
        "TensorFlow/Keras) and check its predictions against the framework's own",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def reference_size(size: str | None) -> tuple[int, int]:
    """The (height, width) every framework trains at: 28x28 unless ``--size`` says otherwise.

    Other sizes are refused rather than measured as different networks
    (:data:`objrec.frameworks.REFERENCE_SIDES`)."""
    from objrec.data.images import parse_size
    from objrec.frameworks import REFERENCE_SIDES

    hw = parse_size(size) or (28, 28)
    bad = [s for s in hw if s not in REFERENCE_SIDES]
    if bad:
        lo, hi = REFERENCE_SIDES[0], REFERENCE_SIDES[-1]
        raise ObjrecError(
            f"--size {size}: the reference network is the same in every framework only for "
            f"sides of {lo} to {hi} pixels (at {bad[0]} pixels simple_cnn has a layer the "
            "notes' network does not); use --size 28, the reference, or leave it out"
        )
    return hw


def run(args) -> int:
    from objrec.cpu import usable_cores
    from objrec.data import load_dataset
    from objrec.frameworks import INIT_SCHEME
    from objrec.frameworks.bench import resolve, run_frameworks
    from objrec.frameworks.output import format_table, write_html, write_tables
    from objrec.runs import open_run, write_run_info

    frameworks = resolve(args.frameworks)  # unknown names fail before loading data
    size = reference_size(args.size)
    log = (lambda *a, **k: None) if args.quiet else print
    # A folder is decoded at the reference size at once; a named set is loaded as stored and
    # resized only when its images are not the reference's shape.
    is_folder = Path(args.dataset).expanduser().is_dir()
    data = load_dataset(
        args.dataset, data_dir=args.data_dir, seed=args.seed, progress=not args.quiet,
        size=size if (args.size or is_folder) else None, color=args.color, fit=args.fit,
    )  # fmt: skip
    if is_folder and not args.size:
        log(f"{data.name}: images resized to {size[0]}x{size[1]}, the reference network's input")
    if tuple(data.image_shape[:2]) != size:
        h, w = data.image_shape[:2]
        log(f"{data.name}: {h}x{w} images resized to {size[0]}x{size[1]} (the reference size)")
        data = load_dataset(
            args.dataset, data_dir=args.data_dir, seed=args.seed, progress=False,
            size=size, color=args.color, fit=args.fit,
        )  # fmt: skip
    if args.limit:
        from objrec.evaluation.compare import limit_train

        data = limit_train(data, args.limit, args.seed)
    threads = args.threads or usable_cores()
    config = {
        "command": "frameworks",
        "dataset": data.name,
        "frameworks": [f.name for f in frameworks],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": 1e-3,
        "init": INIT_SCHEME,
        "seed": args.seed,
        "threads": threads,
        "limit": args.limit,
        "export": args.export,
        "n_train": len(data.train.y),
        "n_val": len(data.val.y),
        "n_test": len(data.test.y),
        "shape": "x".join(str(s) for s in data.image_shape),
    }
    name = args.name or f"frameworks-{Path(str(data.name)).name}"
    with open_run(args.out, name=name, overwrite=args.overwrite, command="frameworks") as folder:
        write_run_info(folder, config)
        log(
            f"{data.name}: {config['n_train']:,} train / {config['n_val']:,} val / "
            f"{config['n_test']:,} test images -> {folder}/"
        )
        rows = run_frameworks(
            data,
            frameworks,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            threads=threads,
            export=args.export,
            log=log,
        )
        write_tables(folder, rows, config)
        page = write_html(folder, rows, config)
    print()
    print(format_table(rows))
    print(f"\nreport: {page}")
    return 0
