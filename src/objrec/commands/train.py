"""``objrec train DATASET --model NET | --method NAME ...``: train, validate, test once, write a run folder.

The run folder (``runs/NAME`` or ``--out DIR``) receives ``config.json``, ``versions.json``,
``history.csv``/``history.json`` and ``loss.png``/``accuracy.png`` (networks),
``checkpoints/last.pt``/``best.pt``, ``metrics.json`` (``val_accuracy``, ``test_accuracy``)
and ``model/`` (load it with ``objrec.load``). Under ``torchrun --nproc_per_node N`` the
same command trains data-parallel; rank 0 writes the files.
"""

from __future__ import annotations

import argparse

from objrec.cli_types import (
    fraction_or_count,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_fraction,
)

# Options forwarded to CNNClassifier (CLI dest -> parameter).
CNN_OPTIONS = (
    "recipe",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "warmup",
    "weight_decay",
    "label_smoothing",
    "augment",
    "min_steps",
    "class_weight",
    "early_stopping",
    "max_time",
    "init_from",
    "weights",
    "freeze_backbone",
    "device",
    "precision",
    "threads",
    "num_workers",
)
# Options that only networks take (besides CNN_OPTIONS, those another part may add); a
# classic method given one is refused. --class-weight is passed to classic methods whose
# classifier takes class weights.
NETWORK_ONLY = (
    *(o for o in CNN_OPTIONS if o != "class_weight"),
    "tensorboard",
)
DEVICES = ("auto", "cpu", "cuda")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a network or a classical method on a dataset; writes runs/NAME",
        description="Train on the training split, validate on the validation split every epoch, "
        "evaluate the test split once at the end. Networks: --model (objrec nets list); classical "
        "methods: --method (objrec methods list).",
    )
    p.add_argument("dataset", nargs="?", help="dataset name (digits, mnist, ...) or folder")
    p.add_argument("--data-dir", help="folder holding the dataset's files")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", help="network to train (simple_cnn, lenet5, resnet_small, mlp)")
    what.add_argument("--method", help="any registered method, e.g. hog-svm or simple_cnn")
    g = p.add_argument_group("network training (defaults: the network's recommended recipe)")
    g.add_argument(
        "--recipe",
        choices=["default", "seed", "airbench"],
        help="default: the network's best measured recipe (simple_cnn: one-cycle Adam 3e-3, "
        "batch 64; airbench: the airbench recipe); seed: the source notes' recipe (Adam 1e-3, "
        "batch 32, 5 epochs, constant rate); airbench: airbench94's CIFAR-10 recipe (its own "
        "loop, for --model airbench); the options below override single settings",
    )
    g.add_argument(
        "--epochs", type=positive_int, help="epochs to train (with --resume: the new total)"
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        help="images per optimiser step (default: the recipe's, at most a quarter of the images)",
    )
    g.add_argument(
        "--min-steps",
        type=non_negative_int,
        metavar="N",
        help="train at least N optimiser steps, whatever the data size (default 500; 0: epochs only)",
    )
    g.add_argument("--lr", type=positive_float, help="base learning rate")
    g.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    g.add_argument("--schedule", choices=["constant", "cosine", "onecycle"])
    g.add_argument("--warmup", type=non_negative_float, help="warm-up length in epochs")
    g.add_argument("--weight-decay", type=non_negative_float, help="L2 penalty (0 or more)")
    g.add_argument("--label-smoothing", type=unit_fraction, help="0 (none) up to, not including, 1")
    g.add_argument(
        "--augment",
        help="none, shift, default, flip, strong, objects, photo, auto, or key=value list "
        "(translate=2,rotate=10,scale=0.1,flip,cutout=8). Default: the network's recipe; "
        "pretrained networks use auto: colour (RGB) images get random horizontal flips and "
        "shifts of up to 1/8 of the side (photo), grey ones no flips (digits, text); small "
        "data also gets small shifts. Colour scans of text or digits: give --augment none",
    )
    g.add_argument(
        "--augment-families",
        nargs="+",
        metavar="FAMILY",
        help="any method: add training copies corrupted by these nuisance families or single "
        "nuisances (pose illumination deformation occlusion background noise blur, or "
        "e.g. rotate), severities 1-5 drawn at random",
    )
    g.add_argument(
        "--augment-copies",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --augment-families: corrupted copies per training image (default 1)",
    )
    g.add_argument(
        "--class-weight",
        choices=["balanced"],
        help="weight the loss against imbalance (networks; classic methods whose classifier "
        "takes class weights: the SVMs, logistic regression, random forests)",
    )
    g.add_argument(
        "--early-stopping",
        type=non_negative_int,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without val improvement; keep the best weights "
        "(default: on for small data; 0: off)",
    )
    g.add_argument(
        "--max-time",
        type=positive_float,
        metavar="SECONDS",
        help="training time budget: the schedule follows the clock, training stops when it is spent",
    )
    g.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start from this trained network (new head if the classes differ)",
    )
    g.add_argument(
        "--weights",
        metavar="FILE|URL#sha256=HEX",
        help="start the network from these weights (.safetensors or .pt; a URL is downloaded "
        "once, checked against its SHA-256 and cached in ~/.cache/objrec/weights)",
    )
    g.add_argument(
        "--freeze-backbone", action="store_true", help="with --init-from: train only the head"
    )
    g.add_argument(
        "--device",
        type=_device,
        default="auto",
        help="auto (CUDA when available), cpu, cuda or cuda:N",
    )
    g.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="bf16: mixed-precision training, also on CPUs with AMX or AVX512-BF16 "
        "(default auto: bf16 on CUDA, fp32 on CPU)",
    )
    g.add_argument("--threads", type=positive_int, help="CPU threads (default: the free cores)")
    g.add_argument(
        "--num-workers",
        type=non_negative_int,
        metavar="N",
        help="with --stream: image decoding processes (default: the cores, at most 4; 0: none)",
    )
    g.add_argument("--tensorboard", action="store_true", help="also log to RUN/tensorboard")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other method parameter (repeatable); values are parsed as JSON when possible",
    )
    d = p.add_argument_group("data")
    d.add_argument(
        "--val-size",
        type=fraction_or_count,
        metavar="F|N",
        help="validation split: a fraction between 0 and 1 (0.1) or a count of images (500)",
    )
    d.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="train on at most N images of the training split, stratified by class and "
        "seeded (a cheap try on a big dataset); validation and test splits stay whole",
    )
    from objrec.commands.data import add_image_options

    add_image_options(d)
    d.add_argument(
        "--stream",
        action="store_true",
        help="image folders too large for memory: networks decode batches from disk in "
        "worker processes instead of loading every image first",
    )
    from objrec.runs import add_resume_option

    o = p.add_argument_group("run")
    o.add_argument("--name", help="run name: writes runs/NAME (default: METHOD-DATE)")
    o.add_argument("--out", help="run folder to write instead of runs/NAME")
    add_resume_option(o)
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="--out names a folder holding another run: delete that run's files first",
    )
    o.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed for split, initialisation, order, augmentation",
    )
    o.add_argument(
        "--quiet", action="store_true", help="no progress bars, one line per epoch (for logs)"
    )
    p.set_defaults(func=run)


