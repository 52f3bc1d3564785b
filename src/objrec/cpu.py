"""The CPU cores this process may run on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity on Linux (a container or ``taskset``
    limit), else every core of the machine; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# glibc's mallopt(3) parameters, and the environment variables that set them at start-up
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_")
# Freed memory at the top of the heap is kept (never trimmed back to the system), the heap
# grows 1 GiB beyond each request (address space: pages count as memory only once
# written), and blocks of up to 32 MiB come from the heap rather than from mmap.
KEEP_FREED = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_TOP_PAD: 1 << 30, _M_MMAP_THRESHOLD: 32 << 20}


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep the memory PyTorch frees, for its next tensor.

    A network's activations are large blocks freed after every layer (inference) or step
    (training). By default glibc hands them back to the system and the next block is
    faulted in page by page again, zero-filled. With :data:`KEEP_FREED`, on 2 cores
    (``benchmarks/allocator.py``, BENCHMARKS.md "Your own photos"), EfficientNet-Lite0's
    forward pass of a batch of 32 runs 2.3x faster at 224x224 and 1.8x at 160x160, and a
    fine-tuning step 10-25% faster, for about 8% more peak resident memory: the effect
    PyTorch's CPU tuning guide gets from jemalloc or tcmalloc.

    Applied by the ``objrec`` command (not by ``import objrec``); does nothing where the C
    library is not glibc, or where the user set any of ``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_THRESHOLD_`` (their choice stands). Returns whether
    the parameters were set.
    """
    import ctypes
    import platform
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _MALLOC_ENV):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in KEEP_FREED.items())


def release_freed_memory() -> bool:
    """Hand the free memory of glibc's heap back to the system (``malloc_trim``).

    With :func:`keep_freed_memory` the heap keeps what one piece of work freed; call this
    between pieces of work whose peaks should not add up (``compare`` between methods:
    one method's freed heap would otherwise stay resident under the next one's large,
    separately mapped blocks). Does nothing off glibc; returns whether memory was released.
    """
    import ctypes
    import gc
    import platform
    import sys

    gc.collect()
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False
