"""The metadata of a model folder (``objrec.json``): one typed, versioned schema.

:class:`ModelMetadata` is the only representation of a model's metadata in objrec;
:meth:`ModelMetadata.to_json` is its one writer and :func:`parse` (used by
:func:`read`) its one reader, which validates every field it knows and raises
:class:`~objrec.errors.ModelFileError` naming the field that is wrong. Format 1 (objrec
before this schema) is read through :func:`_migrate_v1`.

Format 3, field by field (``objrec.json`` is one JSON object)::

    format          "objrec-model"
    format_version  3 (formats 1 and 2, classifiers only, are read too)
    task            "classify" (one label per image) | "segment" (a label per pixel); a
                    file without it (format 1, 2) is a classifier
    method          str: the method's registered name ("hog-svm", "simple_cnn"; segmenters:
                    "forest", "unet", ...)
    estimator       "module:Qualname" of the estimator class (objrec or scikit-learn)
    params          {str: JSON}: the estimator's constructor arguments
    classes         [int | str, ...]: estimator.classes_, unique, 1..MAX_CLASSES;
                    segmenters: the mask values [0, 1, ..., L - 1] (0 = background, L >= 2)
    class_names     [str, ...] | null: human-readable names, class_names[i] names classes[i]
    input_shape     [H, W] | [H, W, C] (C in 1, 3, 4) | []: the image shape the model takes;
                    H, W <= MAX_SIDE and H * W <= MAX_PIXELS; segmenters: [H, W, 3], the
                    size of the training scenes (images are brought to it when served)
    weights         str | null: the weight file, a path inside the model folder (null: the
                    estimator's own files, e.g. a wrapped model's folder)
    created         str | null (ISO 8601), versions {str: str}
    training        {...} | null: how the model was made. Known keys: dataset (str | null,
                    what load_dataset takes to rebuild the data), seed (int, the split
                    seed), n_train, n_val (int), fit_seconds, fit_peak_mib (number),
                    recipe (dict | null: the training recipe); other keys are kept
    metrics         {...} | null: free-form numbers (test_accuracy, ...)
    preprocessing   {...} | null: networks: mean, std (lists of floats, one per channel),
                    channels (int), input_size ([h, w]); other keys (fit, ...) are kept
    model_args      {...} | null: networks: name (str, a registered network) and its
                    constructor keyword arguments (num_classes, in_channels, input_size, ...);
                    never ``pretrained``/``weights`` (initial weights come from files or URLs)
    history         [{...}, ...]: per-epoch training history (networks)
    image           {...} | null: the decode/resize policy of input images (size [H, W],
                    color, fit "squash" | "crop" | "pad", ...); size is bounded, the rest kept
    ...             any other top-level key (e.g. an estimator's own ``augmentation``) is
                    kept verbatim in ``extra`` and written back unchanged

An exported model's quantisation record (:class:`QuantizationRecord`, key ``quantization``
in the ONNX metadata and in the export's side file ``<file>.json``)::

    precision           "int8"
    scheme              str: how it was quantised ("onnxruntime-static-qdq")
    calibration_images  int >= 1: training images the activation ranges were measured on
    test_images         int >= 1: images of the test split the checks ran on
    top1_agreement      number 0..1: fraction of test images where the quantised and the
                        float model give the same top-1 class
    accuracy_float      number 0..1 | null: test accuracy of the float model (null: no labels)
    accuracy_quantized  number 0..1 | null: test accuracy of the quantised model
    accuracy_loss_points number | null: 100 * (accuracy_float - accuracy_quantized)
    min_top1_agreement, max_accuracy_loss_points: the limits the export was held to

A :class:`ModelMetadata` is also a read-only mapping over its JSON form, so
``meta["method"]`` and ``meta.get("training")`` work as on the parsed file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from objrec.errors import ModelFileError

META_NAME = "objrec.json"
FORMAT = "objrec-model"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
TASKS = ("classify", "segment")
MAX_SIDE = 8192  # pixels per side of a model's input
MAX_PIXELS = 4096 * 4096  # H * W of a model's input
MAX_CLASSES = 100_000
MAX_META_BYTES = 32 << 20  # objrec.json larger than this is refused unread

_ESTIMATOR_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_KNOWN = {
    "format",
    "format_version",
    "task",
    "method",
    "estimator",
    "params",
    "classes",
    "class_names",
    "input_shape",
    "weights",
    "created",
    "versions",
    "training",
    "metrics",
    "preprocessing",
    "model_args",
    "history",
    "image",
}


@dataclass(frozen=True)
class ModelMetadata(Mapping):
    """A model's validated metadata (format 3); see the module docstring for each field."""

    method: str
    estimator: str
    classes: tuple
    weights: str | None = None
    input_shape: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    preprocessing: dict[str, Any] | None = None
    model_args: dict[str, Any] | None = None
    history: list = field(default_factory=list)
    image: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    task: str = "classify"
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------- derived facts
    @property
    def dataset(self) -> str | None:
        """What ``load_dataset`` takes to rebuild the training data (name or folder), or None."""
        return (self.training or {}).get("dataset")

    @property
    def split_seed(self) -> int:
        """The seed the training data was split with (0 when not recorded)."""
        return int((self.training or {}).get("seed") or 0)

    @property
    def display_names(self) -> list[str]:
        """One human-readable name per class, in the order of ``classes``."""
        if self.class_names is not None:
            return list(self.class_names)
        return [str(c) for c in self.classes]

    def require(self, *names: str, why: str = "") -> None:
        """Raise :class:`ModelFileError` naming the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) in (None, {}, ()):
                raise ModelFileError(
                    f"{META_NAME}: field {name!r} is missing{f' ({why})' if why else ''}; "
                    "the model file is incomplete or was edited"
                )

    # ------------------------------------------------------------- the writer
    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``objrec.json`` (format 3)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "method": self.method,
            "estimator": self.estimator,
            "params": dict(self.params),
            "classes": list(self.classes),
            "class_names": None if self.class_names is None else list(self.class_names),
            "input_shape": list(self.input_shape),
            "weights": self.weights,
            "created": self.created,
            "versions": dict(self.versions),
        }
        for name in ("training", "metrics", "preprocessing", "model_args", "image"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.history:
            out["history"] = list(self.history)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    # ------------------------------------------------------------- read-only mapping
    def _json(self) -> dict[str, Any]:
        cached = self.__dict__.get("_json_cache")
        if cached is None:
            cached = self.to_json()
            object.__setattr__(self, "_json_cache", cached)
        return cached

    def __getitem__(self, key: str):
        return self._json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json())

    def __len__(self) -> int:
        return len(self._json())


def class_names_for(classes, names=None) -> list[str]:
    """One human-readable name per class of ``classes`` (e.g. ``estimator.classes_``):
    from ``names`` when it fits (see :func:`aligned_class_names`), else the labels as strings."""
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    aligned = aligned_class_names(classes, names)
    return list(aligned) if aligned is not None else [str(c) for c in classes]


def aligned_class_names(classes: Sequence, names: Sequence | None) -> tuple[str, ...] | None:
    """Names aligned with ``classes`` from ``names``: either already one per class, or a
    dataset's class list indexed by label value (``names[c]`` for integer classes ``c``).
    None when ``names`` fits neither."""
    if names is None or isinstance(names, str | bytes):
        return None
    try:
        names = [str(n) for n in names]
    except TypeError:
        return None
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    ints = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    if ints and len(names) > len(classes) and all(0 <= c < len(names) for c in classes):
        return tuple(names[c] for c in classes)
    if len(names) == len(classes):
        if ints and all(0 <= c < len(names) for c in classes):
            return tuple(names[c] for c in classes)
        return tuple(names)
    return None


def build(
    estimator,
    *,
    method: str | None = None,
    weights: str | None,
    dataset: str | None = None,
    split_seed: int | None = None,
    class_names: Sequence | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    image: dict | None = None,
    created: str | None = None,
    versions: dict | None = None,
    **extra,
) -> ModelMetadata:
    """The metadata of fitted ``estimator`` (validated): what is read off the estimator
    itself, plus the data it was trained on and anything ``extra`` (e.g. ``preprocessing``,
    ``model_args``, ``history`` from a network's ``_save_artifact``).

    ``class_names``: one name per class, or the dataset's list indexed by label value.
    ``dataset``/``split_seed`` go to ``training`` (as ``dataset`` and ``seed``).
    """
    cls = type(estimator)
    classes = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
    training = dict(training or {})
    names = class_names if class_names is not None else training.pop("class_names", None)
    training.pop("class_names", None)
    if dataset is not None:
        training["dataset"] = str(dataset)
    if split_seed is not None:
        training["seed"] = int(split_seed)
    raw = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": getattr(cls, "task", "classify"),
        "method": method or getattr(estimator, "method_name", None) or cls.__name__,
        "estimator": f"{cls.__module__}:{cls.__qualname__}",
        "params": _jsonable_params(estimator),
        "classes": classes,
        "class_names": None if names is None else aligned_class_names(classes, names),
        "input_shape": [int(s) for s in (getattr(estimator, "input_shape_", ()) or ())],
        "weights": weights,
        "created": created,
        "versions": dict(versions or {}),
        "training": training or None,
        "metrics": metrics,
        "image": image,
        **extra,
    }
    if names is not None and raw["class_names"] is None:
        raise ModelFileError(
            f"class_names: {len(names)} names do not fit the model's {len(classes)} classes"
        )
    import json

    from objrec.io import to_json

    # what is written is exactly what is read back: the reader's checks, at save time
    return _Validator(
        "cannot save the model: its metadata", hint="fix the estimator or the values passed"
    ).metadata(json.loads(to_json(raw)))


def _jsonable_params(est) -> dict:
    import json

    out = {}
    for k, v in est.get_params(deep=False).items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out


# ----------------------------------------------------------------- the reader
def read(folder: str | Path) -> ModelMetadata:
    """The validated metadata of the model folder ``folder`` (its ``objrec.json``)."""
    import json
    import stat

    folder = Path(folder)
    file = folder / META_NAME
    try:
        info = file.stat()
        if not stat.S_ISREG(info.st_mode) or not file.resolve().is_relative_to(folder.resolve()):
            raise ModelFileError(
                f"{file}: must be a regular file inside the model folder (a link leading "
                "out of it, or a device, is refused)"
            )
        size = info.st_size
        if size > MAX_META_BYTES:
            raise ModelFileError(
                f"{file}: {size:,} bytes is too large for model metadata "
                f"(at most {MAX_META_BYTES >> 20} MiB)"
            )
        raw = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep
        raise ModelFileError(f"{file}: corrupt metadata ({str(e)[:200]})") from e
    except OSError as e:
        raise ModelFileError(f"{file}: cannot be read ({e.strerror or e})") from e
    return parse(raw, source=str(file), folder=folder)


def parse(raw: Any, *, source: str = META_NAME, folder: Path | None = None) -> ModelMetadata:
    """Validate a parsed ``objrec.json`` (format 1, 2 or 3) and return its :class:`ModelMetadata`.

    ``folder`` (the model folder) lets format 1 find the split seed in the run's
    ``config.json``, where ``objrec train`` recorded it then.
    Raises :class:`ModelFileError` naming the first field that is wrong.
    """
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelFileError(f"{source}: not an objrec model file")
    version = raw.get("format_version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        if _is_int(version) and version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source}: written by a newer objrec (format {version}); upgrade objrec"
            )
        raise ModelFileError(
            f"{source}: field 'format_version' is {_show(version)}; this objrec reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    if version == 1:
        raw = _migrate_v1(raw, folder)
    if version < 3 and "task" in raw:  # formats 1 and 2 knew only classifiers
        raise ModelFileError(
            f"{source}: field 'task' is not part of format {version}; the model file was edited"
        )
    return _Validator(source).metadata(raw)


def _migrate_v1(raw: dict, folder: Path | None) -> dict:
    """Format 1 -> 2: dataset and class names move to ``training.dataset``/``training.seed``
    and ``class_names`` (aligned with ``classes``)."""
    raw = dict(raw)
    training = raw.get("training")
    training = dict(training) if isinstance(training, dict) else {}
    data = raw.pop("data", None)
    data = data if isinstance(data, dict) else {}
    top_dataset = raw.pop("dataset", None)
    names = raw.pop("class_names", None)
    if names is None:
        names = training.get("class_names", data.get("classes"))
    training.pop("class_names", None)
    if not training.get("dataset"):
        # objrec train (format 1) recorded the dataset as given, and its seed, in the run's
        # config.json (model/ is a child of the run folder)
        cfg = _run_config(folder)
        if cfg.get("dataset"):
            training["dataset"], training["seed"] = cfg["dataset"], cfg.get("seed") or 0
        else:
            for section in (data, {"dataset": top_dataset, "seed": raw.get("seed")}):
                if isinstance(section.get("dataset"), str) and section["dataset"]:
                    training["dataset"] = section["dataset"]
                    training["seed"] = section.get("seed") or 0
                    break
    raw["training"] = training or None
    classes = raw.get("classes")
    aligned = aligned_class_names(classes, names) if isinstance(classes, list) else None
    raw["class_names"] = None if aligned is None else list(aligned)
    raw["format_version"] = FORMAT_VERSION
    return raw


def _run_config(folder: Path | None) -> dict:
    import json

    if folder is None:
        return {}
    for cand in (folder.parent, folder.parent.parent.parent):  # train run, compare run
        try:
            cfg = json.loads((cand / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(cfg, dict) and isinstance(cfg.get("dataset"), str):
            return cfg
    return {}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _is_real(v) -> bool:
    """A JSON number that is a finite float64 (what a mean, a std or a time must be)."""
    if not _is_number(v):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _show(v) -> str:
    try:
        text = repr(v)
    except ValueError:  # an integer too long to print
        return f"<{type(v).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


class _Validator:
    """Checks one parsed ``objrec.json``; every error names the file and the field."""

    def __init__(self, source: str, hint: str = "the model file is corrupt or was edited"):
        self.source = source
        self.hint = hint

    def fail(self, name: str, problem: str):
        raise ModelFileError(f"{self.source}: field {name!r} {problem}; {self.hint}")

    def typed(self, raw: dict, name: str, types, *, optional=True, default=None):
        if name not in raw or raw[name] is None:
            if optional:
                return default
            self.fail(name, "is missing")
        value = raw[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            self.fail(name, f"must be {_type_names(types)}, got {_show(value)}")
        return value

    def metadata(self, raw: dict) -> ModelMetadata:
        task = self.typed(raw, "task", str, default="classify")
        if task not in TASKS:
            self.fail("task", f"is {_show(task)}; objrec knows {', '.join(map(repr, TASKS))}")
        method = self.typed(raw, "method", str, optional=False)
        estimator = self.typed(raw, "estimator", str, optional=False)
        if not _ESTIMATOR_RE.match(estimator):
            self.fail("estimator", f"must name a class as 'module:Class', got {_show(estimator)}")
        params = self.typed(raw, "params", dict, default={})
        classes = self.classes(raw)
        names = self.typed(raw, "class_names", list)
        if names is not None:
            if len(names) != len(classes) or not all(isinstance(n, str) for n in names):
                self.fail("class_names", f"must be {len(classes)} strings, one per class")
            names = tuple(names)
        input_shape = self.input_shape(raw.get("input_shape"), "input_shape")
        if task == "segment":
            self.segmenter(classes, input_shape)
        weights = self.relative_path(raw, "weights")
        created = self.typed(raw, "created", str)
        versions = self.typed(raw, "versions", dict, default={})
        training = self.training(raw)
        metrics = self.typed(raw, "metrics", dict)
        preprocessing = self.preprocessing(raw, input_shape)
        model_args = self.model_args(raw, classes, input_shape)
        history = self.typed(raw, "history", list, default=[])
        if not all(isinstance(h, dict) for h in history):
            self.fail("history", "must be a list of objects, one per epoch")
        image = self.image(raw)
        extra = {k: v for k, v in raw.items() if k not in _KNOWN}
        return ModelMetadata(
            method=method,
            estimator=estimator,
            classes=classes,
            weights=weights,
            input_shape=input_shape,
            params=params,
            class_names=names,
            created=created,
            versions=versions,
            training=training,
            metrics=metrics,
            preprocessing=preprocessing,
            model_args=model_args,
            history=history,
            image=image,
            extra=extra,
            task=task,
        )

    def segmenter(self, classes: tuple, input_shape: tuple) -> None:
        """A segmenter's labels are the mask values 0..L-1 and it takes RGB images."""
        if len(classes) < 2 or list(classes) != list(range(len(classes))):
            self.fail(
                "classes",
                f"must be the mask values 0, 1, ..., L - 1 (L >= 2) of a segmenter, got "
                f"{_show(list(classes))}",
            )
        if len(input_shape) != 3 or input_shape[2] != 3:
            self.fail(
                "input_shape",
                f"must be [H, W, 3] for a segmenter (it takes RGB images), got "
                f"{_show(list(input_shape))}",
            )

    def classes(self, raw) -> tuple:
        classes = self.typed(raw, "classes", list, optional=False)
        if not 1 <= len(classes) <= MAX_CLASSES:
            self.fail("classes", f"must hold 1 to {MAX_CLASSES:,} labels, got {len(classes):,}")
        if all(_is_int(c) for c in classes) or all(isinstance(c, str) for c in classes):
            pass
        elif all(_is_number(c) for c in classes):
            pass
        else:
            self.fail("classes", "must be labels of one kind: all integers or all strings")
        if len(set(classes)) != len(classes):
            self.fail("classes", "holds the same label twice")
        return tuple(classes)

    def input_shape(self, shape, name: str, *, channels: bool = True) -> tuple[int, ...]:
        if shape is None:
            return ()
        if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
            self.fail(name, f"must be a list of integers, got {_show(shape)}")
        allowed = (0, 2, 3) if channels else (2,)
        if len(shape) not in allowed:
            self.fail(name, f"must be [H, W] or [H, W, C], got {_show(shape)}")
        if not shape:
            return ()
        h, w = shape[:2]
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or h * w > MAX_PIXELS:
            self.fail(
                name,
                f"is {_show(shape)}: sides must be 1..{MAX_SIDE} pixels and H * W at most "
                f"{MAX_PIXELS:,}",
            )
        if len(shape) == 3 and shape[2] not in (1, 3, 4):
            self.fail(name, f"has {shape[2]} channels; images have 1, 3 or 4")
        return tuple(shape)

    def relative_path(self, raw, name: str) -> str | None:
        value = self.typed(raw, name, str)
        if value is None:
            return None
        for flavour in (PurePosixPath(value), PureWindowsPath(value)):
            if not value or flavour.is_absolute() or flavour.anchor or ".." in flavour.parts:
                self.fail(name, f"must be a file inside the model folder, got {_show(value)}")
        if "\x00" in value:
            self.fail(name, f"must be a file inside the model folder, got {_show(value)}")
        return value

    def training(self, raw) -> dict | None:
        training = self.typed(raw, "training", dict)
        if training is None:
            return None
        for key in ("seed", "n_train", "n_val"):
            if training.get(key) is not None and not (
                _is_int(training[key]) and training[key] >= 0
            ):
                self.fail(
                    f"training.{key}", f"must be a whole number >= 0, got {_show(training[key])}"
                )
        for key in ("fit_seconds", "fit_peak_mib"):
            if training.get(key) is not None and not _is_real(training[key]):
                self.fail(f"training.{key}", f"must be a number, got {_show(training[key])}")
        if training.get("recipe") is not None and not isinstance(training["recipe"], dict):
            self.fail("training.recipe", f"must be an object, got {_show(training['recipe'])}")
        if training.get("dataset") is not None and not isinstance(training["dataset"], str):
            self.fail("training.dataset", f"must be a string, got {_show(training['dataset'])}")
        return training

    def preprocessing(self, raw, input_shape) -> dict | None:
        pre = self.typed(raw, "preprocessing", dict)
        if pre is None:
            return None
        channels = pre.get("channels")
        if channels is not None and not (_is_int(channels) and channels in (1, 3, 4)):
            self.fail("preprocessing.channels", f"must be 1, 3 or 4, got {_show(channels)}")
        for key in ("mean", "std"):
            if key not in pre:
                continue
            v = pre[key]
            if not isinstance(v, list) or not v or not all(_is_real(x) for x in v):
                self.fail(f"preprocessing.{key}", f"must be a list of numbers, got {_show(v)}")
            if channels is not None and len(v) != channels:
                self.fail(f"preprocessing.{key}", f"must hold {channels} values, one per channel")
        if "std" in pre and any(x <= 0 for x in pre["std"]):
            self.fail("preprocessing.std", "must be positive")
        if "input_size" in pre:
            size = self.input_shape(pre["input_size"], "preprocessing.input_size", channels=False)
            if input_shape and list(size) != list(input_shape[:2]):
                self.fail(
                    "preprocessing.input_size",
                    f"is {list(size)} but input_shape is {list(input_shape)}",
                )
        return pre

    def model_args(self, raw, classes, input_shape) -> dict | None:
        args = self.typed(raw, "model_args", dict)
        if args is None:
            return None
        if not isinstance(args.get("name"), str) or not args["name"]:
            self.fail("model_args.name", f"must name a network, got {_show(args.get('name'))}")
        if not all(isinstance(k, str) and k.isidentifier() for k in args):
            self.fail("model_args", "keys must be argument names")
        for key in ("pretrained", "weights"):  # initial weights, never part of a saved network
            if key in args:
                self.fail(
                    f"model_args.{key}",
                    "is not allowed: a saved network's weights come from its own weights file",
                )
        n = args.get("num_classes")
        if n is not None:
            if not _is_int(n) or n < 1:
                self.fail("model_args.num_classes", f"must be a whole number, got {_show(n)}")
            if n != len(classes):
                self.fail(
                    "classes",
                    f"holds {len(classes)} labels but the network has {n} outputs "
                    "(model_args.num_classes)",
                )
        c = args.get("in_channels")
        if c is not None and not (_is_int(c) and c in (1, 3, 4)):
            self.fail("model_args.in_channels", f"must be 1, 3 or 4, got {_show(c)}")
        if "input_size" in args:
            self.input_shape(args["input_size"], "model_args.input_size", channels=False)
        return args

    def image(self, raw) -> dict | None:
        image = self.typed(raw, "image", dict)
        if image is not None and image.get("size") is not None:
            self.input_shape(image["size"], "image.size", channels=False)
        return image


@dataclass(frozen=True)
class QuantizationRecord:
    """How a quantised export compares with its float model; see the module docstring."""

    precision: str
    scheme: str
    calibration_images: int
    test_images: int
    top1_agreement: float
    accuracy_float: float | None
    accuracy_quantized: float | None
    min_top1_agreement: float = 0.99
    max_accuracy_loss_points: float = 0.5

    def __post_init__(self):
        v = _Validator("quantization record", hint="the export's metadata is corrupt")
        if self.precision not in ("int8",):
            v.fail("precision", f"is {_show(self.precision)}, expected 'int8'")
        if not isinstance(self.scheme, str) or not self.scheme:
            v.fail("scheme", "must be a non-empty string")
        for name in ("calibration_images", "test_images"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                v.fail(name, f"is {_show(value)}, expected an integer >= 1")
        for name in ("top1_agreement", "accuracy_float", "accuracy_quantized"):
            value = getattr(self, name)
            if value is None and name != "top1_agreement":
                continue
            if not _is_real(value) or not 0 <= value <= 1:
                v.fail(name, f"is {_show(value)}, expected a number in 0..1")
        if (self.accuracy_float is None) != (self.accuracy_quantized is None):
            v.fail("accuracy_quantized", "accuracies are both given or both null")

    @property
    def accuracy_loss_points(self) -> float | None:
        """Test accuracy lost by quantising, in percentage points (negative: gained)."""
        if self.accuracy_float is None:
            return None
        return 100 * (self.accuracy_float - self.accuracy_quantized)

    @property
    def passed(self) -> bool:
        """Top-1 agreement and accuracy loss within the limits."""
        loss = self.accuracy_loss_points
        return self.top1_agreement >= self.min_top1_agreement and (
            loss is None or loss <= self.max_accuracy_loss_points + 1e-9
        )

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "accuracy_loss_points": self.accuracy_loss_points}

    @classmethod
    def from_json(cls, raw: Any) -> QuantizationRecord:
        """Parse :meth:`to_json`'s output; :class:`ModelFileError` names a wrong field."""
        if not isinstance(raw, dict):
            raise ModelFileError(f"quantization record: expected an object, got {_show(raw)}")
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - names - {"accuracy_loss_points"}
        if unknown:
            raise ModelFileError(f"quantization record: unknown fields {sorted(unknown)}")
        missing = names - set(raw) - {"min_top1_agreement", "max_accuracy_loss_points"}
        if missing:
            raise ModelFileError(f"quantization record: missing fields {sorted(missing)}")
        return cls(**{k: raw[k] for k in names if k in raw})

    def __str__(self) -> str:
        text = f"int8 ({self.scheme}, {self.calibration_images} calibration images): same top-1 as float for {self.top1_agreement:.2%} of {self.test_images} test images (limit {self.min_top1_agreement:.0%})"
        if self.accuracy_float is not None:
            text += (
                f", test accuracy {self.accuracy_float:.2%} float -> {self.accuracy_quantized:.2%} "
                f"int8 ({self.accuracy_loss_points:+.2f} points lost, limit {self.max_accuracy_loss_points})"
            )
        return text


def _tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types) -> str:
    names = {"str": "a string", "dict": "an object", "list": "a list", "int": "an integer"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in _tuple(types))


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_PIXELS",
    "MAX_SIDE",
    "META_NAME",
    "TASKS",
    "ModelMetadata",
    "QuantizationRecord",
    "aligned_class_names",
    "build",
    "class_names_for",
    "parse",
    "read",
]
