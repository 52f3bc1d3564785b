"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time

import numpy as np

PAUSE = 0.3  # seconds between cells: the previous cell's thread pools go idle


def interleaved_rates(cells: dict, n_per_call: int, seconds: float, rounds: int) -> dict:
    """Images/s of each ``cells[name]()`` in ``rounds`` rounds that take turns.

    Each round runs every cell for ``seconds / rounds``, so a slow spell of the shared
    machine lands on all cells alike; a pause between cells lets the previous cell's thread
    pool (PyTorch's OpenMP, ONNX Runtime's) stop spinning before the next one starts. Per
    cell: the median and the best round's images/s and the median milliseconds per call.
    """
    for fn in cells.values():
        for _ in range(3):
            fn()
    rates = {name: [] for name in cells}
    times = {name: [] for name in cells}
    for _ in range(rounds):
        for name, fn in cells.items():
            time.sleep(PAUSE)
            calls, start = [], time.perf_counter()
            while time.perf_counter() - start < seconds / rounds or len(calls) < 3:
                t = time.perf_counter()
                fn()
                calls.append(time.perf_counter() - t)
            rates[name].append(n_per_call * len(calls) / sum(calls))
            times[name] += calls
    return {
        name: {
            "images_per_s": float(np.median(rates[name])),
            "best_images_per_s": float(max(rates[name])),
            "median_ms": 1000 * float(np.median(times[name])),
            "rounds": rounds,
        }
        for name in cells
    }
