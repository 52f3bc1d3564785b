"""``objrec segment train|evaluate|compare``: semantic, instance and panoptic segmentation
of scene sets (``mnist-scenes``, ``fashion-scenes``) or of users' own data (a folder of
``images/`` + ``masks/``, or a COCO JSON file: :mod:`objrec.data.segfolders`) with the
classic forest, SLIC superpixels and the U-Net.

Each verb writes a run folder (``runs/NAME``): ``config.json``, ``versions.json``,
``metrics.json`` (mIoU, per-class IoU, Dice, PQ/SQ/RQ per class, mask AP) and, for
``train``, the fitted segmenter in ``model/``. ``train unet`` also validates every epoch
and writes, as ``objrec train`` does, ``checkpoints/last.pt`` (every epoch) and
``best.pt`` (best validation pixel accuracy), ``history.csv``/``history.json``,
``loss.png`` and ``pixel_accuracy.png``; ``segment train --resume RUN [--epochs N]``
continues such a run from its last checkpoint. ``compare`` also writes ``report.html``
(and ``evaluate`` ``report-SPLIT.html``): right and wrong scenes as colour overlays, per-class
IoU bars, the PQ/SQ/RQ table, the methods side by side (:mod:`objrec.report.segmentation`).
"""

from __future__ import annotations

from objrec.cli_types import non_negative_int, positive_int

#: U-Net epochs when --epochs is not given
EPOCHS = 10


def _sizes(text: str) -> tuple[int, int, int]:
    import argparse

    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected TRAIN,VAL,TEST scene counts, got {text!r}")
    return parts  # type: ignore[return-value]


def _data_options(p, positional: bool = False) -> None:
    what = ("mnist-scenes (default), fashion-scenes, a folder of images/ + masks/ (index or "
            "grey PNGs, 255 = ignore; optional instances/, classes.txt) or a COCO JSON file")  # fmt: skip
    if positional:
        p.add_argument("data", nargs="?", metavar="DATA", help=what + " (as --dataset)")
    p.add_argument("--dataset", help=what)
    p.add_argument("--size", help="your own data: HxW to bring every image to (default their "
                   "own size, or the median scaled to at most 128 if they differ)")  # fmt: skip
    p.add_argument("--data-dir", help="folder holding the source IDX files (and, next to it, "
                   "cifar10-jpg.tar.gz)")  # fmt: skip
    p.add_argument("--sizes", type=_sizes, help="TRAIN,VAL,TEST scene counts (default the "
                   "set's 10000,1000,1000; smaller counts take the first scenes)")  # fmt: skip
    p.add_argument("--backgrounds", choices=("auto", "cifar10", "photos"), default="auto")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the scenes")


def _method_options(p) -> None:
    p.add_argument("--epochs", type=positive_int,
                   help=f"U-Net epochs (default {EPOCHS}; with --resume: the new total)")  # fmt: skip
    p.add_argument("--width", type=positive_int, default=16, help="U-Net base width (default 16)")
    p.add_argument("--max-seconds", type=float, help="U-Net: stop training after this long")
    p.add_argument("--grouping", choices=("centers", "watershed"),
                   help="U-Net: objects by watershed on the probabilities (watershed, the "
                   "default) or from a centre and offset head trained with the network "
                   "(centers; it slows the semantic head, BENCHMARKS.md)")  # fmt: skip
    p.add_argument("--trees", type=positive_int, default=30, help="forest: trees (default 30)")
    p.add_argument("--superpixels", type=positive_int, default=300,
                   help="slic: superpixels per image (default 300)")  # fmt: skip
    p.add_argument("--train-limit", type=non_negative_int, default=0,
                   help="fit on the first N training scenes only (0 = all)")  # fmt: skip


