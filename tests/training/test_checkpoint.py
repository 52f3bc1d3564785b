"""Checkpoints: resume gives the same weights, non-finite loss and failed writes keep the last one."""

import errno
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import objrec  # noqa: E402
from interrupts import StopAfter  # noqa: E402
from objrec.training.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from objrec.training.loop import NonFiniteLossError  # noqa: E402

KW = {"epochs": 2, "batch_size": 32, "lr": 0.01, "optimizer": "sgd", "schedule": "onecycle",
      "augment": "default", "min_steps": 0, "verbose": False, "threads": 1, "seed": 3}  # fmt: skip


class Poison(StopAfter):
    """Callback: fill the weights with NaN after ``n`` epochs."""

    def on_epoch_end(self, state, logs):
        if state.epoch == self.n:
            with torch.no_grad():
                for p in state.model.parameters():
                    p.fill_(float("nan"))


@pytest.fixture(scope="module")
def data(digits_small):
    X, y, _, _ = digits_small
    return X[:320], y[:320]


def test_resumed_run_ends_with_the_same_weights(data, tmp_path):
    X, y = data
    straight = objrec.make_method("simple_cnn", **KW).fit(X, y)
    ckdir = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        objrec.make_method("simple_cnn", checkpoint_dir=str(ckdir), **KW).fit(
            X, y, callbacks=[StopAfter(1)]
        )
    state = load_checkpoint(ckdir / "last.pt")
    assert state["epoch"] == 1 and set(state["rng"]) == {"torch", "numpy", "python"}
    meta = state["meta"]
    assert meta["model_args"]["name"] == "simple_cnn" and meta["classes"] == list(range(10))
    assert meta["preprocessing"]["input_size"] == [8, 8] and len(meta["history"]) == 1
    resumed = objrec.make_method("simple_cnn", resume=str(ckdir), **KW).fit(X, y)
    assert len(resumed.history_) == 2
    for (k, a), b in zip(
        straight.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    assert (ckdir / "best.pt").is_file()


def test_non_finite_loss_is_a_clear_error_and_keeps_the_checkpoint(data, tmp_path):
    X, y = data
    est = objrec.make_method("simple_cnn", checkpoint_dir=str(tmp_path), **KW)
    with pytest.raises(
        NonFiniteLossError, match=r"loss became nan in epoch 2.*lower the learning rate"
    ):
        est.fit(X, y, callbacks=[Poison(1)])
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_failed_write_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    X, y = data
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the disk fills up on the third file written (epoch 2's last.pt)
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    est = objrec.make_method("simple_cnn", checkpoint_dir=str(tmp_path), **KW)
    with pytest.raises(
        CheckpointError, match=r"No space left on device.*previous checkpoint is intact"
    ):
        est.fit(X, y)
    assert load_checkpoint(tmp_path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temp files


def test_corrupt_checkpoint_is_refused(tmp_path):
    from objrec.errors import ModelFileError

    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="corrupt or not an objrec checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(ModelFileError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "missing")


def test_resume_with_other_data_is_refused(data, tmp_path):
    X, y = data
    with pytest.raises(KeyboardInterrupt):
        objrec.make_method("simple_cnn", checkpoint_dir=str(tmp_path), **KW).fit(
            X, y, callbacks=[StopAfter(1)]
        )
    from objrec.errors import InputError

    with pytest.raises(InputError, match="resume needs the same data"):
        objrec.make_method("simple_cnn", resume=str(tmp_path), **KW).fit(X, np.where(y == 9, 10, y))


def test_early_stopping_resumes_with_its_best_score_and_weights(data, tmp_path):
    """Interrupted and resumed, early stopping stops at the same epoch and restores the same
    best weights as the uninterrupted run."""
    X, y = data
    kw = {**KW, "epochs": 8, "lr": 0.2, "early_stopping": 1, "val_fraction": 0.1}
    straight = objrec.make_method("simple_cnn", **kw).fit(X, y)
    n = len(straight.history_)
    accs = [h["val_accuracy"] for h in straight.history_]
    assert n < 8, accs  # the run does stop early ...
    best_epoch = int(np.argmax(accs)) + 1
    assert best_epoch < n  # ... and restores weights older than its last epoch
    ckdir = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        objrec.make_method("simple_cnn", checkpoint_dir=str(ckdir), **kw).fit(
            X, y, callbacks=[StopAfter(n - 1)]
        )
    resumed = objrec.make_method(
        "simple_cnn", checkpoint_dir=str(ckdir), resume=str(ckdir / "last.pt"), **kw
    ).fit(X, y)
    assert len(resumed.history_) == n
    for (k, a), b in zip(
        straight.model_.state_dict().items(), resumed.model_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
