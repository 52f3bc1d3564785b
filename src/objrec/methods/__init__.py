"""The recognition methods, built by name.

Every method is a scikit-learn classifier over uint8 images ``(N, H, W[, C])``:
``make_method("hog-svm").fit(X, y).predict(X)``. Modules register their factories with
:func:`register_method`; they are imported on first use so that listing methods does
not import PyTorch until a CNN is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from objrec.errors import ObjrecError

APPROACHES = ("features", "bovw", "eigen", "cnn")
_MODULES = (
    "objrec.methods.features",
    "objrec.methods.bovw",
    "objrec.methods.eigen",
    "objrec.methods.cnn",
    "objrec.methods.pretrained",
)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its factory, which of the four approaches it belongs to, one line."""

    name: str
    factory: Callable
    approach: str
    description: str


_REGISTRY: dict[str, MethodSpec] = {}
_UNAVAILABLE: dict[str, str] = {}  # module -> why it could not be imported
_loaded = False


def register_method(name: str, *, approach: str, description: str):
    """Decorator: register ``factory(**params) -> unfitted estimator`` under ``name``."""
    if approach not in APPROACHES:
        raise ValueError(f"approach must be one of {APPROACHES}, got {approach!r}")

    def deco(factory):
        _REGISTRY[name] = MethodSpec(name, factory, approach, description)
        return factory

    return deco


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:  # the module itself does not exist (yet)
                continue
            _UNAVAILABLE[mod] = f"needs the missing package {e.name!r} (pip install 'objrec[all]')"


def list_methods(approach: str | None = None) -> list[str]:
    """Names of the available methods, optionally only those of one approach."""
    _load_modules()
    return sorted(n for n, s in _REGISTRY.items() if approach is None or s.approach == approach)


def unavailable_methods() -> dict[str, str]:
    """Method modules that could not be imported (module name -> why, e.g. a missing extra)."""
    _load_modules()
    return dict(_UNAVAILABLE)


def method_spec(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered under ``name`` (clear error for unknown names)."""
    _load_modules()
    if name not in _REGISTRY:
        extra = "".join(
            f"; {m.rsplit('.', 1)[-1]} methods {why}" for m, why in _UNAVAILABLE.items()
        )
        raise ObjrecError(f"unknown method {name!r}; available: {', '.join(list_methods())}{extra}")
    return _REGISTRY[name]


def make_method(name: str, **params):
    """An unfitted estimator for method ``name`` with ``params`` overriding its defaults."""
    return method_spec(name).factory(**params)