def _out_options(p) -> None:
    p.add_argument("--out", help="run folder (default runs/segment-...)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def register(sub) -> None:
    from objrec.segmentation import METHODS

    p = sub.add_parser(
        "segment",
        help="semantic / instance / panoptic segmentation of scene sets or your own images",
        description="Train, evaluate and compare segmentation methods (forest: per-pixel random "
        "forest on a filter bank; slic: SLIC superpixels and gradient boosting; unet: a small "
        "U-Net) on scene sets built from MNIST or Fashion-MNIST objects over real photos, or "
        "on your own images and masks. Metrics: pixel accuracy, per-class IoU, mIoU, "
        "Dice, panoptic quality PQ = SQ x RQ, COCO-style mask AP.",
    )
    verbs = p.add_subparsers(dest="segment_verb", metavar="VERB")
    from objrec.runs import add_resume_option

    t = verbs.add_parser("train", help="fit one method and evaluate it on the test scenes")
    t.add_argument("method", nargs="?", choices=METHODS, help="(with --resume: the run's)")
    _data_options(t, positional=True)
    _method_options(t)
    _out_options(t)
    add_resume_option(t)
    t.set_defaults(func=run_train)
    e = verbs.add_parser("evaluate", help="evaluate a trained segmenter (run or model folder)")
    e.add_argument("model", metavar="RUN|MODEL")
    _data_options(e, positional=True)
    e.add_argument("--split", choices=("test", "val", "all"), default="test",
                   help="scenes or images to evaluate on (all: every split of your own data)")  # fmt: skip
    e.add_argument("--grouping", choices=("centers", "watershed"),
                   help="U-Net: group objects this way instead of the model's own "
                   "(centers needs a network trained with its centre head)")  # fmt: skip
    _out_options(e)
    e.add_argument("--no-report", action="store_true",
                   help="skip report-SPLIT.html and its plots")  # fmt: skip
    e.set_defaults(func=run_evaluate)
    c = verbs.add_parser("compare", help="fit several methods on the same scenes, side by side")
    c.add_argument("methods", nargs="+", choices=METHODS)
    _data_options(c)
    _method_options(c)
    _out_options(c)
    c.add_argument("--no-report", action="store_true", help="skip report.html and the plots")
    c.set_defaults(func=run_compare)
    s = verbs.add_parser(
        "show", help="draw scenes: image and its semantic, instance and panoptic overlays"
    )
    _data_options(s)
    s.add_argument("--split", choices=("train", "val", "test"), default="test")
    s.add_argument("--n", type=positive_int, default=4, help="scenes to draw (default 4)")
    s.add_argument("--model", metavar="RUN|MODEL", help="also draw this segmenter's prediction")
    s.add_argument("--out", default="scenes.png", help="PNG file to write (default scenes.png)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=run_show)
    x = verbs.add_parser("export", help="write a trained U-Net to ONNX, with a parity check")
    x.add_argument("model", metavar="RUN|MODEL")
    x.add_argument("--out", default="segmenter.onnx", help="ONNX file (default segmenter.onnx)")
    x.add_argument("--side", type=positive_int, default=96, help="side of the check images")
    x.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _dataset(args) -> str:
    """The data named by DATA or --dataset (not both), default mnist-scenes."""
    from objrec.errors import ObjrecError

    data = getattr(args, "data", None)
    if data and args.dataset and data != args.dataset:
        raise ObjrecError(f"two data sets named: {data} and --dataset {args.dataset}; give one")
    return data or args.dataset or "mnist-scenes"


def _load(args, n_labels: int | None = None):
    """The scene set or the user's folder / COCO file that ``args`` name; ``n_labels``: the
    labels of the model that will be evaluated on it (user data only)."""
    from pathlib import Path

    from objrec.data.scenes import load_scene_set
    from objrec.data.segfolders import is_user_data, load_user_segmentation
    from objrec.errors import DatasetError

    name = _dataset(args)
    if is_user_data(name):
        return load_user_segmentation(name, size=args.size, n_labels=n_labels, seed=args.seed)
    if "/" in name or "\\" in name or Path(name).suffix.lower() == ".json":
        raise DatasetError(f"{name}: no such folder or COCO JSON file")
    return load_scene_set(
        name, data_dir=args.data_dir, seed=args.seed, sizes=args.sizes,
        backgrounds=args.backgrounds, progress=not args.quiet,
    )  # fmt: skip


def _split(data, name: str):
    """One split of ``data`` by name; ``all``: train, val and test together."""
    import numpy as np

    from objrec.data.scenes import SceneSplit

    if name != "all":
        return getattr(data, name)
    parts = (data.train, data.val, data.test)
    return SceneSplit(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("images", "semantic", "instances")))  # fmt: skip


def _make(args, method: str):
    from objrec.segmentation import make_segmenter

    if method == "unet":
        grouping = {"grouping": args.grouping} if getattr(args, "grouping", None) else {}
        return make_segmenter("unet", epochs=args.epochs, width=args.width,
                              max_seconds=args.max_seconds, progress=not args.quiet,
                              **grouping)  # fmt: skip
    if method == "slic":
        return make_segmenter("slic", n_segments=args.superpixels)
    return make_segmenter("forest", n_estimators=args.trees)


def predict_and_measure(seg, split, n_labels: int, **predict_kw) -> tuple[dict, tuple]:
    """Every metric of ``seg`` on a scene split, with predict time (seconds, per image),
    and its predictions (semantic uint8 (N, H, W), instances uint16 (N, H, W));
    ``predict_kw`` go to ``seg.predict_panoptic`` (the U-Net's ``grouping``)."""
    import time

    from objrec.evaluation.segmentation import segmentation_scores
    from objrec.segmentation.base import IGNORE

    start = time.perf_counter()
    sem, inst, scores = seg.predict_panoptic(split.images, **predict_kw)
    seconds = time.perf_counter() - start
    out = segmentation_scores(split.semantic, split.instances, sem, inst, n_labels, scores=scores,
                              ignore_index=IGNORE)  # fmt: skip
    out["predict_seconds"] = seconds
    out["predict_ms_per_image"] = 1000 * seconds / max(len(split), 1)
    return out, (sem, inst)


def measure(seg, split, n_labels: int) -> dict:
    """Every metric of ``seg`` on a scene split, with predict time (seconds, per image)."""
    return predict_and_measure(seg, split, n_labels)[0]


def _summary(name: str, m: dict) -> str:
    s, p, a = m["semantic"], m["panoptic"], m["mask_ap"]
    fit = f"{m['fit_seconds']:8.1f}" if "fit_seconds" in m else "       -"
    return (f"{name:8s} {s['miou']:6.3f} {s['pixel_accuracy']:6.3f} {p['pq']:6.3f} "
            f"{p['pq_things']:6.3f} {p['sq']:6.3f} {p['rq']:6.3f} {a['ap']:6.3f} {fit}")  # fmt: skip


HEADER = "method     mIoU  pixacc     PQ  PQthg     SQ     RQ mask-AP  fit (s)"


def _fit_and_measure(args, method: str, data, folder=None, run=None) -> tuple[dict, tuple]:
    """(metrics on the test scenes, with fit time; the test predictions). ``run``: the run
    folder of ``segment train``, where a U-Net validates every epoch and keeps its
    checkpoints and history (resuming from them with ``args.resume``)."""
    import time

    from objrec.errors import DatasetError

    tr = data.train
    if not len(tr) or not len(data.test):
        raise DatasetError(f"{_dataset(args)}: {len(tr)} training and {len(data.test)} test "
                           "images; training needs both (a folder needs at least 2 images)")  # fmt: skip
    seg = _make(args, method)
    n = args.train_limit or len(tr)
    start = time.perf_counter()
    if method == "unet":  # the centre head learns from the instance maps
        kw = {}
        if run is not None:
            from objrec.runs import CHECKPOINTS, last_checkpoint
            from objrec.training.callbacks import HistoryWriter

            ckpts = run / CHECKPOINTS
            seg.set_params(checkpoint_dir=str(ckpts),
                           resume=str(last_checkpoint(run)) if args.resume else None)  # fmt: skip
            va = data.val
            kw["callbacks"] = [HistoryWriter(run)]
            if len(va):
                kw["val"] = (va.images, va.semantic, va.instances)
        seg.fit(tr.images[:n], tr.semantic[:n], instances=tr.instances[:n], **kw)
        if run is not None and seg.history_:
            from objrec.training.plots import plot_history

            plot_history(seg.history_, run, title=f"unet on {data.name}", metric="pixel_accuracy",
                         loss="training loss")  # fmt: skip
    else:
        seg.fit(tr.images[:n], tr.semantic[:n])
    fit_seconds = time.perf_counter() - start
    m, pred = predict_and_measure(seg, data.test, data.n_labels)
    m.update(fit_seconds=fit_seconds, train_scenes=n, method=method)
    if folder is not None:
        seg.save(
            folder, dataset=args.dataset, split_seed=args.seed,
            class_names=["background", *data.classes],
            training={"n_train": n, "fit_seconds": fit_seconds, "sizes": args.sizes},
            metrics=_headline(m),
        )  # fmt: skip
    return m, pred


def _write_report(folder, data, split, split_name: str, results: dict, *,
                  file_name="report.html", plot_prefix=""):  # fmt: skip
    """Write the HTML report (:mod:`objrec.report.segmentation`) of ``results`` ({method:
    (metrics, (semantic, instances))}) on ``split``, the scenes of ``data`` named
    ``split_name``; its path."""
    from objrec.report.segmentation import SegmentationResult, write_segmentation_report

    items = [SegmentationResult(name, m, sem, inst) for name, (m, (sem, inst)) in results.items()]
    fits = {m.get("train_scenes") for m, _ in results.values()} - {None}
    info = {"backgrounds": data.backgrounds}
    if len(fits) == 1:
        info["training scenes"] = f"{fits.pop():,}"
    path = write_segmentation_report(
        folder, split, data.classes, items, dataset=data.name,
        split_name=split_name, info=info, file_name=file_name, plot_prefix=plot_prefix,
    )  # fmt: skip
    return path


def _headline(m: dict) -> dict:
    """The test metrics a model file records: mIoU, pixel accuracy, PQ, mask AP (None: NaN)."""
    import math

    out = {"miou": m["semantic"]["miou"], "pixel_accuracy": m["semantic"]["pixel_accuracy"],
           "pq": m["panoptic"]["pq"], "mask_ap": m["mask_ap"]["ap"]}  # fmt: skip
    return {k: (float(v) if math.isfinite(v) else None) for k, v in out.items()}


def _config(args, data) -> dict:
    cfg = {k: v for k, v in vars(args).items() if k != "func" and not callable(v)}
    cfg.update(classes=data.classes, backgrounds=data.backgrounds, source=data.source,
               scene_options=data.options)  # fmt: skip
    return cfg


#: the options ``segment train --resume`` leaves as they are; the others are the run's own
_NOT_RESUMED = ("resume", "out", "overwrite", "quiet", "epochs", "command", "segment_verb", "func")


def _resumed(args) -> None:
    """Set ``args`` to the options of the run ``args.resume`` continues (its
    ``config.json``), but for ``--epochs`` (when given: the new total) and ``--quiet``."""
    from objrec.errors import ObjrecError
    from objrec.runs import last_checkpoint, resume_config

    cfg = resume_config(args.resume, "segment train")
    if cfg.get("command") != "segment" or cfg.get("segment_verb") != "train":
        raise ObjrecError(
            f"--resume {args.resume}: not a run of objrec segment train; give a folder "
            "written by objrec segment train unet"
        )
    method = cfg.get("method")
    if method != "unet":
        raise ObjrecError(
            f"--resume {args.resume}: {method} is trained in one pass with no checkpoints to "
            f"continue from; train it again (objrec segment train {method})"
        )
    if args.method not in (None, method):
        raise ObjrecError(
            f"--resume {args.resume} continues a {method} run; leave out {args.method}"
        )
    if args.data or args.dataset:
        raise ObjrecError(f"--resume {args.resume} continues that run on its own data; leave out "
                          f"{args.data or args.dataset!r}")  # fmt: skip
    last_checkpoint(args.resume)
    for k, v in cfg.items():
        if hasattr(args, k) and k not in _NOT_RESUMED:
            setattr(args, k, v)
    if args.epochs is None:
        args.epochs = cfg.get("epochs") or EPOCHS


def run_train(args) -> int:
    import sys

    from objrec.errors import ObjrecError
    from objrec.io import write_json
    from objrec.runs import interrupted_note, open_run, write_run_info

    if args.resume:
        _resumed(args)
    elif args.method is None:
        raise ObjrecError("give a method (objrec segment train unet), or --resume RUN")
    args.epochs = args.epochs or EPOCHS
    data = _load(args)
    with open_run(args.resume or args.out, prefix=f"segment-{args.method}",
                  overwrite=args.overwrite, resume=bool(args.resume),
                  command="segment train") as folder:  # fmt: skip
        if not args.resume:
            write_run_info(folder, _config(args, data))
        try:
            m, _ = _fit_and_measure(args, args.method, data, folder / "model", run=folder)
        except KeyboardInterrupt:
            if args.method != "unet":
                raise
            print(interrupted_note(folder, "segment train"), file=sys.stderr)
            return 130
        write_json(folder / "metrics.json", m)
    print(HEADER)
    print(_summary(args.method, m))
    print(f"run folder: {folder}")
    return 0


def run_compare(args) -> int:
    from objrec.io import write_json
    from objrec.runs import open_run, write_run_info

    args.epochs = args.epochs or EPOCHS
    data = _load(args)
    results = {}
    report = None
    with open_run(args.out, prefix="segment-compare", overwrite=args.overwrite,
                  command="segment compare") as folder:  # fmt: skip
        write_run_info(folder, _config(args, data))
        for method in dict.fromkeys(args.methods):
            results[method] = _fit_and_measure(args, method, data, folder / method)
        write_json(folder / "metrics.json", {k: m for k, (m, _) in results.items()})
        if not args.no_report:
            report = _write_report(folder, data, data.test, "test", results)
    print(HEADER)
    for method, (m, _) in results.items():
        print(_summary(method, m))
    print(f"run folder: {folder}")
    if report:
        print(f"report: {report}")
    return 0


def run_show(args) -> int:
    from PIL import Image

    from objrec.segmentation.overlay import scene_picture

    data = _load(args)
    split = getattr(data, args.split)
    k = min(args.n, len(split))
    sem = inst = None
    if args.model:
        seg, _ = _load_model(args.model)
        sem, inst, _ = seg.predict_panoptic(split.images[:k])
    pic = scene_picture(split.images[:k], split.semantic[:k], split.instances[:k],
                        data.n_labels, sem, inst)  # fmt: skip
    Image.fromarray(pic).save(args.out)
    cols = "image | true semantic | true instances | true panoptic" + (
        " | predicted semantic | predicted instances | predicted panoptic" if args.model else ""
    )
    print(f"wrote {args.out} ({k} scenes; columns: {cols}; colours: objrec.segmentation.overlay)")
    return 0


def _load_model(model: str):
    """(the segmenter, its model folder) of a run folder, model folder or archive."""
    from objrec.artifact import resolve
    from objrec.segmentation import load_segmenter

    path = resolve(model)
    return load_segmenter(path), path


def _recorded_fit(path, method: str) -> dict:
    """``fit_seconds`` and ``train_scenes`` that the run which saved the model in ``path``
    recorded (``segment train``: ``RUN/metrics.json``; ``segment compare``: the method's
    entry of ``RUN/metrics.json``), or nothing."""
    import json

    try:
        m = json.loads((path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    if isinstance(m, dict) and "fit_seconds" not in m:
        m = m.get(method)
    if not isinstance(m, dict) or m.get("method", method) != method:
        return {}
    return {k: m[k] for k in ("fit_seconds", "train_scenes") if k in m}


def run_evaluate(args) -> int:
    from pathlib import Path

    from objrec.data.segfolders import is_user_data
    from objrec.errors import ObjrecError
    from objrec.io import write_json

    seg, path = _load_model(args.model)
    user = is_user_data(_dataset(args))
    data = _load(args, n_labels=seg.n_labels_ if user else None)
    if seg.n_labels_ != data.n_labels:
        raise ObjrecError(f"{args.model} predicts {seg.n_labels_} labels, {_dataset(args)} has "
                          f"{data.n_labels}")  # fmt: skip
    if args.split == "all" and not user:
        raise ObjrecError("--split all is for your own data; a scene set has test and val")
    split = _split(data, args.split)
    kw = {}
    if args.grouping:
        if seg.method != "unet":
            raise ObjrecError(f"--grouping is for the U-Net; {args.model} is a {seg.method}")
        kw["grouping"] = args.grouping
    m, pred = predict_and_measure(seg, split, data.n_labels, **kw)
    given = Path(args.model)
    if args.out:
        out = Path(args.out)
    elif given.is_file():  # an archive: beside it
        out = given.parent
    else:  # the run folder (the model folder's parent when given model/)
        out = path.parent if path.name == "model" else path
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"segmentation-{args.split}.json", m)
    report = None
    if not args.no_report:
        m = {**m, **_recorded_fit(path, seg.method)}
        report = _write_report(out, data, split, args.split, {seg.method: (m, pred)},
                               file_name=f"report-{args.split}.html",
                               plot_prefix=f"{args.split}-")  # fmt: skip
    print(HEADER)
    print(_summary(seg.method, m))
    if report:
        print(f"report: {report}")
    return 0


def run_export(args) -> int:
    import numpy as np

    from objrec.errors import ObjrecError
    from objrec.segmentation.export import onnx_parity, unet_to_onnx

    seg, _ = _load_model(args.model)
    path = unet_to_onnx(seg, args.out, side=args.side)
    probe = np.random.default_rng(0).integers(0, 256, (4, args.side, args.side, 3), np.uint8)
    r = onnx_parity(seg, path, probe)
    print(f"wrote {path}: max |p_onnx - p_torch| = {r['max_abs_diff']:.2e}, "
          f"argmax agreement {r['argmax_agreement']:.4f} on 4 random images")  # fmt: skip
    if r["max_abs_diff"] > 1e-3:
        raise ObjrecError(f"{path}: ONNX probabilities differ from PyTorch's by "
                          f"{r['max_abs_diff']:.2e} (> 1e-3)")  # fmt: skip
    if "offset_max_abs_diff" in r:
        print(f"centre head: max |heat_onnx - heat_torch| = {r['center_max_abs_diff']:.2e}, "
              f"max |offset_onnx - offset_torch| = {r['offset_max_abs_diff']:.2e} px")  # fmt: skip
        if r["center_max_abs_diff"] > 1e-3 or r["offset_max_abs_diff"] > 1e-2:
            raise ObjrecError(f"{path}: ONNX centre heatmap or offsets differ from PyTorch's "
                              "(> 1e-3, > 1e-2 px)")  # fmt: skip
    return 0
