"""Invariance by training: augment the training set with chosen nuisance families, for any
method, and the held-out-family protocol.

:class:`AugmentedFit` wraps any objrec estimator (classic or CNN): ``fit`` adds
``copies`` corrupted copies of the training images (each copy of each image gets one
family drawn from ``families`` at a severity drawn from ``severities``) and fits the
wrapped estimator on the enlarged set; prediction is the wrapped estimator's.

:func:`heldout_family_protocol` fits a method with and without augmentation and measures
both under every family, marking which ones were seen in training: the gain on trained
families shows what a method can learn from data, the gain (or loss) on held-out
families whether that learning transfers; a family a method already resists without
augmentation is one it has by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils.metaestimators import available_if

from objrec.errors import InputError
from objrec.evaluation import nuisances as nz
from objrec.methods.base import ImageClassifier


def augment(
    X,
    y,
    families: Sequence[str],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    copies: int = 1,
    *,
    keep_original: bool = True,
    rng: nz.Rng = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The training set with ``copies`` corrupted copies of every image appended.

    Each copy of each image gets a family drawn uniformly from ``families`` and a severity
    drawn uniformly from ``severities`` (a family's member nuisances are spread evenly, see
    :func:`~objrec.evaluation.nuisances.corrupt`).

    Returns
    -------
    X_aug : uint8 ((1 + copies) N, H, W[, C]) (copies N without ``keep_original``)
    y_aug : labels repeated to match
    """
    from objrec.validation import check_fit_input

    X, y = check_fit_input(X, y)
    fams = list(families)
    if not fams:
        raise InputError("augment: no families given; name at least one, e.g. families=['pose']")
    for f in fams:
        nz.resolve(f)
    sev = [nz.check_severity(int(s)) for s in severities]
    if not sev:
        raise InputError("augment: no severities given; use e.g. severities=(1, 2, 3)")
    if int(copies) < 1:
        raise InputError(f"augment: copies must be >= 1, got {copies}")
    gen = np.random.default_rng(rng)
    parts_X = [X] if keep_original else []
    parts_y = [y] if keep_original else []
    for _ in range(int(copies)):
        fam_of = gen.integers(0, len(fams), size=len(X))
        sev_of = gen.integers(0, len(sev), size=len(X))
        out = np.empty_like(X)
        for i, f in enumerate(fams):
            for k, s in enumerate(sev):
                idx = np.flatnonzero((fam_of == i) & (sev_of == k))
                if len(idx):
                    out[idx] = nz.corrupt(X[idx], f, s, gen)
        parts_X.append(out)
        parts_y.append(y)
    return np.concatenate(parts_X), np.concatenate(parts_y)


def _inner_has(attr: str):
    def check(self) -> bool:
        inner = getattr(self, "estimator_", None) or self.estimator
        return hasattr(inner, attr)

    return check


class AugmentedFit(ImageClassifier):
    """Fit ``estimator`` on its training set plus nuisance-corrupted copies.

    Parameters
    ----------
    estimator : an unfitted objrec estimator, or a method name for :func:`objrec.make_method`
    families : family or nuisance names to augment with (see ``nuisances.FAMILIES``)
    severities : severities drawn from, uniformly
    copies : corrupted copies per training image (the set grows ``1 + copies`` times)
    keep_original : keep the unchanged images in the training set
    random_state : seed of the corruption draws

    Attributes
    ----------
    estimator_ : the fitted wrapped estimator
    n_training_images_ : size of the augmented training set
    """

    def __init__(
        self,
        estimator=None,
        families: Sequence[str] = ("pose",),
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        copies: int = 1,
        keep_original: bool = True,
        random_state: int = 0,
    ):
        self.estimator = estimator
        self.families = families
        self.severities = severities
        self.copies = copies
        self.keep_original = keep_original
        self.random_state = random_state

    def _inner(self):
        if self.estimator is None:
            raise InputError(
                "AugmentedFit needs the estimator to wrap, e.g. "
                "AugmentedFit(objrec.make_method('hog-svm'), families=['pose'])"
            )
        if isinstance(self.estimator, str):
            from objrec import make_method

            return make_method(self.estimator)
        return clone(self.estimator)

    @property
    def method_name(self) -> str:
        inner = getattr(self, "estimator_", None)
        if inner is None:
            inner = self.estimator
        base = (
            inner if isinstance(inner, str) else getattr(inner, "method_name", type(inner).__name__)
        )
        fams = list(self.families) if not isinstance(self.families, str) else [self.families]
        return f"{base}+aug[{','.join(fams)}]"

    def fit(self, X, y, **fit_params):
        """Augment ``(X, y)`` and fit a clone of ``estimator`` on the result; returns self."""
        inner = self._inner()
        X, y = self._check_fit(X, y)
        fams = [self.families] if isinstance(self.families, str) else list(self.families)
        Xa, ya = augment(
            X,
            y,
            fams,
            self.severities,
            self.copies,
            keep_original=self.keep_original,
            rng=self.random_state,
        )
        self.estimator_ = inner.fit(Xa, ya, **fit_params)
        self.n_training_images_ = len(Xa)
        return self

    def predict(self, X):
        """The wrapped estimator's predictions."""
        return self.estimator_.predict(self._check_predict(X))

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X):
        """The wrapped estimator's class probabilities (when it has them)."""
        return self.estimator_.predict_proba(self._check_predict(X))

    @available_if(_inner_has("decision_function"))
    def decision_function(self, X):
        """The wrapped estimator's decision function (when it has one)."""
        return self.estimator_.decision_function(self._check_predict(X))

    # --- model artifact: the wrapped estimator is saved as a model folder of its own
    def _save_artifact(self, folder) -> dict[str, Any]:
        from objrec.artifact import save

        save(self.estimator_, Path(folder) / "estimator")
        fams = [self.families] if isinstance(self.families, str) else list(self.families)
        return {
            "wrapped_model": "estimator",
            "augmentation": {
                "families": fams,
                "severities": [int(s) for s in self.severities],
                "copies": int(self.copies),
                "keep_original": bool(self.keep_original),
                "random_state": self.random_state,
                "n_training_images": int(self.n_training_images_),
            },
        }

    @classmethod
    def _load_artifact(cls, folder, meta: dict) -> AugmentedFit:
        from objrec.artifact import load, model_file

        inner = load(model_file(folder, meta.get("wrapped_model", "estimator"), "wrapped_model"))
        aug = meta.get("augmentation", {})
        est = cls(
            estimator=clone(inner),
            families=aug.get("families", ["pose"]),
            severities=aug.get("severities", [1, 2, 3, 4, 5]),
            copies=aug.get("copies", 1),
            keep_original=aug.get("keep_original", True),
            random_state=aug.get("random_state", 0),
        )
        est.estimator_ = inner
        est.classes_ = inner.classes_
        est.input_shape_ = tuple(meta.get("input_shape") or getattr(inner, "input_shape_", ()))
        est.n_training_images_ = aug.get("n_training_images")
        return est


