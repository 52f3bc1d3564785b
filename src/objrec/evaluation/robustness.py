"""The invariance suite: any fitted classifier measured under every nuisance family at
every severity, and the corruption error relative to a baseline.

Every method sees exactly the same corrupted images: the test set is corrupted once per
(family, severity) and handed to each estimator's ``predict``. The corruption of a family
is seeded by the suite's seed and the family's name only, so a family's images do not
depend on which other families run, and severities differ only in amount (see
:mod:`objrec.evaluation.nuisances`).

Corruption error, as ImageNet-C's mCE (Hendrycks & Dietterich, 2019) with the
``pixels-knn`` baseline in AlexNet's role::

    CE[m, f]  = sum_s err[m, f, s] / sum_s err[base, f, s]       (err = 1 - accuracy)
    mCE[m]    = mean_f CE[m, f]
    relCE[m, f] = sum_s (err[m, f, s] - clean_err[m]) / sum_s (err[base, f, s] - clean_err[base])
    relative mCE[m] = mean_f relCE[m, f]

Below 1 means fewer errors than the baseline under that nuisance; the relative form
measures only the accuracy *lost* to the nuisance, so a method that is better on clean
images does not look robust for that reason alone.
"""

from __future__ import annotations

import csv
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from objrec.errors import InputError
from objrec.evaluation import nuisances as nz
from objrec.io import write_json
from objrec.validation import check_images, check_labels

BASELINE = "pixels-knn"


# ------------------------------------------------------------------ the arithmetic


def corruption_error(errors, baseline_errors) -> np.ndarray:
    """Per-family corruption error: errors summed over severities over the baseline's.

    Parameters
    ----------
    errors : (..., F, S) error rates (0..1) of one or more methods
    baseline_errors : (F, S) error rates of the baseline

    Returns
    -------
    (..., F) float; NaN where the baseline makes no error at all on a family.
    """
    e = np.asarray(errors, dtype=float)
    b = np.asarray(baseline_errors, dtype=float)
    if e.shape[-2:] != b.shape:
        raise InputError(f"errors end in {e.shape[-2:]}, baseline errors are {b.shape}")
    den = b.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, e.sum(axis=-1) / np.where(den > 0, den, 1), np.nan)


def mean_corruption_error(errors, baseline_errors) -> np.ndarray:
    """mCE: :func:`corruption_error` averaged over families, (...,)."""
    return np.nanmean(corruption_error(errors, baseline_errors), axis=-1)


def relative_corruption_error(errors, clean_error, baseline_errors, baseline_clean_error):
    """Per-family relative CE: the accuracy lost to the nuisance (error minus clean error,
    summed over severities) over the baseline's loss. ``errors`` (..., F, S),
    ``clean_error`` (...,), ``baseline_errors`` (F, S), ``baseline_clean_error`` scalar.
    Returns (..., F); NaN where the baseline loses nothing."""
    e = np.asarray(errors, dtype=float)
    ce = np.asarray(clean_error, dtype=float)[..., None, None]
    b = np.asarray(baseline_errors, dtype=float)
    num = (e - ce).sum(axis=-1)
    den = (b - float(baseline_clean_error)).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


# ---------------------------------------------------------------------- the result


