"""Data-parallel training: 2 CPU processes (gloo) hold identical weights equal to 1-process training."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PARAMS = {"epochs": 1, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "schedule": "cosine",
          "min_steps": 0, "verbose": False, "threads": 1, "seed": 0}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


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
