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


def command_line(script: str, args, machine: str = "") -> str:
    """The line above a results table: the command with ``args.seconds`` and
    ``args.rounds``, the UTC time, torch's version, ``machine`` (when given), 2 threads and
    the load average at the start."""
    import os

    import torch

    where = f"{machine}, " if machine else ""
    return (
        f"Command: `python benchmarks/{script} --seconds {args.seconds} --rounds "
        f"{args.rounds}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch "
        f"{torch.__version__}, {where}2 threads, load {os.getloadavg()[0]:.2f})"
    )


def append_results(path, lines: list[str]) -> None:
    """Append the table ``lines`` (and a blank line) to ``path`` and print them."""
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n\n")
    print("\n".join(lines))


def turns_args(description: str, seconds: float, what: str):
    """Command-line arguments of a benchmark whose cells take turns: ``--seconds`` per
    cell (default ``seconds``) and ``--rounds`` (4); ``what`` names the cells in the help.
    Sets PyTorch to 2 threads, the machine's usable cores."""
    import argparse

    import torch

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seconds", type=float, default=seconds, help=f"timing per {what}")
    p.add_argument("--rounds", type=int, default=4, help="rounds in which the cells take turns")
    args = p.parse_args()
    torch.set_num_threads(2)
    return args
