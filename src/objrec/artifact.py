"""The model artifact: one self-describing folder per trained model, for every method.

Layout::

    model/
      objrec.json          metadata (:mod:`objrec.metadata`): method, classes, input shape,
                           preprocessing, training data and metrics, versions, weights file
      estimator.skops      scikit-learn pipelines (skops: no pickle, allow-listed types)
      weights.safetensors  networks (written by the estimator's own ``_save_artifact``)

Segmenters (:mod:`objrec.segmentation`, metadata ``task: "segment"``) use the same folder:
``objrec.json`` with ``classes`` the mask values 0..L-1, and their own weight file
(``forest.skops`` for the forest, ``slic.skops`` for SLIC, ``weights.safetensors`` for the
U-Net).

Loading never executes code from the file: skops refuses every type that is neither one
of its own safe defaults nor named exactly in :data:`objrec.skops_types.TRUSTED_TYPES`,
safetensors holds only tensors, the metadata is validated field by field, the estimator
class it names must be a scikit-learn estimator class from ``objrec`` or ``sklearn``, and
every file it names must lie inside the model folder.

Estimators may define ``_save_artifact(self, folder) -> dict`` (write their own weight
files, return extra metadata) and a classmethod ``_load_artifact(cls, folder, meta)``
(``meta`` a :class:`~objrec.metadata.ModelMetadata`; resolve files with
:func:`model_file`); everything else is saved with skops.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import shutil
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from objrec.errors import ModelFileError, ObjrecError
from objrec.io import default_file_mode, write_json
from objrec.metadata import FORMAT, FORMAT_VERSION, META_NAME, ModelMetadata, build
from objrec.metadata import read as _read_metadata
from objrec.skops_types import TRUSTED_TYPES

SKOPS_NAME = "estimator.skops"
__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_NAME",
    "SKOPS_NAME",
    "TRUSTED_TYPES",
    "load",
    "model_file",
    "model_folders",
    "pack",
    "read_metadata",
    "resolve",
    "save",
]


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


def _dir_mode() -> int:
    """The permission bits ``mkdir`` gives a new folder under the current umask (e.g. 0o755)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def save(estimator, path, *, method: str | None = None, **metadata) -> Path:
    """Save a fitted estimator as a model folder at ``path``; returns the folder.

    ``metadata`` is stored in ``objrec.json`` beside what is read off the estimator
    (see :func:`objrec.metadata.build`): ``dataset`` and ``split_seed`` (the data it was
    trained on), ``class_names`` (one per class, or the dataset's list indexed by label),
    ``training``, ``metrics``, ``preprocessing``, ``image``, ...

    The folder is written complete or not at all: everything goes to a temporary sibling
    folder first, which then replaces ``path`` (an earlier model there is replaced; any
    other non-empty folder is refused). A full disk gives :class:`ModelFileError` and
    leaves ``path`` as it was.
    """
    if not hasattr(estimator, "classes_"):
        fit = "fit(images, masks)" if getattr(estimator, "task", None) == "segment" else "fit(X, y)"
        raise ModelFileError(f"cannot save an unfitted estimator: call {fit} first")
    given = Path(path)
    folder = Path(os.path.abspath(given))
    if folder.exists() and not _replaceable(folder):
        raise ModelFileError(
            f"{folder}: exists and is not an objrec model folder; save into a new or empty folder"
        )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError as e:
        raise ModelFileError(f"{folder}: cannot create the model folder ({e.strerror or e})") from e
    try:
        if hasattr(estimator, "_save_artifact"):
            extra = dict(estimator._save_artifact(tmp))
            weights = extra.pop("weights", None)
        else:
            import skops.io as sio

            sio.dump(estimator, tmp / SKOPS_NAME)
            extra, weights = {}, SKOPS_NAME
        meta = build(
            estimator,
            method=method,
            weights=weights,
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            versions=library_versions(),
            **{**metadata, **extra},
        )
        write_json(tmp / META_NAME, meta.to_json())
        os.chmod(tmp, _dir_mode())
        _move_into_place(tmp, folder)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelFileError(
            f"{folder}: could not write the model ({e.strerror or e}); "
            "free some disk space or save it elsewhere"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return given


def _replaceable(folder: Path) -> bool:
    """True for an empty folder or an objrec model folder (which a new save replaces)."""
    if not folder.is_dir():
        return False
    return (folder / META_NAME).is_file() or not any(folder.iterdir())


def _move_into_place(tmp: Path, folder: Path) -> None:
    if not folder.exists():
        os.replace(tmp, folder)
        return
    if not any(folder.iterdir()):
        folder.rmdir()
        os.replace(tmp, folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    os.replace(folder, old / "model")
    try:
        os.replace(tmp, folder)
    except OSError:
        os.replace(old / "model", folder)  # put the previous model back
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def model_file(folder, name: str, field: str = "weights") -> Path:
    """The file ``name`` (from metadata field ``field``) inside model folder ``folder``.

    Refuses absolute paths, ``..`` and links that lead out of the folder (or to the folder
    itself) with :class:`ModelFileError`; returns the resolved path.
    """
    folder = Path(folder)
    where = f"{folder / META_NAME}: field {field!r}"
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ModelFileError(f"{where} must name a file inside the model folder, got {name!r}")
    for flavour in (PurePosixPath(name), PureWindowsPath(name)):
        if flavour.is_absolute() or flavour.anchor or ".." in flavour.parts:
            raise ModelFileError(
                f"{where} names {name!r}, outside the model folder; a model may only use its own files"
            )
    root = folder.resolve()
    try:
        target = (root / name).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise ModelFileError(f"{where}: cannot resolve {name!r} ({e})") from e
    if target == root or not target.is_relative_to(root):
        raise ModelFileError(
            f"{where} names {name!r}, which leads outside the model folder (a link?); "
            "a model may only use its own files"
        )
    return target


# ------------------------------------------------------------------ archives
ARCHIVE_MAX_BYTES = 4 << 30  # uncompressed size limit of a single-file model archive
ARCHIVE_MAX_FILES = 64
ARCHIVE_MAX_DEPTH = 4  # folder levels inside an archive (a wrapped model is one level)
_UNPACKED: dict[str, Path] = {}  # archive SHA-256 -> the private folder this process made


def pack(path, archive=None) -> Path:
    """Write the model at ``path`` (run or model folder) as one zip file; returns the file.

    ``archive`` defaults to ``<model folder>.zip``. Every command accepts the archive in
    place of the folder (it is unpacked, checked, into a private temporary folder first).
    """
    import zipfile

    folder = resolve(path)
    out = Path(archive) if archive else folder.with_suffix(".zip")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f.relative_to(folder).as_posix())
        os.chmod(tmp, default_file_mode())
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"{out}: could not write the archive ({e.strerror or e})") from e
    return out


