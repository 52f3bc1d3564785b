"""Train several methods on one split, evaluate each once on the same test set, collect all.

:func:`compare` is what ``objrec compare`` runs. Every method is built by name with
:func:`objrec.make_method`, fitted on the training split (networks also get the
validation split, for per-epoch feedback and early stopping), evaluated once on the
test split with :func:`objrec.evaluation.metrics.evaluate_predictions`, timed and
weighed with :mod:`objrec.evaluation.cost`, and saved with :func:`objrec.save` in the
run folder::

    runs/NAME/
      config.json versions.json        what ran, with which libraries
      metrics.json                     best method (chosen on validation accuracy) and each method's summary
      comparison.csv comparison.json   the ranked table with cost columns
      methods/<method>/model/          the saved model
      methods/<method>/metrics.json    every metric (per class, confusion matrix, top losses...)
      methods/<method>/per_class.csv
      methods/<method>/history.csv     networks: per-epoch loss and accuracy
      plots/*.png                      every figure of the report
      report.html                      one self-contained file
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from objrec.errors import ObjrecError
from objrec.io import write_json

# One representative per approach, the strongest scratch network, then the pretrained
# network as features + classifier and fine-tuned (those two where objrec[pretrained] is
# installed).
DEFAULT_METHODS = (
    "hog-svm",
    "bovw-patch",
    "eigen",
    "simple_cnn",
    "resnet_small",
    "effnet-logreg",
    "efficientnet_lite0",
)
PRETRAINED_DEFAULT = "efficientnet_lite0"
# The baseline of the relative corruption error (added to the methods by --robustness).
ROBUSTNESS_BASELINE = "pixels-knn"
# Stand-ins when a default is not registered (tried in order, same approach).
FALLBACKS = {
    "bovw-patch": ("bovw-sift",),
    "resnet_small": ("lenet5",),
}

# Registered names that build the same estimator as another (same class, same parameters):
# alias -> the name kept. ``--methods all`` and lists naming both train it once.
ALIASES = {"hog-rbf": "hog-svm"}

# Per-method parameters for each budget. Only parameters that the estimator accepts
# (``get_params()``) are applied, so a preset never breaks a method that names them
# differently. ``epochs`` counts passes over the training split; ``lr`` is the base
# learning rate; ``batch_size`` images per optimiser step. Networks without an entry
# train with their default recipe (``objrec.training.recipes``), which already fits the
# step count, batch size and early stopping to the data size.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "lenet5": {"epochs": 5},
        "mlp": {"epochs": 5},
        "resnet_small": {"epochs": 4},
        # encoding costs patches x words: 400 words encode 4x faster than the default
        # 1,600 (on 10,000 CIFAR-10 images 64.8% against 65.1%; the gap grows with data)
        "bovw-patch": {"n_words": 400},
    },
    "full": {
        "simple_cnn": {"epochs": 15},
        "lenet5": {"epochs": 15},
        "mlp": {"epochs": 15},
        "resnet_small": {"epochs": 12},
    },
}
# Overrides on small training sets (under SMALL_TRAIN images); none for the networks,
# whose recipes raise small sets to a minimum number of optimiser steps themselves.
SMALL_TRAIN = 5000
SMALL_DATA: dict[str, dict[str, Any]] = {}
# The quick budget's bound on what a network costs on large images (a folder of photos
# at its working size of up to 64x64), see :func:`quick_network_params`:
# - a scratch network on small data trains at least ``min_steps`` optimiser steps (the step
#   floor); that floor is lowered so that it processes at most QUICK_TRAIN_PIXELS training
#   images x pixels per image (80M: 500 steps of 128 CIFAR images of 32x32 = 65M, ORL's 500
#   of 45 faces of 64x53 = 76M are within it; 500 of 128 images of 64x64 = 262M are not).
#   Data large enough to need no floor (epochs x batches above it) is unchanged;
# - the pretrained feature extractor (effnet-logreg) runs at most at QUICK_PRETRAINED_SIDE
#   pixels (its native 224 in the full budget): half the computation of 224 per image, the
#   same accuracy on CIFAR-10 (``nets.registry.pretrained_input_side``); so is a
#   pretrained network that is fine-tuned (a training step at 160 costs half of one at
#   224, BENCHMARKS.md "Your own photos").
# - fine-tuning takes batches of QUICK_TUNE_BATCH images (its recipe's 32 otherwise): half
#   the activation memory (EfficientNet-Lite0 at 160: 1.2 GB against 2.3 GB of peak
#   resident memory) at about the same cost per image; the rate follows the batch.
# - scratch networks whose convolutions gain from bf16 train under bf16 autocast where
#   the CPU computes bf16 in hardware (``training.runtime.native_bf16``: AMX or
#   AVX512-BF16) and precision is left at "auto"; elsewhere in fp32, as outside the quick
#   budget. On the 256x256 photo folder (700 images at 64x64, 2 threads) simple_cnn fits in
#   12.0 s against 17.7 and resnet_small in 25.2 against 38.6, validation accuracy 54.7%
#   against 54.0% and 38.0% against 37.3%; on ORL 10.2 against 16.6 s and 20.7 against
#   30.9 s, validation 100% in both. EfficientNet-Lite0's fine-tuning, mostly depthwise
#   convolutions, is slower in bf16 (122 against 94 s) and stays in fp32.
QUICK_TRAIN_PIXELS = 80e6
QUICK_PRETRAINED_SIDE = 160
QUICK_TUNE_BATCH = 16
QUICK_BF16 = ("simple_cnn", "resnet_small")


@dataclass
class MethodResult:
    """One method's outcome: the fitted estimator, its metrics and its costs."""

    name: str
    approach: str
    description: str
    estimator: Any
    params: dict[str, Any]
    metrics: dict[str, Any]  # evaluate_predictions on the test split
    cost: dict[str, Any]
    val_accuracy: float | None
    test_pred: np.ndarray  # (N_test,) class indices
    test_proba: np.ndarray | None  # (N_test, K)
    folder: Path
    history: list[dict] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The method's line of the comparison table (scalars only)."""
        from objrec.evaluation.metrics import summary_row

        return {
            "method": self.name,
            "approach": self.approach,
            "test_accuracy": self.metrics["accuracy"],
            "val_accuracy": self.val_accuracy,
            **{k: v for k, v in summary_row(self.metrics).items() if k != "accuracy"},
            **self.cost,
        }