@dataclass
class HeldoutResult:
    """The held-out-family protocol's outcome: ``robustness`` holds both methods (plain
    and augmented) under every tested family; ``trained`` the families used in training."""

    method: str
    trained: list[str]
    held_out: list[str]
    robustness: Any  # RobustnessResult with methods [plain, augmented]

    def rows(self) -> list[dict[str, Any]]:
        """Per family: plain and augmented accuracy (mean over severities), gain, seen or held out."""
        r = self.robustness
        fam = r.family_accuracy()
        out = [
            {
                "family": "clean",
                "role": "-",
                "plain": float(r.clean_accuracy[0]),
                "augmented": float(r.clean_accuracy[1]),
                "gain": float(r.clean_accuracy[1] - r.clean_accuracy[0]),
            }
        ]
        for j, f in enumerate(r.families):
            out.append(
                {
                    "family": f,
                    "role": "trained" if f in self.trained else "held out",
                    "plain": float(fam[0, j]),
                    "augmented": float(fam[1, j]),
                    "gain": float(fam[1, j] - fam[0, j]),
                }
            )
        return out

    def format_table(self) -> str:
        """Text table of :meth:`rows` (accuracies in %, gain in points)."""
        lines = [
            f"{self.method}: trained with {', '.join(self.trained)}",
            f"{'family':<14}{'role':>10}{'plain':>8}{'augm.':>8}{'gain':>8}",
        ]
        for r in self.rows():
            lines.append(
                f"{r['family']:<14}{r['role']:>10}{100 * r['plain']:>8.1f}"
                f"{100 * r['augmented']:>8.1f}{100 * r['gain']:>+8.1f}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "trained": self.trained,
            "held_out": self.held_out,
            "rows": self.rows(),
            "robustness": self.robustness.to_dict(),
        }


def heldout_family_protocol(
    estimator,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    train_families: Sequence[str],
    test_families: Sequence[str] | None = None,
    train_severities: Sequence[int] = (1, 2, 3, 4, 5),
    severities: Sequence[int] = nz.SEVERITIES,
    copies: int = 1,
    seed: int = 0,
    plain=None,
    progress: bool = True,
) -> HeldoutResult:
    """Train ``estimator`` plainly and with augmentation by ``train_families``; measure both
    under ``train_families`` and the held-out ``test_families`` (default: every other family).

    ``plain`` may be an already fitted plain model on the same training set (saves a fit).
    """
    from objrec.evaluation.robustness import evaluate_robustness, method_label

    trained = [train_families] if isinstance(train_families, str) else list(train_families)
    for f in trained:
        nz.resolve(f)
    held = (
        list(test_families)
        if test_families is not None
        else [f for f in nz.list_families() if f not in trained]
    )
    if isinstance(estimator, str):
        from objrec import make_method

        estimator = make_method(estimator)
    name = method_label(estimator)
    if plain is None:
        plain = clone(estimator).fit(X_train, y_train)
    aug = AugmentedFit(
        clone(estimator),
        families=trained,
        severities=train_severities,
        copies=copies,
        random_state=seed,
    ).fit(X_train, y_train)
    result = evaluate_robustness(
        {name: plain, aug.method_name: aug},
        X_test,
        y_test,
        families=trained + [f for f in held if f not in trained],
        severities=severities,
        seed=seed,
        baseline=None,
        progress=progress,
    )
    return HeldoutResult(method=name, trained=trained, held_out=held, robustness=result)
