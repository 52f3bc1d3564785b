"""Data-parallel training: 2 CPU processes (gloo) hold identical weights equal to 1-process
training, launched by hand and by torchrun as two machines."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PARAMS = {"epochs": 1, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "schedule": "cosine",
          "min_steps": 0, "verbose": False, "threads": 1, "seed": 0}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                 "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_match_single_process(digits_small, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    import objrec

    X, y, _, _ = digits_small
    X, y = X[:200], y[:200]  # 180 train / 20 val: even batches split evenly over 2 ranks
    np.savez(tmp_path / "data.npz", X=X, y=y)
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("ddp_worker.py")),
                str(tmp_path / "data.npz"),
                str(tmp_path),
                json.dumps(PARAMS),
            ],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    w0, w1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2))
    single = objrec.make_method("simple_cnn", **PARAMS).fit(X, y).model_.state_dict()
    for k in single:
        assert torch.equal(w0[k], w1[k]), k  # DDP keeps the ranks in step
        torch.testing.assert_close(w0[k], single[k], rtol=1e-4, atol=1e-5)


def _torchrun() -> str | None:
    """PyTorch's launcher: beside the Python running the tests, else on PATH."""
    beside = Path(sys.executable).with_name("torchrun")
    return str(beside) if beside.is_file() else shutil.which("torchrun")


# SGD at a constant rate, no augmentation, no BatchNorm (simple_cnn has none) and no
# dropout: the only state is the weights, so the two ranks' weights must equal each other
# exactly (DDP broadcasts rank 0's start and all ranks apply the same averaged gradient)
# and those of one process taking the same global batches of 64 (each rank's mean loss
# over its 32 images, averaged over 2 ranks = the mean over 64) up to float rounding.
# Adam would divide tiny gradients by their own size and turn rounding into visible
# differences; BatchNorm's per-rank batch statistics would make the comparison ill-posed.
TRAIN_ARGS = ["train", "digits", "--model", "simple_cnn", "--limit", "512", "--epochs", "1",
              "--batch-size", "64", "--min-steps", "0", "--optimizer", "sgd", "--lr", "0.1",
              "--schedule", "constant", "--augment", "none",
              "--device", "cpu", "--threads", "1", "--quiet", "--seed", "0"]  # fmt: skip


@pytest.mark.skipif(_torchrun() is None, reason="torchrun (PyTorch's launcher) is not installed")
def test_torchrun_two_machines_match_one_process(tmp_path):
    """``torchrun --nnodes 2 --nproc_per_node 1`` twice (node ranks 0 and 1, both on
    127.0.0.1) runs ``objrec train`` data-parallel over gloo: 8 steps of 64 images."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    worker = str(Path(__file__).with_name("torchrun_worker.py"))
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    port = str(_free_port())
    launch = [_torchrun(), "--nnodes", "2", "--nproc_per_node", "1", "--master_addr",
              "127.0.0.1", "--master_port", port]  # fmt: skip
    (tmp_path / "ddp").mkdir()
    (tmp_path / "one").mkdir()

    def start(command: list[str], weights: str, run: str) -> subprocess.Popen:
        args = [
            *command,
            worker,
            str(tmp_path / weights),
            *TRAIN_ARGS,
            "--out",
            str(tmp_path / run),
        ]
        opts = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        return subprocess.Popen(args, env=env, **opts)

    procs = [start([*launch, "--node_rank", str(node)], "ddp", "run-ddp") for node in range(2)]
    procs.append(start([sys.executable], "one", "run-one"))  # one process, at the same time
    try:
        for p in procs:
            out, _ = p.communicate(timeout=150)
            assert p.returncode == 0, out[-3000:]
    finally:  # a failed rank leaves the other waiting for it
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    w = {name: load_file(str(tmp_path / name)) for name in
         ("ddp/rank0-end.safetensors", "ddp/rank1-end.safetensors",
          "one/rank0-start.safetensors", "one/rank0-end.safetensors")}  # fmt: skip
    r0, r1 = w["ddp/rank0-end.safetensors"], w["ddp/rank1-end.safetensors"]
    start, one = w["one/rank0-start.safetensors"], w["one/rank0-end.safetensors"]
    assert sorted(r0) == sorted(one)
    moved = max((one[k] - start[k]).abs().max().item() for k in one)
    assert moved > 1e-2  # training changed the weights far beyond the tolerance below
    for k in one:
        assert torch.equal(r0[k], r1[k]), k
        torch.testing.assert_close(r0[k], one[k], rtol=1e-4, atol=1e-5)
    # rank 0 wrote the run folder (the test split evaluated once), rank 1 nothing else
    assert (tmp_path / "run-ddp" / "metrics.json").is_file()
    saved = load_file(str(tmp_path / "run-ddp" / "model" / "weights.safetensors"))
    assert all(torch.equal(saved[k], r0[k]) for k in r0)