@dataclass
class RobustnessResult:
    """Accuracies of M methods under F families at S severities.

    ``accuracy[m, f, s]`` is the accuracy of ``methods[m]`` on the test set corrupted by
    ``families[f]`` at ``severities[s]``; ``clean_accuracy[m]`` on the unchanged test set.
    ``members[family] = (nuisance names, accuracy (M, k, S), counts (k, S))`` breaks a
    family down by the nuisance each image received. ``predict_seconds[method]`` is the
    time its ``predict`` took over the whole suite (clean set included).
    """

    methods: list[str]
    families: list[str]
    severities: list[int]
    accuracy: np.ndarray
    clean_accuracy: np.ndarray
    n_images: int
    seed: int = 0
    baseline: str | None = BASELINE
    members: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = field(default_factory=dict)
    predict_seconds: dict[str, float] = field(default_factory=dict)

    # --- summaries
    def family_accuracy(self) -> np.ndarray:
        """(M, F) accuracy averaged over severities."""
        return self.accuracy.mean(axis=2)

    def mean_accuracy(self) -> np.ndarray:
        """(M,) accuracy averaged over every family and severity."""
        return self.accuracy.mean(axis=(1, 2))

    def _baseline_index(self, baseline: str | None) -> int | None:
        name = self.baseline if baseline is None else baseline
        return self.methods.index(name) if name in self.methods else None

    def corruption_errors(self, baseline: str | None = None) -> np.ndarray | None:
        """(M, F) CE against ``baseline`` (default: the result's), None if it was not run."""
        b = self._baseline_index(baseline)
        if b is None:
            return None
        return corruption_error(1 - self.accuracy, 1 - self.accuracy[b])

    def mce(self, baseline: str | None = None) -> np.ndarray | None:
        """(M,) mean corruption error, None without the baseline."""
        ce = self.corruption_errors(baseline)
        return None if ce is None else np.nanmean(ce, axis=1)

    def relative_mce(self, baseline: str | None = None) -> np.ndarray | None:
        """(M,) relative mCE, None without the baseline."""
        b = self._baseline_index(baseline)
        if b is None:
            return None
        rel = relative_corruption_error(
            1 - self.accuracy,
            1 - self.clean_accuracy,
            1 - self.accuracy[b],
            1 - self.clean_accuracy[b],
        )
        return np.nanmean(rel, axis=1)

    # --- tables
    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per method: clean, each family (mean over severities), mean, mCE, relative mCE."""
        fam = self.family_accuracy()
        mean = self.mean_accuracy()
        mce, rmce = self.mce(), self.relative_mce()
        rows = []
        for m, name in enumerate(self.methods):
            row: dict[str, Any] = {"method": name, "clean": float(self.clean_accuracy[m])}
            row.update({f: float(fam[m, j]) for j, f in enumerate(self.families)})
            row["mean"] = float(mean[m])
            row["mCE"] = None if mce is None else _num(mce[m])
            row["relative_mCE"] = None if rmce is None else _num(rmce[m])
            rows.append(row)
        return rows

    def records(self) -> list[dict[str, Any]]:
        """Long form: one row per method x (family or single nuisance) x severity, clean
        accuracy as family ``clean`` at severity 0."""
        out = []
        for m, name in enumerate(self.methods):
            out.append(_record(name, "clean", "", 0, self.clean_accuracy[m], self.n_images))
            for j, f in enumerate(self.families):
                for k, s in enumerate(self.severities):
                    out.append(_record(name, f, "", s, self.accuracy[m, j, k], self.n_images))
                if f in self.members and len(self.members[f][0]) > 1:
                    names, acc, counts = self.members[f]
                    for i, nuis in enumerate(names):
                        for k, s in enumerate(self.severities):
                            out.append(_record(name, f, nuis, s, acc[m, i, k], counts[i, k]))
        return out

    def format_table(self, digits: int = 1) -> str:
        """A text table: accuracy (%) per family (mean over severities), mean, mCE."""
        rows = self.summary_rows()
        cols = ["clean", *self.families, "mean", "mCE", "relative_mCE"]
        heads = ["method", *[c if c != "relative_mCE" else "rel.mCE" for c in cols]]

        def cell(c, v):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return "-"
            return f"{v:.3f}" if c in ("mCE", "relative_mCE") else f"{100 * v:.{digits}f}"

        body = [[r["method"], *[cell(c, r[c]) for c in cols]] for r in rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
        line = "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(heads, widths, strict=True))
        )
        out = [line, "-" * len(line)]
        for b in body:
            out.append(
                "  ".join(
                    v.ljust(w) if i == 0 else v.rjust(w)
                    for i, (v, w) in enumerate(zip(b, widths, strict=True))
                )
            )
        note = (
            f"accuracy % on {self.n_images} test images, mean over severities "
            f"{_span(self.severities)}; mCE and relative mCE vs {self.baseline} (<1: more robust)"
        )
        if self._baseline_index(None) is None:
            note += f" - not computed, {self.baseline} was not among the methods"
        return "\n".join([*out, note])

    def format_severity_table(self, family: str, digits: int = 1) -> str:
        """Accuracy (%) of every method at each severity of one family."""
        j = self.families.index(family)
        heads = ["method", "0", *[str(s) for s in self.severities]]
        body = [
            [
                name,
                *[f"{100 * v:.{digits}f}" for v in (self.clean_accuracy[m], *self.accuracy[m, j])],
            ]
            for m, name in enumerate(self.methods)
        ]
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
        lines = [
            "  ".join(
                h.rjust(w) if i else h.ljust(w)
                for i, (h, w) in enumerate(zip(heads, widths, strict=True))
            )
        ]
        lines += [
            "  ".join(
                v.rjust(w) if i else v.ljust(w)
                for i, (v, w) in enumerate(zip(b, widths, strict=True))
            )
            for b in body
        ]
        return "\n".join(lines)

    # --- files
    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (accuracy as nested lists [method][family][severity])."""
        ce = self.corruption_errors()
        return {
            "methods": self.methods,
            "families": self.families,
            "family_members": {f: list(nz.resolve(f)) for f in self.families},
            "severities": self.severities,
            "n_images": self.n_images,
            "seed": self.seed,
            "baseline": self.baseline,
            "clean_accuracy": self.clean_accuracy.tolist(),
            "accuracy": self.accuracy.tolist(),
            "corruption_error": None if ce is None else _nan_to_none(ce.tolist()),
            "summary": self.summary_rows(),
            "members": {
                f: {"nuisances": names, "accuracy": acc.tolist(), "counts": cnt.tolist()}
                for f, (names, acc, cnt) in self.members.items()
            },
            "predict_seconds": self.predict_seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RobustnessResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            methods=list(d["methods"]),
            families=list(d["families"]),
            severities=[int(s) for s in d["severities"]],
            accuracy=np.asarray(d["accuracy"], dtype=float).reshape(
                len(d["methods"]), len(d["families"]), len(d["severities"])
            ),
            clean_accuracy=np.asarray(d["clean_accuracy"], dtype=float),
            n_images=int(d["n_images"]),
            seed=int(d.get("seed", 0)),
            baseline=d.get("baseline", BASELINE),
            members={
                f: (
                    list(v["nuisances"]),
                    np.asarray(v["accuracy"], float),
                    np.asarray(v["counts"], int),
                )
                for f, v in d.get("members", {}).items()
            },
            predict_seconds=dict(d.get("predict_seconds", {})),
        )

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``robustness.json`` (everything), ``robustness.csv`` (long form) and
        ``robustness_summary.csv`` (one row per method) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": folder / "robustness.json",
            "csv": folder / "robustness.csv",
            "summary_csv": folder / "robustness_summary.csv",
        }
        write_json(paths["json"], self.to_dict())
        _write_csv(paths["csv"], self.records())
        _write_csv(paths["summary_csv"], self.summary_rows())
        return paths