def _member_problem(info) -> str | None:
    """Why a zip member may not be unpacked, or None."""
    name = info.filename
    if "\\" in name or "\x00" in name or ":" in name or name.startswith("/"):
        return f"{name!r} is not a plain relative path"
    parts = name.rstrip("/").split("/") if not info.is_dir() else name[:-1].split("/")
    if any(p in ("", ".", "..") for p in parts) or len(parts) > ARCHIVE_MAX_DEPTH:
        return f"{name!r} is not a plain relative path"
    kind = (info.external_attr >> 16) & 0o170000
    if kind not in (0, 0o100000) and not (info.is_dir() and kind == 0o040000):
        return f"{name!r} is a link or special file"
    return None


def _unpack(file: Path) -> Path:
    """Extract a model archive into a fresh private folder (mode 0700) of this process.

    Every member is checked first (flat relative paths, no links, at most
    :data:`ARCHIVE_MAX_FILES` files and :data:`ARCHIVE_MAX_BYTES` in all, counted as
    actually decompressed). The folder is removed when the process exits.
    """
    import hashlib
    import zipfile
    import zlib

    try:
        if file.stat().st_size > ARCHIVE_MAX_BYTES:
            raise ModelFileError(
                f"{file}: refusing to unpack: larger than {ARCHIVE_MAX_BYTES >> 30} GiB"
            )
        with open(file, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise ModelFileError(f"{file}: cannot be read ({e.strerror or e})") from e
    known = _UNPACKED.get(digest)
    if known is not None and (known / META_NAME).is_file():
        return known
    tmp: Path | None = None
    try:
        with zipfile.ZipFile(file) as z:
            infos = z.infolist()
            files = [i for i in infos if not i.is_dir()]
            problems = [p for p in map(_member_problem, infos) if p]
            names = [i.filename for i in files]
            if len(files) > ARCHIVE_MAX_FILES:
                problems.append(f"{len(files)} files (at most {ARCHIVE_MAX_FILES})")
            if len(set(names)) != len(names):
                problems.append("a file name appears twice")
            if sum(i.file_size for i in files) > ARCHIVE_MAX_BYTES:
                problems.append(f"more than {ARCHIVE_MAX_BYTES >> 30} GiB unpacked")
            if problems:
                raise ModelFileError(f"{file}: refusing to unpack: {problems[0]}")
            if META_NAME not in names:
                raise ModelFileError(f"{file}: not an objrec model archive (no {META_NAME})")
            tmp = Path(tempfile.mkdtemp(prefix="objrec-model-"))  # mode 0700, ours alone
            total = 0
            for info in files:
                dest = tmp / info.filename
                dest.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with z.open(info) as src, open(dest, "xb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        total += len(chunk)
                        if written > info.file_size or total > ARCHIVE_MAX_BYTES:
                            raise ModelFileError(
                                f"{file}: refusing to unpack: {info.filename!r} decompresses "
                                "to more than its header says"
                            )
                        dst.write(chunk)
    except ModelFileError:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ) as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise ModelFileError(f"{file}: corrupt model archive ({e})") from e
    if not _UNPACKED:
        import atexit

        atexit.register(_remove_unpacked)
    _UNPACKED[digest] = tmp
    return tmp


def _remove_unpacked() -> None:
    for folder in _UNPACKED.values():
        shutil.rmtree(folder, ignore_errors=True)
    _UNPACKED.clear()


# ------------------------------------------------------------------ loading
def resolve(path) -> Path:
    """The model folder for ``path``: a model folder itself, a run folder holding ``model/``,
    or a single-file model archive (see :func:`pack`)."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".zip":
        return _unpack(p)
    for cand in (p, p / "model"):
        if (cand / META_NAME).is_file():
            return cand
    for cand in (p, p / "model"):
        if (cand / "segmenter.json").is_file():
            raise ModelFileError(
                f"{cand}: a segmenter saved by an earlier objrec (segmenter.json), before "
                "segmenters were saved as objrec models; train it again with objrec segment train"
            )
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


def read_metadata(path) -> ModelMetadata:
    """The validated metadata of the model at ``path`` (run folder, model folder or archive)."""
    return _read_metadata(resolve(path))


def recorded_dataset(path, meta: ModelMetadata) -> tuple[str | None, int]:
    """(dataset, split seed) a model was trained on: ``meta.dataset``, ``meta.split_seed``."""
    return meta.dataset, meta.split_seed


# Packages an estimator class may be imported from (importing nothing else, e.g. not
# objrec.__main__, whose import runs the CLI).
_ESTIMATOR_PACKAGES = ("objrec.methods", "objrec.evaluation", "objrec.segmentation", "sklearn")


def _estimator_class(spec: str, folder: Path):
    """The scikit-learn estimator class named ``module:Name`` in the metadata, imported only
    from objrec's methods, evaluation and segmentation packages or from scikit-learn."""
    from sklearn.base import BaseEstimator

    mod, _, name = spec.partition(":")
    parts = mod.split(".")
    if (
        not any(mod == p or mod.startswith(p + ".") for p in _ESTIMATOR_PACKAGES)
        or any(p.startswith("__") for p in parts)
        or not all(p.isidentifier() for p in name.split("."))
    ):
        raise ModelFileError(
            f"{folder / META_NAME}: field 'estimator': refusing to load estimator class "
            f"{spec!r} from outside objrec and scikit-learn"
        )
    try:
        obj = importlib.import_module(mod)
        for attr in name.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as e:
        raise ModelFileError(
            f"{folder / META_NAME}: field 'estimator': class {spec!r} is not available ({e}); "
            "pip install 'objrec[all]' or upgrade objrec"
        ) from e
    if not (isinstance(obj, type) and issubclass(obj, BaseEstimator) and obj.__module__ == mod):
        raise ModelFileError(
            f"{folder / META_NAME}: field 'estimator': {spec!r} is not an estimator class"
        )
    return obj


def _check_task(cls, meta: ModelMetadata, folder: Path) -> None:
    """The estimator class fits the metadata's ``task`` (and, for a segmenter, ``method``)."""
    task = getattr(cls, "task", "classify")
    if task != meta.task:
        raise ModelFileError(
            f"{folder / META_NAME}: field 'task' is {meta.task!r}, but {meta.estimator} is a "
            f"{task!r} model; the model file was edited"
        )
    method = getattr(cls, "method", None)
    if task == "segment" and meta.method != method:
        raise ModelFileError(
            f"{folder / META_NAME}: field 'method' is {meta.method!r}, but {meta.estimator} is "
            f"the {method!r} segmenter; the model file was edited"
        )


def _check_params(cls, meta: ModelMetadata, folder: Path) -> None:
    known = set(cls._get_param_names())
    unknown = sorted(set(meta.params) - known)
    if unknown:
        raise ModelFileError(
            f"{folder / META_NAME}: field 'params': {cls.__name__} takes no argument "
            f"{', '.join(map(repr, unknown[:5]))}; the model file was edited or is from "
            "another objrec version"
        )


def load(path):
    """Load the fitted estimator saved at ``path`` (a run folder, model folder or archive):
    a classifier, or a segmenter (metadata ``task: "segment"``) for segmentation models.

    The returned estimator carries the metadata (a :class:`~objrec.metadata.ModelMetadata`)
    as ``objrec_metadata_``. Anything wrong with the files raises :class:`ModelFileError`.
    """
    folder = resolve(path)
    meta = read_metadata(folder)
    cls = _estimator_class(meta.estimator, folder)
    try:
        _check_task(cls, meta, folder)
        _check_params(cls, meta, folder)
        if hasattr(cls, "_load_artifact"):
            est = cls._load_artifact(folder, meta)
        else:
            est = load_skops(model_file(folder, meta.weights or SKOPS_NAME))
            if not isinstance(est, cls):
                raise ModelFileError(
                    f"{folder}: holds a {type(est).__name__}, metadata says {meta.estimator}"
                )
            _check_classes(est, meta, folder)
        if meta.image is not None and meta.input_shape:
            from objrec.data.images import spec_for_model

            spec_for_model(meta, meta.input_shape)  # the decode policy fits the input shape
    except ObjrecError:
        raise
    except Exception as e:  # anything else a damaged file makes an estimator's loader raise
        raise ModelFileError(
            f"{folder}: could not be loaded ({type(e).__name__}: {str(e)[:300]})"
        ) from e
    est.objrec_metadata_ = meta
    return est


def _check_classes(est, meta: ModelMetadata, folder: Path) -> None:
    classes = getattr(est, "classes_", None)
    if classes is None:
        return
    have = [c.item() if hasattr(c, "item") else c for c in classes]
    if have != list(meta.classes):
        raise ModelFileError(
            f"{folder / META_NAME}: field 'classes' lists {len(meta.classes)} classes, the "
            f"estimator was trained on {len(have)} different ones"
        )


SKOPS_MAX_SCHEMA_BYTES = 256 << 20


def load_skops(file: Path):
    """The object in the skops file ``file``, after checking its unpacked size and that every
    type it holds is skops' default or in :data:`objrec.skops_types.TRUSTED_TYPES`.

    Raises ``ModelFileError`` for a corrupt, oversized or untrusted file.
    """
    import zipfile

    import skops.io as sio

    if not file.is_file():
        raise ModelFileError(f"{file}: missing; the model folder is incomplete")
    try:
        with zipfile.ZipFile(file) as z:
            schema = z.getinfo("schema.json").file_size
            total = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as e:
        raise ModelFileError(f"{file}: corrupt or not a skops file ({e})") from e
    if schema > SKOPS_MAX_SCHEMA_BYTES or total > ARCHIVE_MAX_BYTES:
        raise ModelFileError(f"{file}: refusing to load, it unpacks to too many bytes")
    try:
        untrusted = sio.get_untrusted_types(file=file)
    except Exception as e:  # not a zip, truncated, bad schema
        raise ModelFileError(f"{file}: corrupt or not a skops file ({str(e)[:300]})") from e
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelFileError(
            f"{file}: refusing to load, it contains types outside the allow-list: {', '.join(refused)}"
        )
    try:
        return sio.load(file, trusted=sorted(untrusted))
    except Exception as e:
        raise ModelFileError(f"{file}: could not be loaded ({str(e)[:300]})") from e
