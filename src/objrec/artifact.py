"""The model artifact: one self-describing folder per trained model, for every method.

Layout::

    model/
      objrec.json          metadata: method, classes, input shape, preprocessing,
                           training data and metrics, library versions, weights file
      estimator.skops      scikit-learn pipelines (skops: no pickle, allow-listed types)
      weights.safetensors  networks (written by the estimator's own ``_save_artifact``)

Loading never executes code from the file: skops refuses any type outside the
allow-list below, safetensors holds only tensors, and the estimator class named in the
metadata must live in the ``objrec`` package.

Estimators may define ``_save_artifact(self, folder) -> dict`` (write their own weight
files, return extra metadata) and a classmethod ``_load_artifact(cls, folder, meta)``;
everything else is saved with skops.
"""

from __future__ import annotations

import datetime
import importlib
import platform
from pathlib import Path

from objrec.errors import ModelFileError
from objrec.io import read_json, write_json

META_NAME = "objrec.json"
SKOPS_NAME = "estimator.skops"
FORMAT = "objrec-model"
FORMAT_VERSION = 1
# Module roots whose types a .skops file may contain.
TRUSTED_MODULES = (
    "sklearn",
    "numpy",
    "scipy",
    "objrec",
    "builtins",
    "collections",
    "functools",
    "_operator",
)


def library_versions() -> dict[str, str]:
    """Versions of Python, objrec and the libraries a model depends on (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in (
        "objrec",
        "numpy",
        "scikit-learn",
        "scikit-image",
        "opencv-python-headless",
        "torch",
        "skops",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


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


def save(estimator, path, *, method: str | None = None, **metadata) -> Path:
    """Save a fitted estimator as a model folder at ``path``; returns the folder.

    ``metadata`` (e.g. ``preprocessing``, ``training``, ``metrics``) is stored in
    ``objrec.json`` beside what is read off the estimator itself.
    """
    if not hasattr(estimator, "classes_"):
        raise ModelFileError("cannot save an unfitted estimator: call fit(X, y) first")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cls = type(estimator)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method or getattr(estimator, "method_name", cls.__name__),
        "estimator": f"{cls.__module__}:{cls.__qualname__}",
        "params": _jsonable_params(estimator),
        "classes": [c.item() if hasattr(c, "item") else c for c in estimator.classes_],
        "input_shape": list(getattr(estimator, "input_shape_", ()) or ()),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
    }
    meta.update(metadata)
    if hasattr(estimator, "_save_artifact"):
        meta.update(estimator._save_artifact(folder))
    else:
        import skops.io as sio

        sio.dump(estimator, folder / SKOPS_NAME)
        meta["weights"] = SKOPS_NAME
    write_json(folder / META_NAME, meta)  # written last: a folder without it is incomplete
    return folder


ARCHIVE_MAX_BYTES = 4 << 30  # uncompressed size limit of a single-file model archive
ARCHIVE_MAX_FILES = 64


def pack(path, archive=None) -> Path:
    """Write the model at ``path`` (run or model folder) as one zip file; returns the file.

    ``archive`` defaults to ``<model folder>.zip``. Every command accepts the archive in
    place of the folder (it is unpacked, checked, into a cache folder first).
    """
    import zipfile

    folder = resolve(path)
    out = Path(archive) if archive else folder.with_suffix(".zip")
    files = sorted(f for f in folder.iterdir() if f.is_file())
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f.name)
    tmp.replace(out)
    return out


def _unpack(file: Path) -> Path:
    """Extract a model archive into a cache folder named by its SHA-256 (flat files only)."""
    import hashlib
    import tempfile
    import zipfile

    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:32]
    target = Path(tempfile.gettempdir()) / "objrec-models" / digest
    if (target / META_NAME).is_file():
        return target
    try:
        with zipfile.ZipFile(file) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            if (
                len(infos) > ARCHIVE_MAX_FILES
                or any("/" in n or "\\" in n or n in ("", ".", "..") for n in names)
                or sum(i.file_size for i in infos) > ARCHIVE_MAX_BYTES
            ):
                raise ModelFileError(
                    f"{file}: refusing to unpack: a model archive holds at most "
                    f"{ARCHIVE_MAX_FILES} flat files, {ARCHIVE_MAX_BYTES >> 30} GiB in all"
                )
            if META_NAME not in names:
                raise ModelFileError(f"{file}: not an objrec model archive (no {META_NAME})")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
            for n in names:
                (tmp / n).write_bytes(z.read(n))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(f"{file}: corrupt model archive ({e})") from e
    try:
        tmp.replace(target)
    except OSError:  # unpacked concurrently by another process: use theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(path) -> Path:
    """The model folder for ``path``: a model folder itself, a run folder holding ``model/``,
    or a single-file model archive (see :func:`pack`)."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".zip":
        return _unpack(p)
    for cand in (p, p / "model"):
        if (cand / META_NAME).is_file():
            return cand
    if not p.exists():
        raise ModelFileError(
            f"{p}: no such file or folder; give a run folder (runs/NAME) or its model/ folder"
        )
    raise ModelFileError(
        f"{p}: not an objrec model (no {META_NAME} in it or in {p / 'model'}); train one with objrec train"
    )


