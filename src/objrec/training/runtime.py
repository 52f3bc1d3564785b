"""Device and thread settings: CUDA when present, and CPU threads that suit small shared machines."""

from __future__ import annotations

import os
import time

import torch

from objrec.cpu import usable_cores


def pick_device(device: str | None = "auto") -> torch.device:
    """The device to train on.

    ``"auto"``: CUDA when available, else CPU. Under torchrun, ``"auto"`` and ``"cuda"``
    mean the rank's own GPU, ``cuda:LOCAL_RANK``; a fixed ``"cuda:N"`` would put every
    rank of a machine on one GPU, which nccl refuses, and is an error there.
    """
    from objrec.training.distributed import DistInfo, DistributedError

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type != "cuda":
        return dev
    info = DistInfo.from_env()
    if not info.enabled:
        return dev
    if dev.index is None:
        return torch.device("cuda", info.local_rank)
    if info.local_world_size > 1:
        raise DistributedError(
            f"device {device}: {info.local_world_size} ranks on this machine would share one "
            "GPU; use device 'cuda' or 'auto' (each rank takes cuda:LOCAL_RANK)"
        )
    return dev


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (Intel AMX or AVX512-BF16).

    There oneDNN runs bf16 convolutions and matrix products at 2x (AVX512-BF16) to 16x
    (AMX tiles) the fp32 rate; elsewhere bf16 is emulated and slower than fp32.
    """
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


PRECISIONS = ("auto", "fp32", "bf16")


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve ``precision`` for ``device``: True to train under bf16 autocast.

    ``"auto"``: bf16 on CUDA, fp32 on CPU (bf16 changes the numbers; it is asked for, not
    assumed). ``"bf16"``: bf16 autocast on any device, with a warning on a CPU without
    native bf16. ``"fp32"``: never.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return device.type == "cuda"
    if precision == "bf16" and device.type == "cpu" and not native_bf16():
        import warnings

        warnings.warn(
            "precision='bf16': this CPU has neither AMX nor AVX512-BF16, bf16 is emulated and "
            "trains slower than fp32; use precision='fp32'",
            stacklevel=3,
        )
    return precision == "bf16"


def busy_cores(stat_file: str = "/proc/stat") -> float:
    """How many cores other processes keep busy now: a 0.2 s sample of ``stat_file``.

    Time spent in niced processes counts as free when this process is not niced itself:
    the scheduler gives a core to a normal-priority thread over them. Falls back to the
    1-minute load average where /proc/stat is unavailable.
    """
    nice_is_free = os.nice(0) == 0 if hasattr(os, "nice") else False

    def sample() -> tuple[int, int]:
        with open(stat_file) as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        free = vals[3] + vals[4] + (vals[1] if nice_is_free else 0)  # idle + iowait (+ nice)
        return free, sum(vals)  # clock ticks

    try:
        idle0, total0 = sample()
        time.sleep(0.2)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    return max(0.0, busy * (os.cpu_count() or 1))


def configure_threads(threads: int | None = None, world_size: int = 1) -> int:
    """Set PyTorch's intra-op threads and return the number chosen.

    ``threads`` wins when given; otherwise ``OMP_NUM_THREADS`` when set; otherwise the
    usable cores divided among the ranks of this machine, minus the cores other processes
    keep busy right now (:func:`busy_cores`; not the 1-minute load average, which still
    counts a process that has just ended). Asking for more threads than there are free
    cores makes OpenMP threads wait for each other: on a 2-core machine with one core busy,
    2 threads train simple_cnn about 8x slower than 1 thread.
    """
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            threads = int(os.environ["OMP_NUM_THREADS"])
        else:
            cores = usable_cores()
            per_rank = max(1, cores // max(1, world_size))
            threads = max(1, min(per_rank, round(cores - busy_cores())))
    torch.set_num_threads(int(threads))
    return int(threads)
