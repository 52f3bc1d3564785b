import os

import pytest

from objrec.cpu import usable_cores


def test_usable_cores_is_the_affinity_set():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_usable_cores_without_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cores() == 1


# Run in a child process: the allocator's parameters are global to a process.
_PROBE = """
import ctypes, sys
from objrec.cpu import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] != "default" else False
before = libc.mallinfo2()
p = libc.malloc(16 << 20)
held = libc.mallinfo2()
libc.free(p)
if sys.argv[1] == "released":
    from objrec.cpu import release_freed_memory
    assert release_freed_memory()
after = libc.mallinfo2()
print(applied, held.hblkhd - before.hblkhd >= 16 << 20, after.fordblks >= 16 << 20)
"""


def _probe(mode, env=None):
    import platform
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    env = {**os.environ, **(env or {})}
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_"):
        if env.get(name) == "":
            del env[name]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_keep_freed_memory_keeps_a_freed_block_in_the_heap():
    # glibc's defaults: a 16 MiB block is mapped on its own and unmapped when freed
    unset = {"MALLOC_TRIM_THRESHOLD_": "", "MALLOC_TOP_PAD_": "", "MALLOC_MMAP_THRESHOLD_": ""}
    assert _probe("default", unset) == ["False", "True", "False"]
    # kept: the block comes from the heap, and its memory stays there once freed
    assert _probe("tuned", unset) == ["True", "False", "True"]
    # release_freed_memory hands it back
    assert _probe("released", unset) == ["True", "False", "False"]


def test_keep_freed_memory_leaves_the_users_malloc_settings():
    applied, *_ = _probe("tuned", {"MALLOC_TOP_PAD_": "0"})
    assert applied == "False"


def test_the_command_keeps_freed_memory_except_for_the_server(monkeypatch):
    import objrec.cpu
    from objrec.cli import main

    calls = []
    monkeypatch.setattr(objrec.cpu, "keep_freed_memory", lambda: calls.append(1) or True)
    assert main(["methods"]) == 0
    assert calls == [1]
    main(["serve", "/nonexistent-model-folder"])
    assert calls == [1]