def model_folders(path) -> list[Path]:
    """The models behind ``path``: ``[path]`` for a model, run folder or archive; every
    ``methods/*/model`` folder for an ``objrec compare`` run folder."""
    root = Path(path)
    if (root / META_NAME).is_file() or (root / "model" / META_NAME).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"methods/*/model/{META_NAME}")) or [root]


def recorded_dataset(path, meta: dict) -> tuple[str | None, int]:
    """(dataset name, split seed) a model was trained on: from its metadata, else from the
    ``config.json`` of the run holding it (``objrec train`` run or ``objrec compare`` run)."""
    training = meta.get("training")
    if isinstance(training, dict) and training.get("dataset"):
        return str(training["dataset"]), int(training.get("seed") or 0)
    folder = Path(path)
    for cand in (folder, folder.parent, folder.parent.parent.parent):  # the run's own record
        try:
            cfg = read_json(cand / "config.json")
        except (OSError, ValueError):
            continue
        if isinstance(cfg, dict) and cfg.get("dataset"):
            return str(cfg["dataset"]), int(cfg.get("seed") or 0)
    for section in (meta.get("data"), meta):
        if isinstance(section, dict) and section.get("dataset"):
            return str(section["dataset"]), int(section.get("seed") or 0)
    return None, 0


def read_metadata(path) -> dict:
    """The metadata of the model at ``path`` (run folder or model folder), validated."""
    folder = resolve(path)
    try:
        meta = read_json(folder / META_NAME)
    except ValueError as e:
        raise ModelFileError(f"{folder / META_NAME}: corrupt metadata ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{folder / META_NAME}: not an objrec model file")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder}: written by a newer objrec (format {meta['format_version']}); upgrade objrec"
        )
    return meta


def _estimator_class(spec: str, folder: Path):
    """The class named ``module:Name`` in the metadata, imported only from objrec or scikit-learn."""
    mod, _, name = spec.partition(":")
    if mod.split(".", 1)[0] not in ("objrec", "sklearn") or not name.isidentifier():
        raise ModelFileError(
            f"{folder}: refusing to load estimator class {spec!r} from outside objrec"
        )
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ModelFileError(
            f"{folder}: estimator class {spec!r} is not available ({e}); pip install 'objrec[all]'"
        ) from e


def load(path):
    """Load the fitted estimator saved at ``path`` (a run folder or its model folder).

    The returned estimator carries the metadata as ``objrec_metadata_``.
    """
    folder = resolve(path)
    meta = read_metadata(folder)
    cls = _estimator_class(meta.get("estimator", ""), folder)
    if hasattr(cls, "_load_artifact"):
        est = cls._load_artifact(folder, meta)
    else:
        est = _load_skops(folder / meta.get("weights", SKOPS_NAME))
        if not isinstance(est, cls):
            raise ModelFileError(
                f"{folder}: holds a {type(est).__name__}, metadata says {meta['estimator']}"
            )
    est.objrec_metadata_ = meta
    return est


def _load_skops(file: Path):
    import skops.io as sio

    if not file.is_file():
        raise ModelFileError(f"{file}: missing; the model folder is incomplete")
    try:
        untrusted = sio.get_untrusted_types(file=file)
    except Exception as e:  # not a zip, truncated, bad schema
        raise ModelFileError(f"{file}: corrupt or not a skops file ({e})") from e
    refused = [t for t in untrusted if t.split(".", 1)[0] not in TRUSTED_MODULES]
    if refused:
        raise ModelFileError(
            f"{file}: refusing to load, it contains types outside the allow-list: {', '.join(refused)}"
        )
    try:
        return sio.load(file, trusted=untrusted)
    except Exception as e:
        raise ModelFileError(f"{file}: could not be loaded ({e})") from e
