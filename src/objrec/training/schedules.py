"""Learning-rate schedules as multipliers of the base rate, stepped once per batch.

``constant``; ``cosine``: linear warm-up then cosine decay to 0; ``onecycle``: linear
warm-up from 0 over ``warmup`` (default 25% of the steps) then linear decay to 0
(the triangular one-cycle schedule fast CIFAR/MNIST recipes use).
"""

from __future__ import annotations

import math
import time

import torch

SCHEDULES = ("constant", "cosine", "onecycle")


def lr_multiplier(name: str, step: int, total: int, warmup: int) -> float:
    """Factor applied to the base learning rate at ``step`` (0-based) of ``total``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    frac = (step - warmup) / max(1, total - warmup)
    frac = min(max(frac, 0.0), 1.0)
    if name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * frac))
    return 1.0 - frac


def make_scheduler(
    optimizer,
    name: str,
    total_steps: int,
    warmup_steps: int | None = None,
    max_time: float | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` for ``name``; ``warmup_steps`` defaults to 25% for onecycle, 0 otherwise.

    With ``max_time`` (seconds, from now) the schedule advances by whichever is further
    along: steps done / ``total_steps`` or time spent / ``max_time``, so a run cut off by
    its time budget still ends with its learning rate annealed. Such runs depend on the
    machine's speed and are not bit-reproducible.
    """
    if warmup_steps is None:
        warmup_steps = int(0.25 * total_steps) if name == "onecycle" else 0
    if max_time is None:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_multiplier(name, step, total_steps, warmup_steps)
        )
    start = time.perf_counter()

    def by_time(step: int) -> float:
        elapsed = (time.perf_counter() - start) / max_time
        return lr_multiplier(name, max(step, int(elapsed * total_steps)), total_steps, warmup_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, by_time)
