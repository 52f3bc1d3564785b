"""torchrun's environment read in one place (DistInfo.from_env), the backend chosen from
the training device, the rank's own GPU, and collectives refused on the wrong device."""

import pytest

from objrec.training.distributed import DistInfo, DistributedError

TWO_MACHINES = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}


def test_from_env_reads_what_torchrun_sets():
    assert DistInfo.from_env({}) == DistInfo()  # not launched by torchrun: one process
    assert DistInfo.from_env({"WORLD_SIZE": "1", "RANK": "0"}) == DistInfo()
    info = DistInfo.from_env(TWO_MACHINES)  # rank 1 of 2, alone on its machine
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (1, 2, 0, 1)
    assert info.enabled and not info.is_main
    # one machine by default when LOCAL_* are missing
    assert DistInfo.from_env({"WORLD_SIZE": "4", "RANK": "3"}) == DistInfo(3, 4, 0, 4)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two': expected an integer"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0: must be at least 1"),
        ({"WORLD_SIZE": "2"}, "RANK is not set; launch data-parallel training with torchrun"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2: must be in 0\.\.1"),
        ({**TWO_MACHINES, "LOCAL_WORLD_SIZE": "3"}, r"LOCAL_WORLD_SIZE=3: must be in 1\.\.2"),
        ({**TWO_MACHINES, "LOCAL_RANK": "1"}, r"LOCAL_RANK=1: must be in 0\.\.0"),
    ],
)
def test_from_env_rejects_what_torchrun_would_not_set(env, message):
    with pytest.raises(DistributedError, match=message):
        DistInfo.from_env(env)


def test_no_other_module_reads_torchrun_variables():
    """Every reader of RANK / WORLD_SIZE / LOCAL_RANK / ... goes through DistInfo.from_env:
    only training/distributed.py names them as strings."""
    import re
    from pathlib import Path

    import objrec

    root = Path(objrec.__file__).parent
    name = re.compile(r"""["'](LOCAL_)?(RANK|WORLD_SIZE)["']""")
    readers = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.py"))
               if name.search(p.read_text())]  # fmt: skip
    assert readers == ["training/distributed.py"]


torch = pytest.importorskip("torch")


def test_backend_follows_the_device():
    from objrec.training.distributed import backend_for

    assert backend_for(torch.device("cuda", 1)) == "nccl"
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for("cuda") == "nccl"


def test_each_rank_takes_its_own_gpu(monkeypatch):
    from objrec.training import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert runtime.pick_device("cpu") == torch.device("cpu")
    assert runtime.pick_device("auto") == torch.device("cuda")  # one process: as asked
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert runtime.pick_device("auto") == torch.device("cuda", 1)
    assert runtime.pick_device("cuda") == torch.device("cuda", 1)
    assert runtime.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(DistributedError, match="2 ranks on this machine would share one GPU"):
        runtime.pick_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one rank per machine: any GPU it names
    assert runtime.pick_device("cuda:3") == torch.device("cuda", 3)


def _fake_group(monkeypatch, backend: str) -> list:
    """torch.distributed as if this process were in a group with ``backend``; returns the
    list of tensors handed to all_reduce."""
    import torch.distributed as dist

    reduced = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: backend)
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: reduced.append(t))
    return reduced


def test_an_nccl_group_is_not_handed_cpu_tensors(monkeypatch):
    from objrec.training.distributed import all_reduce_sum

    reduced = _fake_group(monkeypatch, "nccl")
    with pytest.raises(DistributedError, match="nccl group reduces CUDA tensors, got one on cpu"):
        all_reduce_sum(torch.zeros(3, dtype=torch.float64))
    assert reduced == []
    reduced = _fake_group(monkeypatch, "gloo")
    t = torch.zeros(3)
    assert all_reduce_sum(t) is t and reduced == [t]


def test_setup_refuses_a_group_with_the_wrong_backend(monkeypatch):
    from objrec.training.distributed import setup

    for k, v in TWO_MACHINES.items():
        monkeypatch.setenv(k, v)
    _fake_group(monkeypatch, "gloo")  # e.g. joined before the device was known
    with pytest.raises(DistributedError, match="runs gloo, but training on cuda:0 needs nccl"):
        setup(torch.device("cuda", 0))
    assert setup(torch.device("cpu")) == DistInfo.from_env(TWO_MACHINES)
    _fake_group(monkeypatch, "nccl")
    with pytest.raises(DistributedError, match="runs nccl, but training on cpu needs gloo"):
        setup(torch.device("cpu"))