def resolve_methods(methods: list[str] | None) -> list[str]:
    """The method names to run: ``methods`` (validated; ``["all"]`` for every registered
    method) or the defaults that are available. A name of :data:`ALIASES` is dropped when
    the method it stands for is in the list too (``all`` keeps only the canonical name)."""
    from objrec.methods import list_methods, method_spec

    available = set(list_methods())
    if methods and [m.lower() for m in methods] == ["all"]:
        methods = [m for m in list_methods() if ALIASES.get(m) not in available]
    if methods:
        for m in methods:
            method_spec(m)  # clear error for unknown names
        names = list(dict.fromkeys(methods))
        return [m for m in names if ALIASES.get(m) not in names]
    from objrec.nets.weights import pretrained_available

    if not pretrained_available(PRETRAINED_DEFAULT):  # the network exists, its weights do not
        available.discard(PRETRAINED_DEFAULT)
    out = []
    for m in DEFAULT_METHODS:
        for cand in (m, *FALLBACKS.get(m, ())):
            if cand in available:
                out.append(cand)
                break
    if not out:
        raise ObjrecError(
            "no recognition method is available; pip install 'objrec[all]' and name methods "
            "with --methods"
        )
    return out


def budget_params(
    name: str,
    budget: str,
    estimator,
    n_train: int | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """The preset parameters of ``budget`` for method ``name`` that ``estimator`` accepts
    (with the :data:`SMALL_DATA` overrides when ``n_train`` < :data:`SMALL_TRAIN`, and in
    the quick budget :func:`quick_network_params` when ``n_train`` and ``image_shape``, the
    training images' (H, W[, C]), are given)."""
    if budget not in BUDGETS:
        raise ObjrecError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    preset = dict(BUDGETS[budget].get(name, {}))
    if n_train is not None and n_train < SMALL_TRAIN:
        preset.update(SMALL_DATA.get(name, {}))
    accepted = estimator.get_params(deep=False)
    preset = {k: v for k, v in preset.items() if k in accepted}
    if budget == "quick" and n_train and image_shape is not None:
        preset.update(quick_network_params(estimator, preset, int(n_train), image_shape))
    return preset


def quick_network_params(
    estimator, preset: dict[str, Any], n_train: int, image_shape: tuple[int, ...]
) -> dict[str, Any]:
    """The quick budget's cost bounds for a network (see :data:`QUICK_TRAIN_PIXELS`), as
    parameters of ``estimator`` on top of ``preset``; ``{}`` for other methods.

    ``n_train``: training images; ``image_shape``: their (H, W[, C]). Parameters the user
    sets (``compare(params=...)``) override these, as they override every preset.
    """
    params = estimator.get_params(deep=False)
    h, w = int(image_shape[0]), int(image_shape[1])
    out: dict[str, Any] = {}
    if "backbone" in params and "image_size" in params:  # pretrained features + classifier
        if params["image_size"] is None:
            out["image_size"] = _quick_side(params["backbone"], h, w)
        return out
    if not hasattr(estimator, "resolved_recipe"):
        return out
    from objrec.nets.registry import model_info
    from objrec.training.recipes import GLOBAL_DEFAULTS, plan_training

    info = model_info(params["model"])
    if estimator._fine_tunes_pretrained():  # at most QUICK_PRETRAINED_SIDE, QUICK_TUNE_BATCH
        args = dict(params.get("model_args") or {})
        if info.native_input and "image_size" not in args:
            side = _quick_side(params["model"], h, w)
            out["model_args"] = {**args, "image_size": (side, side)}
        rec = estimator.resolved_recipe()
        if params.get("batch_size") is None and rec["batch_size"] > QUICK_TUNE_BATCH:
            out["batch_size"] = QUICK_TUNE_BATCH
            if params.get("lr") is None:  # the square-root rule of plan_training's clipping
                out["lr"] = rec["lr"] * math.sqrt(QUICK_TUNE_BATCH / rec["batch_size"])
        return out
    if info.pretrained:
        return out
    if params.get("model") in QUICK_BF16 and params.get("precision") == "auto":
        from objrec.training.runtime import native_bf16

        if native_bf16():
            out["precision"] = "bf16"
    est = estimator.__class__(**{**params, **preset})
    rec = est.resolved_recipe()
    n_fit = n_train  # fit holds out no validation images: compare gives the split
    explicit = {k for k in GLOBAL_DEFAULTS if getattr(est, k) is not None}
    plan = plan_training(rec, n_fit, explicit=explicit, image_size=(h, w))
    per_step = plan.batch_size * h * w
    if plan.small and plan.total_steps * per_step > QUICK_TRAIN_PIXELS:
        steps = max(int(QUICK_TRAIN_PIXELS // per_step), plan.batches_per_pass)
        epoch_steps = int(rec["epochs"]) * plan.batches_per_pass
        if steps > epoch_steps:  # still a floor above the recipe's epochs
            out["min_steps"] = steps
    return out


def _quick_side(network: str, h: int, w: int) -> int:
    """A pretrained network's input side in the quick budget: its usual side for (h, w)
    images (``pretrained_input_side``), at most :data:`QUICK_PRETRAINED_SIDE`."""
    from objrec.nets.registry import model_info, pretrained_input_side

    info = model_info(network)
    native = info.native_input[1] if info.native_input else QUICK_PRETRAINED_SIDE
    return min(pretrained_input_side((h, w), native), QUICK_PRETRAINED_SIDE)


def _accepts_validation(estimator) -> bool:
    try:
        sig = inspect.signature(estimator.fit)
    except (TypeError, ValueError):
        return False
    return "X_val" in sig.parameters and "y_val" in sig.parameters


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt_csv(r.get(k)) for k in keys})


def _fmt_csv(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def evaluate_estimator(
    estimator,
    X: np.ndarray,
    y: np.ndarray,
    *,
    classes: list[str] | None = None,
    batch_size: int = 256,
    latency_images: int = 20,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Predict ``X`` once (timed, in batches) and compute every metric against labels ``y``.

    Returns ``(metrics, cost, outputs)``: metrics from
    :func:`~objrec.evaluation.metrics.evaluate_predictions`, cost with
    ``images_per_second``, ``batch_size``, ``latency_ms`` (one image) and
    ``predict_peak_mib``, outputs with ``pred`` (N,) class indices and ``proba`` or None.
    """
    from objrec.evaluation.cost import batched_predict, single_image_latency
    from objrec.evaluation.metrics import encode, evaluate_predictions

    out = batched_predict(estimator, X, batch_size=batch_size, progress=progress)
    cls = estimator.classes_
    y_idx = encode(y, cls)
    pred_idx = encode(out["pred"], cls)
    names = classes if classes is not None else [str(c) for c in cls]
    if len(names) != len(cls):
        # the dataset's names are indexed by label value; the model knows len(cls) of them
        names = [str(c) for c in cls]
    metrics = evaluate_predictions(
        y_idx, pred_idx, classes=names, proba=out["proba"], scores=out["scores"]
    )
    cost = {
        "images_per_second": out["images_per_second"],
        "batch_size": batch_size,
        "latency_ms": 1000 * single_image_latency(estimator, X, n=latency_images),
        "predict_peak_mib": out["predict_peak_mib"],
    }
    return metrics, cost, {"pred": pred_idx, "proba": out["proba"]}


def run_method(
    name: str,
    dataset,
    folder: Path,
    *,
    budget: str = "quick",
    params: dict[str, Any] | None = None,
    batch_size: int = 256,
    progress: bool = True,
    split_seed: int = 0,
) -> MethodResult:
    """Fit method ``name`` on ``dataset.train``, evaluate on ``dataset.test``, save under ``folder``."""
    from objrec.artifact import save
    from objrec.evaluation.cost import folder_size, timed_fit
    from objrec.metadata import class_names_for
    from objrec.methods import make_method, method_spec
    from objrec.serving.ood import input_statistics

    spec = method_spec(name)
    est = make_method(name)
    preset = budget_params(
        name, budget, est, len(dataset.train.y), tuple(dataset.train.X.shape[1:])
    )
    applied = {**preset, **(params or {})}
    if applied:
        est.set_params(**applied)
    if "verbose" in est.get_params(deep=False) and "verbose" not in applied:
        from objrec.progress import on_terminal

        # progress of long fits follows --quiet; off a terminal (a log file) networks
        # print one line per epoch (verbose=1) instead of redrawing a bar
        est.set_params(verbose=(True if on_terminal() else 1) if progress else False)
    fit_kw = {}
    if _accepts_validation(est) and len(dataset.val.y):
        fit_kw = {"X_val": dataset.val.X, "y_val": dataset.val.y}
    from objrec.methods.base import method_warnings

    with method_warnings(name, est.get_params(deep=False)):
        fit_cost = timed_fit(est, dataset.train.X, dataset.train.y, **fit_kw)
    names = class_names_for(est.classes_, getattr(dataset, "classes", None))
    val_acc = None
    if len(dataset.val.y):
        # a network measured its final weights on the validation split at the end of fit
        val_acc = getattr(est, "val_accuracy_", None) if "X_val" in fit_kw else None
        if val_acc is None:
            val_acc = float(np.mean(est.predict(dataset.val.X) == dataset.val.y))
    metrics, pred_cost, outputs = evaluate_estimator(
        est, dataset.test.X, dataset.test.y, classes=names, batch_size=batch_size
    )
    mfolder = folder / "methods" / name
    mfolder.mkdir(parents=True, exist_ok=True)
    model_dir = save(
        est,
        mfolder / "model",
        method=name,
        dataset=getattr(dataset, "name", None),
        split_seed=split_seed,
        class_names=names,
        training={
            "n_train": len(dataset.train.y),
            "n_val": len(dataset.val.y),
            "fit_seconds": fit_cost["fit_seconds"],
            "fit_peak_mib": fit_cost["fit_peak_mib"],
        },
        metrics={"test_accuracy": metrics["accuracy"], "val_accuracy": val_acc},
        # the training images' grey levels: predict/serve warn on inputs of the other polarity
        input_stats=input_statistics(dataset.train.X),
        **({"image": dataset.image_spec().to_dict()} if hasattr(dataset, "image_spec") else {}),
    )
    cost = {
        "fit_seconds": fit_cost["fit_seconds"],
        **{k: v for k, v in pred_cost.items()},
        "fit_peak_mib": fit_cost["fit_peak_mib"],
        "model_bytes": folder_size(model_dir),
    }
    history = list(getattr(est, "history_", []) or [])
    write_json(
        mfolder / "metrics.json",
        {
            "method": name,
            "approach": spec.approach,
            "params": applied,
            "test_accuracy": metrics["accuracy"],
            "val_accuracy": val_acc,
            "cost": cost,
            "memory_method": fit_cost["memory_method"],
            "test": metrics,
        },
    )
    _write_csv(mfolder / "per_class.csv", metrics["per_class"])
    if history:
        write_json(mfolder / "history.json", history)
        _write_csv(mfolder / "history.csv", history)
    return MethodResult(
        name=name,
        approach=spec.approach,
        description=spec.description,
        estimator=est,
        params=applied,
        metrics=metrics,
        cost=cost,
        val_accuracy=val_acc,
        test_pred=outputs["pred"],
        test_proba=outputs["proba"],
        folder=mfolder,
        history=history,
    )


def rank(results: list[MethodResult]) -> list[MethodResult]:
    """Results ordered by test accuracy, best first (ties: faster fit first)."""
    return sorted(results, key=lambda r: (-r.metrics["accuracy"], r.cost["fit_seconds"]))


def compare(
    dataset,
    *,
    methods: list[str] | None = None,
    budget: str = "quick",
    folder: str | os.PathLike,
    params: dict[str, dict[str, Any]] | None = None,
    robustness: bool = False,
    report: bool = True,
    batch_size: int = 256,
    progress: bool = True,
    log=print,
    split_seed: int = 0,
) -> dict[str, Any]:
    """Run the comparison on ``dataset`` (an :class:`objrec.data.Dataset`) into ``folder``.

    ``split_seed`` (the seed the dataset was split with) is recorded in each model's
    metadata so that later commands can rebuild the same test split.

    A method that fails with an :class:`~objrec.errors.ObjrecError` (for example images
    smaller than its patches) is skipped with its reason; the others go on.

    Returns a dict with ``results`` (list of :class:`MethodResult`, ranked), ``table``
    (list of row dicts), ``best`` (method chosen on validation accuracy), ``skipped``
    (method -> reason) and ``folder``.
    """
    folder = Path(folder)
    names = resolve_methods(methods)
    if robustness and ROBUSTNESS_BASELINE not in names:
        from objrec.methods import list_methods

        if ROBUSTNESS_BASELINE in list_methods():  # the reference of the corruption error
            names.append(ROBUSTNESS_BASELINE)
    if budget not in BUDGETS:
        raise ObjrecError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    from objrec.cpu import release_freed_memory
    from objrec.runs import lock_run_folder

    # Creates the folder; held (joining the lock of `objrec compare`) until this returns.
    folder_lock = lock_run_folder(folder, command="compare")
    try:
        t_start = time.perf_counter()
        results = []
        skipped: dict[str, str] = {}
        for i, name in enumerate(names):
            release_freed_memory()  # the methods' peaks do not add up
            log(f"[{i + 1}/{len(names)}] {name}: fitting on {len(dataset.train.y):,} images ...")
            try:
                r = run_method(
                    name,
                    dataset,
                    folder,
                    budget=budget,
                    params=(params or {}).get(name),
                    batch_size=batch_size,
                    progress=progress,
                    split_seed=split_seed,
                )
            except ObjrecError as e:  # e.g. images smaller than the method's patches: go on
                skipped[name] = str(e)
                log(f"[{i + 1}/{len(names)}] {name}: skipped, {e}")
                continue
            log(
                f"[{i + 1}/{len(names)}] {name}: test accuracy {r.metrics['accuracy']:.2%}, "
                f"fit {r.cost['fit_seconds']:.1f} s, {r.cost['images_per_second']:,.0f} img/s"
            )
            results.append(r)
        if not results:
            raise ObjrecError(
                "every method failed on this data: "
                + "; ".join(f"{n}: {why}" for n, why in skipped.items())
            )
        ranked = rank(results)
        table = [r.row() for r in ranked]
        with_val = [r for r in results if r.val_accuracy is not None]
        best = max(with_val, key=lambda r: r.val_accuracy) if with_val else ranked[0]
        write_json(folder / "comparison.json", table)
        _write_csv(folder / "comparison.csv", table)
        out: dict[str, Any] = {
            "results": ranked,
            "table": table,
            "best": best.name,
            "folder": folder,
            "robustness": None,
            "skipped": skipped,
        }
        if robustness:
            out["robustness"] = _run_robustness(ranked, dataset, folder, progress=progress, log=log)
        write_json(
            folder / "metrics.json",
            {
                "best_method": best.name,
                "best_chosen_on": "val_accuracy" if with_val else "test_accuracy",
                "test_accuracy": best.metrics["accuracy"],
                "val_accuracy": best.val_accuracy,
                "methods": {r.name: r.row() for r in ranked},
                "skipped": skipped,
                "seconds": time.perf_counter() - t_start,
            },
        )
        if report:
            from objrec.report.html import write_report

            log("writing the report ...")
            out["report"] = write_report(
                folder, dataset, ranked, robustness=out["robustness"], skipped=skipped
            )
        out["seconds"] = time.perf_counter() - t_start
        return out
    finally:
        folder_lock.release()  # now, not when a reference cycle holding it is collected


def _run_robustness(
    results: list[MethodResult], dataset, folder: Path, *, progress: bool = True, log=print
):
    """The invariance suite on every compared method (see :mod:`objrec.evaluation.robustness`)."""
    try:
        from objrec.evaluation import robustness as rob
    except ModuleNotFoundError as e:
        raise ObjrecError(f"the invariance suite is not available ({e})") from e
    log("robustness: every method under each nuisance family and severity ...")
    return rob.run_suite(
        {r.name: r.estimator for r in results},
        dataset.test.X,
        dataset.test.y,
        folder=folder / "robustness",
        progress=progress,
    )


def limit_train(dataset, n: int | None, seed: int = 0):
    """``dataset`` with its training split cut to at most ``n`` images, stratified by class
    and seeded (``--limit``); the validation and test splits are kept whole, so that scores
    stay comparable with full runs. ``None`` or ``n`` >= the split's size: unchanged."""
    import dataclasses

    from objrec.data.dataset import Split, take

    y = np.asarray(dataset.train.y)
    if n is None or n >= len(y):
        return dataset
    classes, counts = np.unique(y, return_counts=True)
    if n < len(classes):
        raise ObjrecError(
            f"--limit {n}: fewer images than the {len(classes)} classes; give at least "
            f"{len(classes)} (one per class)"
        )
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    stratify = y if counts.min() >= 2 else None
    _, keep = train_test_split(idx, test_size=n, random_state=seed, stratify=stratify)
    keep = np.sort(keep)
    return dataclasses.replace(dataset, train=Split(take(dataset.train.X, keep), y[keep]))


def load_results(folder: str | os.PathLike, dataset) -> list[MethodResult]:
    """The ranked results of the ``objrec compare`` run in ``folder``, read back from its
    ``methods/<name>/`` files (metrics, cost, history) with every model loaded and its test
    predictions recomputed on ``dataset`` (the run's dataset, split with its seed): what
    :func:`objrec.report.html.write_report` needs to draw the report again, e.g. with a
    robustness section added later by ``objrec robustness RUN``."""
    from objrec.artifact import load
    from objrec.evaluation.metrics import encode
    from objrec.io import read_json
    from objrec.methods import method_spec

    folder = Path(folder)
    results = []
    for mfile in sorted(folder.glob("methods/*/metrics.json")):
        mfolder = mfile.parent
        if not (mfolder / "model").is_dir():
            continue
        rec = read_json(mfile)
        est = load(mfolder / "model")
        try:
            description = method_spec(rec["method"]).description
        except ObjrecError:
            description = ""
        pred = est.predict(dataset.test.X)
        proba = est.predict_proba(dataset.test.X) if hasattr(est, "predict_proba") else None
        history = (
            read_json(mfolder / "history.json") if (mfolder / "history.json").is_file() else []
        )
        results.append(
            MethodResult(
                name=rec["method"],
                approach=rec.get("approach", "-"),
                description=description,
                estimator=est,
                params=rec.get("params") or {},
                metrics=rec["test"],
                cost=rec["cost"],
                val_accuracy=rec.get("val_accuracy"),
                test_pred=encode(pred, est.classes_),
                test_proba=proba,
                folder=mfolder,
                history=list(history),
            )
        )
    if not results:
        raise ObjrecError(f"{folder}: no compared methods found (methods/*/metrics.json)")
    return rank(results)
