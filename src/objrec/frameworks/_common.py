"""What every framework file shares, kept out of their line counts: the arrays and the clock.

The parent process (:mod:`objrec.frameworks.bench`) writes one ``.npz`` holding objrec's
split as uint8 images ``(N, H, W, C)`` with int64 labels and the training split's channel
mean and std (0..1 units, shape (C,)). :func:`load_split` normalises it once, the same way
for every framework: ``(x / 255 - mean) / std``, float32, channels last ``(N, H, W, C)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


def load_split(path: str) -> dict[str, np.ndarray]:
    """``x_train``/``x_val``/``x_test`` float32 (N, H, W, C) normalised, ``y_*`` int64 (N,),
    ``n_classes`` (int) and ``path`` (the file, for a loop that reads the uint8 arrays)."""
    with np.load(path) as z:
        mean = z["mean"].astype(np.float32)
        std = z["std"].astype(np.float32)
        out: dict = {"n_classes": int(z["n_classes"]), "path": path}
        for s in ("train", "val", "test"):
            x = z[f"x_{s}"].astype(np.float32) / 255.0
            out[f"x_{s}"] = (x - mean) / std
            out[f"y_{s}"] = z[f"y_{s}"].astype(np.int64)
    return out


@dataclass
class EpochClock:
    """Wall time at the end of every epoch, from :meth:`start` (the call that starts
    training): the first epoch includes each framework's set-up, tracing and compilation."""

    t0: float = 0.0
    ends: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def epoch_end(self, val_acc: float) -> None:
        self.ends.append(time.perf_counter() - self.t0)
        self.val_acc.append(float(val_acc))

    def result(self, test_acc: float, params: int) -> dict:
        """The JSON a framework file returns: seconds per epoch and cumulative, validation
        accuracy per epoch, test accuracy (0..1) and parameter count."""
        secs = np.diff([0.0, *self.ends]).tolist()
        return {
            "test_acc": float(test_acc),
            "params": int(params),
            "epoch_seconds": secs,
            "wall_seconds": list(self.ends),
            "val_acc": list(self.val_acc),
        }
