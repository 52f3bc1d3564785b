"""Thread choice: the cores other processes keep busy, read from /proc/stat samples."""

import os

import pytest

pytest.importorskip("torch")

from objrec.training import runtime


def _busy(tmp_path, monkeypatch, before, after) -> float:
    """busy_cores() over a fake /proc/stat whose counters go from ``before`` to ``after``
    (user, nice, system, idle ticks) during the sampling pause."""
    path = tmp_path / "stat"

    def write(row):
        user, nice, system, idle = row
        path.write_text(f"cpu  {user} {nice} {system} {idle} 0 0 0 0 0 0\n")

    write(before)
    monkeypatch.setattr(runtime.time, "sleep", lambda s: write(after))
    return runtime.busy_cores(str(path))


@pytest.mark.skipif(not hasattr(os, "nice"), reason="needs os.nice")
def test_busy_cores_counts_normal_work_and_not_niced_work(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    # 200 ticks elapse: 100 in normal-priority user time, 100 idle -> one of two cores busy
    assert _busy(tmp_path, monkeypatch, (0, 0, 0, 0), (100, 0, 0, 100)) == pytest.approx(1.0)
    # the same 100 ticks in a niced process: free for a normal-priority process ...
    monkeypatch.setattr(os, "nice", lambda inc: 0)
    assert _busy(tmp_path, monkeypatch, (0, 0, 0, 0), (0, 100, 0, 100)) == pytest.approx(0.0)
    # ... but busy for a process that is niced itself
    monkeypatch.setattr(os, "nice", lambda inc: 19)
    assert _busy(tmp_path, monkeypatch, (0, 0, 0, 0), (0, 100, 0, 100)) == pytest.approx(1.0)


def test_explicit_threads_win(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert runtime.configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert runtime.configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_precision_resolves_per_device(monkeypatch):
    import torch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.use_bf16("auto", cuda) and not runtime.use_bf16("auto", cpu)
    assert not runtime.use_bf16("fp32", cuda) and not runtime.use_bf16("fp32", cpu)
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert runtime.use_bf16("bf16", cpu)
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        assert runtime.use_bf16("bf16", cpu)
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        runtime.use_bf16("fp16", cpu)
