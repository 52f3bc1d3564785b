"""``objrec data info|show NAME|PATH``: what a dataset holds, and a grid of its images."""

from __future__ import annotations

import argparse

from objrec.cli_types import fraction_or_count, non_negative_int, positive_int


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset",
        metavar="NAME|PATH",
        help="digits, mnist, fashion-mnist, kmnist, orl-faces, cifar10, or a folder "
        "(root/<class>/<image>, root/{train,val,test}/<class>/<image>, or the four IDX files)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder to look in first for a named dataset's files "
        "(then $OBJREC_DATA_DIR, ~/.cache/objrec/NAME, /usr/share/datasets/NAME, download)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the train/val/test split (default 0)",
    )
    p.add_argument(
        "--val-size",
        type=fraction_or_count,
        metavar="N|F",
        help="validation images: a count (10000) or a fraction (0.1)",
    )
    p.add_argument(
        "--test-size",
        type=fraction_or_count,
        metavar="N|F",
        help="test images when the set has no official test split (default 0.15)",
    )
    add_image_options(p)
    p.add_argument(
        "--no-download", action="store_true", help="never download; fail if the files are missing"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_image_options(p) -> None:
    """``--size``, ``--color`` and ``--fit``: how image files are brought to one array shape
    (shared by every command that loads a dataset to train or inspect)."""
    p.add_argument(
        "--size",
        metavar="HxW",
        help="resize images, e.g. 28 or 32x32 (default: as stored; a folder of image files: "
        "a working size from its images, median height and width, longest side at most 64)",
    )
    p.add_argument(
        "--color", choices=("grey", "rgb"), help="convert images (default: as stored; a folder "
        "is grey when every image is grey, else RGB)"
    )  # fmt: skip
    p.add_argument(
        "--fit",
        choices=("squash", "crop", "pad"),
        help="aspect policy when resizing: squash to the size (default), crop the centre, "
        "or pad the whole image with black; recorded in trained models",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="inspect datasets: counts, shapes, pixel statistics, sample grids",
        description="Inspect a dataset as objrec loads it: where it was found, its seeded "
        "stratified train/val/test split, and sample images.",
    )
    verbs = p.add_subparsers(dest="data_command", metavar="VERB")
    info = verbs.add_parser(
        "info",
        help="counts per split and class, image shape and dtype, pixel mean/std, location",
        description="Load a dataset and print where it was found, the image shape and dtype, "
        "the per-channel pixel mean/std of the training split (0..1 units) and a table of "
        "images per class and split.",
    )
    _add_dataset_args(info)
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=run_info)
    show = verbs.add_parser(
        "show",
        help="save a grid of sample images with their labels",
        description="Save a PNG grid of sample images (classes in turn) with their labels.",
    )
    _add_dataset_args(show)
    show.add_argument(
        "-o", "--output", default="grid.png", help="image file to write (default grid.png)"
    )
    show.add_argument(
        "--split", choices=("train", "val", "test"), default="train", help="split to draw from"
    )
    show.add_argument("--rows", type=positive_int, default=6, help="rows of the grid (default 6)")
    show.add_argument(
        "--cols", type=positive_int, default=10, help="columns of the grid (default 10)"
    )
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _load(args):
    import sys
    import warnings

    from objrec.data import load_dataset
    from objrec.data.listing import DatasetWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        ds = _load_quietly(args, load_dataset)
    for w in caught:
        if issubclass(w.category, DatasetWarning):
            print(f"objrec: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return ds


def _load_quietly(args, load_dataset):
    return load_dataset(
        args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        val_size=args.val_size,
        test_size=args.test_size,
        color=args.color,
        size=args.size,
        fit=args.fit,
        download=not args.no_download,
        progress=not args.quiet,
    )


def summary(ds) -> dict:
    """What ``objrec data info`` prints, as plain data."""
    import numpy as np

    mean, std = ds.channel_stats()
    k = len(ds.classes)
    counts = {name: s.class_counts(k).tolist() for name, s in ds.splits.items()}
    return {
        "name": ds.name,
        "source": ds.source,
        "classes": ds.classes,
        "image_shape": list(ds.image_shape),
        "dtype": str(ds.train.X.dtype),
        "channels": 1 if len(ds.image_shape) == 2 else int(ds.image_shape[-1]),
        "official_test": ds.official_test,
        "split_sizes": {name: len(s) for name, s in ds.splits.items()},
        "class_counts": counts,
        "train_mean": [round(float(m), 6) for m in mean],
        "train_std": [round(float(s), 6) for s in std],
        "pixel_range": [int(ds.train.X.min()), int(ds.train.X.max())] if len(ds.train) else None,
        "total": int(sum(np.sum(c) for c in counts.values())),
        "skipped": len(ds.skipped),
        "image": ds.image_spec().to_dict(),
        "image_note": ds.image_note,
    }


def format_summary(s: dict, seed: int) -> str:
    shape = s["image_shape"]
    mode = "grey" if s["channels"] == 1 else "RGB"
    hw = f"{shape[0]}x{shape[1]}"
    sizes = s["split_sizes"]
    if s["official_test"]:
        given = f"official split: {sizes['train'] + sizes['val']:,} train / {sizes['test']:,} test"
        how = f"test kept as published; val from train, stratified, seed {seed}"
    else:
        given = "one pool, no official split"
        how = f"stratified, seed {seed}"
    fmt = lambda v: ", ".join(f"{x:.4f}" for x in v)  # noqa: E731
    lines = [
        f"dataset   {s['name']}",
        f"found in  {s['source']}",
        f"images    {s['total']:,} ({given})",
        f"split     {sizes['train']:,} train / {sizes['val']:,} val / {sizes['test']:,} test  ({how})",
        f"shape     {hw} {mode}: {s['dtype']} array (N, {', '.join(map(str, shape))}), "
        f"values {s['pixel_range'][0]}..{s['pixel_range'][1]}",
        f"pixels    mean [{fmt(s['train_mean'])}]  std [{fmt(s['train_std'])}]  "
        "(training split, per channel, 0..1 units)",
    ]
    if s.get("image_note"):
        lines.append(f"size      {s['image_note']}")
    if s.get("image"):
        lines.append(f"fit       {s['image']['fit']} (transparency on {s['image']['background']})")
    if s["skipped"]:
        lines.append(f"skipped   {s['skipped']} unreadable file(s) (see the warning above)")
    names = s["classes"]
    width = max(5, *(len(n) for n in names))
    counts = s["class_counts"]
    head = f"{'class':<{width}}  {'train':>7} {'val':>7} {'test':>7} {'total':>7}"
    lines += ["", head, "-" * len(head)]
    for i, n in enumerate(names):
        row = [counts[k][i] for k in ("train", "val", "test")]
        lines.append(f"{n:<{width}}  {row[0]:>7,} {row[1]:>7,} {row[2]:>7,} {sum(row):>7,}")
    tot = [sizes[k] for k in ("train", "val", "test")]
    lines += [
        "-" * len(head),
        f"{'total':<{width}}  {tot[0]:>7,} {tot[1]:>7,} {tot[2]:>7,} {sum(tot):>7,}",
    ]
    return "\n".join(lines)


def run_info(args) -> int:
    ds = _load(args)
    s = summary(ds)
    if args.json:
        from objrec.io import to_json

        print(to_json(s))
    else:
        print(format_summary(s, args.seed))
    return 0


def sample_grid_indices(y, n_classes: int, n: int, seed: int = 0):
    """Up to ``n`` positions into ``y`` taking the classes in turn (class 0, 1, ..., 0, ...),
    each class's picks chosen by a seeded permutation."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)).tolist() for c in range(n_classes)]
    out: list[int] = []
    while len(out) < n and any(per_class):
        for members in per_class:
            if members and len(out) < n:
                out.append(members.pop(0))
    return out


def save_grid(ds, path, *, split: str = "train", rows: int = 6, cols: int = 10, seed: int = 0):
    """Draw ``rows x cols`` sample images of one split with their class names to ``path``."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from objrec.errors import DatasetError

    if rows < 1 or cols < 1:
        raise DatasetError("--rows and --cols must be at least 1")
    part = ds.splits[split]
    if not len(part):
        raise DatasetError(f"{ds.name}: the {split} split is empty")
    idx = sample_grid_indices(part.y, len(ds.classes), rows * cols, seed)
    rows = min(rows, -(-len(idx) // cols))
    h, w = ds.image_shape[:2]
    cell = 1.3
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * cell, rows * cell * max(0.6, h / w) + 0.5), squeeze=False
    )
    grey = len(ds.image_shape) == 2
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, idx, strict=False):
        ax.imshow(
            part.X[i], cmap="gray" if grey else None, vmin=0, vmax=255, interpolation="nearest"
        )
        ax.set_title(ds.classes[part.y[i]], fontsize=8)
    fig.suptitle(f"{ds.name}: {split} split, {len(part):,} images", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_show(args) -> int:
    ds = _load(args)
    path = save_grid(
        ds, args.output, split=args.split, rows=args.rows, cols=args.cols, seed=args.seed
    )
    print(f"wrote {path} ({ds.name}, {args.split} split)")
    return 0