def _num(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else v


def _nan_to_none(x):
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return None if isinstance(x, float) and np.isnan(x) else x


def _record(method, family, nuisance, severity, acc, n) -> dict[str, Any]:
    return {
        "method": method,
        "family": family,
        "nuisance": nuisance,
        "severity": int(severity),
        "accuracy": float(acc),
        "error": 1 - float(acc),
        "n_images": int(n),
    }


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)


def _span(sev: Sequence[int]) -> str:
    s = list(sev)
    return (
        f"{s[0]}-{s[-1]}"
        if s == list(range(s[0], s[-1] + 1)) and len(s) > 1
        else ",".join(map(str, s))
    )


# ------------------------------------------------------------------------ running


def parse_severities(text: str | Iterable[int]) -> list[int]:
    """``"1-5"``, ``"1,3,5"`` or ``"2"`` (or a list of ints) -> sorted unique severities."""
    if not isinstance(text, str):
        vals = [nz.check_severity(int(s)) for s in text]
    else:
        vals = []
        for part in text.replace(" ", "").split(","):
            try:
                if "-" in part:
                    a, b = part.split("-")
                    vals.extend(range(int(a), int(b) + 1))
                elif part:
                    vals.append(int(part))
            except ValueError:
                raise InputError(
                    f"severities: cannot read {text!r}; write a range like 1-5 or a list like 1,3,5"
                ) from None
        vals = [nz.check_severity(v) for v in vals]
    vals = sorted(set(vals))
    if not vals:
        raise InputError("severities: none given; use e.g. 1-5")
    return vals


def method_label(estimator, fallback: str = "model") -> str:
    """The name a table shows for ``estimator``: its saved method name, its ``method_name``,
    or its class name."""
    meta = getattr(estimator, "objrec_metadata_", None)
    if isinstance(meta, Mapping) and meta.get("method"):
        return str(meta["method"])
    name = getattr(estimator, "method_name", None)
    return str(name) if name else type(estimator).__name__ or fallback


def _named(models) -> dict[str, Any]:
    if isinstance(models, Mapping):
        return dict(models)
    out: dict[str, Any] = {}
    for est in models:
        name = base = method_label(est)
        i = 2
        while name in out:
            name = f"{base}-{i}"
            i += 1
        out[name] = est
    return out


def family_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed of one family's corruption: depends on the suite's seed and the family's
    name only, never on the severity (so levels differ only in amount)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])


def corrupted_sets(
    X, families: Sequence[str], severities: Sequence[int], seed: int = 0
) -> Iterable[tuple[str, int, np.ndarray, np.ndarray]]:
    """Yield ``(family, severity, images, member)`` for every pair, ``member[i]`` the index
    (into ``nuisances.resolve(family)``) of the nuisance image i received."""
    for f in families:
        for s in severities:
            rng = np.random.default_rng(family_seed(seed, f))
            Xc, member = nz.corrupt(X, f, s, rng, return_members=True)
            yield f, s, Xc, member