def _device(text: str) -> str:
    t = text.strip().lower()
    if t in DEVICES or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"{text!r}: choose auto, cpu, cuda or cuda:N")


def _check_device(device: str) -> None:
    """A CUDA device asked for must exist (a CPU-only PyTorch build has none)."""
    if not device.startswith("cuda"):
        return
    import torch

    from objrec.errors import ObjrecError

    if not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
        raise ObjrecError(
            f"--device {device}: this PyTorch has no CUDA device ({why}); "
            "use --device cpu or --device auto"
        )
    index = int(device[5:]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ObjrecError(
            f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )


def _default_network(dataset: str) -> str:
    """The network ``objrec train DATASET`` trains when none is named: for a folder of the
    user's images the pretrained network fine-tuned where objrec[pretrained] is installed
    (said on stderr), else simple_cnn (and always for named sets such as mnist)."""
    import sys
    from pathlib import Path

    from objrec.data import NAMES
    from objrec.evaluation.compare import PRETRAINED_DEFAULT
    from objrec.nets.weights import pretrained_available

    if dataset in NAMES or not Path(dataset).expanduser().is_dir():
        return "simple_cnn"
    if pretrained_available(PRETRAINED_DEFAULT):
        print(
            f"objrec: training {PRETRAINED_DEFAULT}: ImageNet-pretrained, fine-tuned on these "
            "images (--model simple_cnn trains a network from scratch)",
            file=sys.stderr,
        )
        return PRETRAINED_DEFAULT
    print(
        "objrec: training simple_cnn from scratch; pip install 'objrec[pretrained]' to "
        f"fine-tune the ImageNet-pretrained {PRETRAINED_DEFAULT} instead",
        file=sys.stderr,
    )
    return "simple_cnn"


def _working_cap(method: str) -> int | None:
    """Longest side of the working size a folder loads at for ``method``: a pretrained
    network's native input side (224), else the default (None: 64)."""
    from objrec.nets import list_models, model_info

    if method in list_models() and model_info(method).pretrained:
        return max(model_info(method).native_input[1:])
    return None


def _given(args, name: str) -> bool:
    """Whether option ``name`` was given (set to something other than its default)."""
    value = getattr(args, name, None)
    default = {"device": "auto", "precision": "auto"}.get(name)
    return value not in (None, False, default)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def make_estimator(method: str, params: dict):
    """The unfitted estimator of ``method`` with ``params``, checked without data: an unknown
    parameter names the valid ones, a wrong value says what scikit-learn expects."""
    import objrec
    from objrec.errors import ObjrecError

    try:
        est = objrec.make_method(method, **params)
    except TypeError as e:
        valid = sorted(objrec.make_method(method).get_params(deep=False))
        unknown = [k for k in params if k not in valid]
        if not unknown:
            raise ObjrecError(f"{method}: {e}") from e
        raise ObjrecError(
            f"{method} has no parameter {', '.join(map(repr, unknown))}; "
            f"valid --param names: {', '.join(valid)}"
        ) from e
    check_estimator_params(method, est)
    return est


def check_estimator_params(method: str, est) -> None:
    """Run the estimator's own parameter checks (``check_params`` of objrec's methods,
    scikit-learn's ``_validate_params``) and say what is wrong in one line."""
    from objrec.errors import ObjrecError

    try:
        from sklearn.utils._param_validation import InvalidParameterError
    except ImportError:  # pragma: no cover (older scikit-learn)
        InvalidParameterError = ValueError
    try:
        if hasattr(est, "check_params"):
            est.check_params()
        elif getattr(est, "_parameter_constraints", None):
            est._validate_params()
    except (InvalidParameterError, TypeError) as e:
        raise ObjrecError(f"{method}: {' '.join(str(e).split())}") from e


def _parse_params(items: list[str]) -> dict:
    import json

    from objrec.errors import ObjrecError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ObjrecError(f"--param {item!r}: expected KEY=VALUE, e.g. --param C=10")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _resolve_config(args: argparse.Namespace) -> dict:
    """The run's configuration: from the command line, or from the resumed run plus overrides."""
    from objrec.errors import ObjrecError
    from objrec.runs import last_checkpoint, resume_config

    if args.resume and args.dataset:
        raise ObjrecError(
            f"--resume {args.resume} continues that run on its own dataset; leave out {args.dataset!r}"
        )
    if args.resume:
        cfg = resume_config(args.resume, "train")
        if cfg.get("command") == "compare" or "params" not in cfg or "method" not in cfg:
            raise ObjrecError(
                f"--resume {args.resume}: a run of objrec {cfg.get('command', 'compare')} "
                "(several models), not of objrec train; resume continues one network's "
                "training: give a folder written by objrec train --model NET"
            )
        if cfg.get("approach") != "cnn":
            raise ObjrecError(
                f"--resume {args.resume}: {cfg['method']} is a classical method, trained in "
                "one pass with no checkpoints to continue from; train it again "
                f"(objrec train {cfg.get('dataset', 'DATASET')} --method {cfg['method']})"
            )
        last_checkpoint(args.resume)
        if args.epochs:
            cfg["params"]["epochs"] = args.epochs
        cfg["quiet"] = args.quiet
        if cfg["params"].get("device"):
            _check_device(cfg["params"]["device"])
        return cfg
    if not args.dataset:
        raise ObjrecError("give a dataset: objrec train digits --model simple_cnn")
    method = args.method or args.model or _default_network(args.dataset)
    from objrec.methods import method_spec

    spec = method_spec(method)
    if args.stream and (spec.approach != "cnn" or args.augment_families):
        why = "--augment-families" if spec.approach == "cnn" else f"{method} (a classical method)"
        raise ObjrecError(
            f"--stream: {why} needs every image in memory; drop --stream (--size makes "
            "the images smaller), or train a network (--model simple_cnn)"
        )
    params = {}
    if spec.approach == "cnn":
        params = {
            k: getattr(args, k)
            for k in CNN_OPTIONS
            if getattr(args, k) is not None and getattr(args, k) is not False
        }
        params["seed"] = args.seed
        _check_device(args.device)
    else:
        given = [_flag(k) for k in NETWORK_ONLY if _given(args, k)]
        if given:
            raise ObjrecError(
                f"{' '.join(given)}: network training option{'s' if len(given) > 1 else ''}; "
                f"{method} is a classical method (set its own parameters with --param KEY=VALUE)"
            )
        if args.class_weight:
            from objrec.methods import make_method

            if "class_weight" not in make_method(method).get_params(deep=False):
                raise ObjrecError(
                    f"--class-weight: {method} has no class weights; use a method with an SVM, "
                    "logistic regression or random forest (e.g. hog-svm), or a network"
                )
            params["class_weight"] = args.class_weight
    params.update(_parse_params(args.param))
    families = None
    if args.augment_families:
        from objrec.evaluation.nuisances import resolve

        for name in args.augment_families:
            resolve(name)  # an unknown name fails before any data is loaded
        families = {"families": list(args.augment_families), "copies": args.augment_copies}
    return {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "val_size": args.val_size,
        "limit": getattr(args, "limit", None),
        "size": args.size,
        "color": args.color,
        "fit": args.fit,
        "method": method,
        "approach": spec.approach,
        "params": params,
        "augment_families": families,
        "stream": bool(args.stream),
        "seed": args.seed,
        "tensorboard": args.tensorboard,
        "quiet": args.quiet,
    }


def _make_run_folder(args, cfg, stack) -> str:
    """Rank 0 creates the folder (or reopens it with --resume), holds its lock until
    ``stack`` closes, and tells the other ranks where it is."""

    from objrec.runs import open_run

    def open_folder() -> str:
        run = open_run(
            args.resume or args.out,
            name=args.name,
            prefix=cfg["method"],
            overwrite=getattr(args, "overwrite", False),
            resume=bool(args.resume),
            command="train",
        )
        return str(stack.enter_context(run))

    from objrec.training import distributed as ddp

    if not ddp.DistInfo.from_env().enabled:
        return open_folder()
    import torch.distributed as dist

    from objrec.training.runtime import pick_device

    # the group the network's training joins later: nccl for a CUDA device, gloo otherwise
    device = (cfg["params"].get("device") or "auto") if cfg["approach"] == "cnn" else "cpu"
    info = ddp.setup(pick_device(device))
    if args.resume:
        return open_folder() if info.is_main else args.resume
    box = [open_folder() if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run(args: argparse.Namespace) -> int:
    import contextlib

    with contextlib.ExitStack() as stack:  # holds the run folder's lock
        return _run(args, stack)


def _run(args: argparse.Namespace, stack) -> int:
    import sys
    import time
    from pathlib import Path

    import objrec
    from objrec.data import load_dataset
    from objrec.io import write_json
    from objrec.methods.base import method_warnings
    from objrec.progress import on_terminal
    from objrec.runs import CHECKPOINTS, interrupted_note, last_checkpoint, write_run_info
    from objrec.training.distributed import DistInfo, cleanup

    cfg = _resolve_config(args)
    dist_info = DistInfo.from_env()  # torchrun's RANK / WORLD_SIZE (a single process: rank 0)
    main = dist_info.is_main
    # the estimator and its parameters are checked before any data is loaded
    est = make_estimator(cfg["method"], cfg["params"])
    ds = load_dataset(
        cfg["dataset"], data_dir=cfg["data_dir"], seed=cfg["seed"], val_size=cfg["val_size"],
        size=cfg["size"], color=cfg["color"], fit=cfg.get("fit"), cap=_working_cap(cfg["method"]),
        progress=not cfg["quiet"] and main, stream=cfg.get("stream", False),
    )  # fmt: skip
    if main and ds.image_note:
        print(f"objrec: {ds.image_note}", file=sys.stderr)
    if cfg.get("limit"):
        from objrec.evaluation.compare import limit_train

        ds = limit_train(ds, cfg["limit"], cfg["seed"])
    _check_classes(ds)  # before the run folder exists
    folder = Path(_make_run_folder(args, cfg, stack))
    if main and not args.resume:
        write_run_info(
            folder,
            {
                **cfg,
                "dataset_source": ds.source,
                "classes": ds.classes,
                "image": ds.image_spec().to_dict(),
                "image_note": ds.image_note,
            },
        )
    is_net = cfg["approach"] == "cnn"
    if main:
        print(
            f"training {cfg['method']} on {ds.name}: {len(ds.train.y)} train / {len(ds.val.y)} val / "
            f"{len(ds.test.y)} test images -> {folder}",
            file=sys.stderr,
        )
    if is_net:
        est.set_params(
            checkpoint_dir=str(folder / CHECKPOINTS),
            # quiet or off a terminal (a log file): epoch lines, no bars
            verbose=1 if cfg["quiet"] or not on_terminal() else True,
            tensorboard=str(folder / "tensorboard") if cfg.get("tensorboard") else None,
            resume=str(last_checkpoint(folder)) if args.resume else None,
        )
    if cfg.get("augment_families"):
        from objrec.evaluation.augment import AugmentedFit

        aug = cfg["augment_families"]
        est = AugmentedFit(
            est, families=aug["families"], copies=aug["copies"], random_state=cfg["seed"]
        )
    t0 = time.perf_counter()
    if is_net:
        from objrec.training.callbacks import HistoryWriter

        try:
            est.fit(
                ds.train.X,
                ds.train.y,
                X_val=ds.val.X,
                y_val=ds.val.y,
                callbacks=[HistoryWriter(folder)],
            )
        except KeyboardInterrupt:
            if main:
                print(interrupted_note(folder, "train"), file=sys.stderr)
            return 130
    else:
        inner = getattr(est, "estimator", est)  # inside AugmentedFit
        chosen = inner.get_params(deep=False).get("verbose")
        if chosen is False and not cfg["quiet"]:
            inner.set_params(verbose=True)  # feature extraction's progress, this fit only
        with method_warnings(cfg["method"], inner.get_params(deep=False)):
            est.fit(ds.train.X, ds.train.y)
        if chosen is not None:
            inner.set_params(verbose=chosen)  # the saved model keeps the setting asked for
    seconds = time.perf_counter() - t0
    if dist_info.enabled:
        cleanup()
    if not main:
        return 0
    # The test split is used here, once, after training.
    val_acc = _accuracy(est, ds.val.X, ds.val.y) if len(ds.val.y) else None
    test_acc = _accuracy(est, ds.test.X, ds.test.y) if len(ds.test.y) else None
    metrics = {
        "dataset": ds.name,
        "method": cfg["method"],
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "train_seconds": seconds,
        "n_train": len(ds.train.y),
        "n_val": len(ds.val.y),
        "n_test": len(ds.test.y),
    }
    if is_net:
        from objrec.training.callbacks import write_history
        from objrec.training.plots import plot_history

        history = getattr(est, "estimator_", est).history_
        metrics["epochs"] = len(history)
        metrics["recipe"] = getattr(getattr(est, "estimator_", est), "recipe_", None)
        write_history(folder, history)
        plot_history(history, folder, title=f"{cfg['method']} on {ds.name}")
    test_metrics = _test_metrics(est, ds) if len(ds.test.y) else None
    if test_metrics is not None:
        write_json(folder / "evaluation-test.json", {"split": "test", "metrics": test_metrics})
        from objrec.report.plots import write_class_plots

        write_class_plots(test_metrics, folder, title=f"{cfg['method']} on {ds.name}")
    write_json(folder / "metrics.json", metrics)
    from objrec.serving.ood import input_statistics

    objrec.save(
        est,
        folder / "model",
        dataset=cfg["dataset"],
        split_seed=cfg["seed"],
        class_names=ds.classes,
        metrics=metrics,
        image=ds.image_spec().to_dict(),  # how predict/serve/evaluate decode images for it
        input_stats=input_statistics(ds.train.X),  # polarity and background, for predict's warning
    )
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    print(
        f"{cfg['method']} on {ds.name}: val_accuracy {fmt(val_acc)}  test_accuracy {fmt(test_acc)}  "
        f"({seconds:.1f}s) -> {folder}"
    )
    return 0


def _check_classes(ds) -> None:
    """At least two classes in the training split (a classifier needs two)."""
    import numpy as np

    from objrec.errors import DatasetError

    present = np.unique(np.asarray(ds.train.y))
    if len(present) < 2:
        only = ds.classes[int(present[0])] if len(present) else "none"
        raise DatasetError(
            f"{ds.name}: the training split holds one class ({only}); a classifier needs at "
            "least two: give a folder with one subfolder of images per class"
        )


def _test_metrics(est, ds) -> dict | None:
    """Every metric of the test split (confusion matrix, per class), for the plots."""
    from objrec.evaluation.metrics import encode, evaluate_predictions
    from objrec.metadata import class_names_for

    if hasattr(est, "predict_stream"):
        return None  # streamed images: decoded once more only for the accuracy above
    cls = est.classes_
    pred = est.predict(ds.test.X)
    names = class_names_for(cls, ds.classes)
    return evaluate_predictions(encode(ds.test.y, cls), encode(pred, cls), classes=names)


def _accuracy(est, X, y) -> float:
    """Accuracy on a split; streamed image files that cannot be decoded are left out (warned)."""
    import numpy as np

    if hasattr(est, "predict_stream"):
        pred, kept = est.predict_stream(X, skip_errors=True)
        return float(np.mean(pred == np.asarray(y)[kept]))
    return float(np.mean(est.predict(X) == y))
