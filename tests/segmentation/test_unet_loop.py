"""The U-Net trains through classification's loop (:func:`objrec.training.loop.fit`): its
per-epoch logs and lines, the learning-rate schedule, the time budget, checkpoints, and a
resumed run that ends with the weights of an uninterrupted one."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crafted_files import square_and_ring  # noqa: E402
from interrupts import StopAfter  # noqa: E402
from objrec.data.scenes import render_scenes  # noqa: E402
from objrec.errors import InputError  # noqa: E402
from objrec.segmentation import make_segmenter  # noqa: E402
from objrec.segmentation.base import IGNORE  # noqa: E402
from objrec.segmentation.unet import lr_factor  # noqa: E402
from objrec.training.checkpoint import load_checkpoint  # noqa: E402

# 12 scenes in batches of 4: 3 steps an epoch; float32, so that runs repeat exactly
KW = {
    "width": 4,
    "depth": 2,
    "batch_size": 4,
    "lr": 1e-2,
    "precision": "fp32",
    "seed": 1,
    "grouping": "centers",
}  # the centre head: its loss parts are logged too


@pytest.fixture(scope="module")
def scenes():
    """(train, val): 12 and 4 32x32 scenes of 8x8 squares and rings, a few pixels ignored."""
    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 12, seed=0, size=32, max_objects=3)
    va = render_scenes(X, np.array([0, 1]), 4, seed=1, size=32, max_objects=3)
    tr.semantic[:, 0, :5] = IGNORE
    return tr, va


def _fit(tr, va=None, **kw):
    seg = make_segmenter("unet", **{**KW, **kw})
    val = None if va is None else (va.images, va.semantic, va.instances)
    return seg.fit(tr.images, tr.semantic, instances=tr.instances, val=val)


def test_epoch_logs_lines_schedule_and_checkpoints(scenes, tmp_path, capsys):
    tr, va = scenes
    seg = _fit(tr, va, epochs=3, progress=True, checkpoint_dir=str(tmp_path))
    h = seg.history_
    assert [e["epoch"] for e in h] == [1, 2, 3]
    for key in ("train_loss", "train_pixel_accuracy", "train_semantic_loss", "train_center_loss",
                "train_offset_loss", "val_loss", "val_pixel_accuracy", "lr", "seconds"):  # fmt: skip
        assert all(isinstance(e[key], float) for e in h), key
    # the learning rate after each epoch's 3 of the 9 steps: warm-up, then cosine to 0
    assert [e["lr"] for e in h] == pytest.approx([1e-2 * lr_factor(s / 9) for s in (3, 6, 9)])
    assert h[-1]["lr"] == pytest.approx(0.0, abs=1e-12) and lr_factor(0) == 0.02
    # the loop's validation is that of predict on the final weights (float32)
    pred = seg.predict(va.images)
    assert h[-1]["val_pixel_accuracy"] == pytest.approx(float((pred == va.semantic).mean()))
    lines = [s for s in capsys.readouterr().out.splitlines() if s.startswith("epoch")]
    assert len(lines) == 3 and "pixacc" in lines[0] and "val_pixacc" in lines[0]
    last = load_checkpoint(tmp_path / "last.pt")  # read with weights_only=True
    assert last["epoch"] == 3 and last["meta"]["history"] == h
    assert last["meta"]["n_labels"] == 3 and last["meta"]["params"]["width"] == 4
    best = load_checkpoint(tmp_path / "best.pt")
    accs = [e["val_pixel_accuracy"] for e in h]
    assert h[best["epoch"] - 1]["val_pixel_accuracy"] == max(accs)


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(scenes, tmp_path):
    tr, va = scenes
    straight = _fit(tr, va, epochs=4)
    seg = make_segmenter("unet", **KW, epochs=4, checkpoint_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        seg.fit(tr.images, tr.semantic, instances=tr.instances,
                val=(va.images, va.semantic, va.instances), callbacks=[StopAfter(2)])  # fmt: skip
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2 and len(seg.history_) == 2
    resumed = _fit(tr, va, epochs=4, resume=str(tmp_path))
    assert [e["epoch"] for e in resumed.history_] == [1, 2, 3, 4]
    for a, b in zip(straight.history_, resumed.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-6, abs=1e-12)
    for (k, a), b in zip(straight.net_.state_dict().items(),
                         resumed.net_.state_dict().values(), strict=True):  # fmt: skip
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-6), k
    # a run started afresh from the same seed differs: the comparison above can fail
    other = _fit(tr, va, epochs=4, seed=2)
    assert not torch.allclose(other.net_.head.weight, straight.net_.head.weight, atol=1e-6)


def test_interrupt_in_the_first_epoch_keeps_a_resumable_checkpoint(scenes, tmp_path, monkeypatch):
    from objrec.segmentation import unet

    tr, _ = scenes
    real, calls = unet.UNetLoss.__call__, []

    def interrupted(self, out, targets):
        calls.append(1)
        if len(calls) == 2:  # the second batch of epoch 1
            raise KeyboardInterrupt
        return real(self, out, targets)

    monkeypatch.setattr(unet.UNetLoss, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(tr, epochs=2, checkpoint_dir=str(tmp_path))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 0
    monkeypatch.undo()
    seg = _fit(tr, epochs=2, resume=str(tmp_path / "last.pt"))
    assert len(seg.history_) == 2 and seg.history_[0]["val_loss"] is None


def test_resume_needs_the_same_network_and_scenes(scenes, tmp_path):
    tr, _ = scenes
    _fit(tr, epochs=1, checkpoint_dir=str(tmp_path))
    with pytest.raises(InputError, match="resume needs the same scenes and network"):
        _fit(tr, epochs=2, width=8, resume=str(tmp_path))
    with pytest.raises(InputError, match="resume needs the same scenes and network"):
        _fit(tr, epochs=2, grouping="watershed", resume=str(tmp_path))


def test_time_budget_stops_training_annealed(scenes):
    tr, _ = scenes
    seg = _fit(tr, epochs=500, max_seconds=1.5)  # 1,500 steps: far more than 1.5 s
    h = seg.history_
    assert 1 <= len(h) < 500 and sum(e["seconds"] for e in h) < 10
    assert h[-1]["lr"] < 0.01 * 1e-2 < h[0]["lr"]  # annealed by the clock, not by the steps


def test_bad_val_is_refused(scenes):
    tr, va = scenes
    seg = make_segmenter("unet", **KW, epochs=1)
    with pytest.raises(InputError, match="val must be"):
        seg.fit(tr.images, tr.semantic, val=va.images)
    with pytest.raises(InputError, match="masks"):
        seg.fit(tr.images, tr.semantic, val=(va.images, va.semantic[:2]))
    with pytest.raises(InputError, match="multiples of 4"):
        seg.fit(tr.images, tr.semantic, val=(va.images[:, :30], va.semantic[:, :30]))
    assert not hasattr(seg, "history_")  # refused before any training