def evaluate_robustness(
    models,
    X,
    y,
    *,
    families: Sequence[str] | None = None,
    severities: Sequence[int] | str = nz.SEVERITIES,
    seed: int = 0,
    baseline: str | None = BASELINE,
    progress: bool = True,
) -> RobustnessResult:
    """Measure fitted classifiers under every family at every severity.

    Parameters
    ----------
    models : mapping name -> fitted estimator, or a sequence of fitted estimators (named by
        :func:`method_label`). Anything with ``predict(X)`` works, classic or CNN.
    X : uint8 (N, H, W[, C]) test images; y : (N,) labels
    families : family or single-nuisance names (default: every family)
    severities : ints 1..5 or a string such as ``"1-5"``
    seed : corruption seed (same seed, same images)
    baseline : method name used for mCE (present among ``models`` or mCE is None)
    """
    X = check_images(X)
    y = check_labels(y, len(X), min_classes=1)
    named = _named(models)
    if not named:
        raise InputError("no models given; pass at least one fitted estimator")
    fams = list(families) if families else nz.list_families()
    for f in fams:
        nz.resolve(f)
    sev = parse_severities(severities)
    names = list(named)
    acc = np.zeros((len(names), len(fams), len(sev)))
    seconds = dict.fromkeys(names, 0.0)

    def predict(n, images):
        t0 = time.perf_counter()
        pred = np.asarray(named[n].predict(images))
        seconds[n] += time.perf_counter() - t0
        return pred

    clean = np.array([np.mean(predict(n, X) == y) for n in names])
    members: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
    for f in fams:
        k = len(nz.resolve(f))
        if k > 1:
            members[f] = (
                list(nz.resolve(f)),
                np.zeros((len(names), k, len(sev))),
                np.zeros((k, len(sev)), int),
            )
    pairs = corrupted_sets(X, fams, sev, seed)
    if progress:
        from objrec.progress import progress as bar

        pairs = bar(pairs, total=len(fams) * len(sev), desc="robustness", unit="set")
    for f, s, Xc, member in pairs:
        j, k = fams.index(f), sev.index(s)
        for m, n in enumerate(names):
            right = predict(n, Xc) == y
            acc[m, j, k] = right.mean()
            if f in members:
                for i in range(len(members[f][0])):
                    sel = member == i
                    members[f][2][i, k] = sel.sum()
                    members[f][1][m, i, k] = right[sel].mean() if sel.any() else np.nan
    return RobustnessResult(
        methods=names,
        families=fams,
        severities=sev,
        accuracy=acc,
        clean_accuracy=clean,
        n_images=len(X),
        seed=seed,
        baseline=baseline,
        members=members,
        predict_seconds=seconds,
    )


def subsample(X, y, n: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` images, stratified by class (seeded), or everything when n is None."""
    if n is None or n >= len(X):
        return X, y
    from sklearn.model_selection import train_test_split

    try:
        _, Xs, _, ys = train_test_split(X, y, test_size=n, random_state=seed, stratify=y)
    except ValueError:  # a class with a single image: plain random subset
        idx = np.random.default_rng(seed).choice(len(X), n, replace=False)
        return X[idx], y[idx]
    return Xs, ys


def run_suite(
    models,
    X,
    y,
    *,
    folder: str | Path | None = None,
    families: Sequence[str] | None = None,
    severities: Sequence[int] | str = nz.SEVERITIES,
    seed: int = 0,
    limit: int | None = 2000,
    baseline: str | None = BASELINE,
    plots: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """The suite as ``objrec robustness`` and ``objrec compare --robustness`` run it.

    Measures ``models`` on (at most ``limit``, stratified) test images, writes the JSON and
    CSV files and, with ``plots``, ``accuracy_vs_severity.png`` and ``samples.png`` into
    ``folder`` (when given).

    Returns
    -------
    dict with ``result`` (:class:`RobustnessResult`), ``table`` (text), ``summary`` (rows of
    :meth:`RobustnessResult.summary_rows`), ``files`` (name -> path) and ``figures``
    (name -> matplotlib Figure, when ``plots``).
    """
    X = check_images(X)
    Xs, ys = subsample(X, np.asarray(y), limit, seed)
    result = evaluate_robustness(
        models,
        Xs,
        ys,
        families=families,
        severities=severities,
        seed=seed,
        baseline=baseline,
        progress=progress,
    )
    out: dict[str, Any] = {
        "result": result,
        "table": result.format_table(),
        "summary": result.summary_rows(),
        "files": {},
        "figures": {},
    }
    if plots:
        from objrec.report import robustness_plots as rp

        out["figures"] = {
            "accuracy_vs_severity": rp.accuracy_vs_severity_figure(result),
            "samples": rp.severity_montage_figure(Xs[0], result.families, seed=seed),
        }
    if folder is not None:
        folder = Path(folder)
        out["files"] = result.write(folder)
        for name, fig in out["figures"].items():
            out["files"][name] = folder / f"{name}.png"
            fig.savefig(out["files"][name], dpi=100, facecolor="white")
    return out
