"""Callbacks for :func:`objrec.training.loop.fit`: hooks ``on_train_begin``, ``on_epoch_begin(state)``
(optional), ``on_epoch_end(state, logs)``, ``on_train_end``; setting ``state.stop_training`` ends
training after the current epoch."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from objrec.io import atomic_write_bytes, write_json
from objrec.training.distributed import current


class Callback:
    def on_train_begin(self, state) -> None:
        pass

    def on_epoch_begin(self, state) -> None:
        pass

    def on_epoch_end(self, state, logs: dict) -> None:
        pass

    def on_train_end(self, state) -> None:
        pass


def _score(logs: dict, monitor: str) -> tuple | None:
    """Higher is better: ``(-loss,)`` for a loss; for an accuracy ``(accuracy, -val_loss)``,
    so that on a small validation split, where the accuracy often ties, the lower loss wins."""
    v = logs.get(monitor)
    if v is None:
        return None
    if monitor.endswith("loss"):
        return (-v,)
    loss = logs.get("val_loss")
    return (v, -loss if loss is not None else -math.inf)


class EpochPrinter(Callback):
    """One summary line per epoch (rank 0 only): loss and the state's metric (``acc`` for
    accuracy), on the training and the validation split, learning rate, seconds."""

    def on_epoch_end(self, state, logs):
        if not current().is_main:
            return
        from tqdm.auto import tqdm

        name, label = state.metric.name, state.metric.label
        val = ""
        if logs.get("val_loss") is not None:
            val = f"  val_loss {logs['val_loss']:.4f}  val_{label} {logs[f'val_{name}']:.4f}"
        tqdm.write(
            f"epoch {logs['epoch']:>3}  loss {logs['train_loss']:.4f}  "
            f"{label} {logs[f'train_{name}']:.4f}{val}  lr {logs['lr']:.2e}  {logs['seconds']:.1f}s"
        )


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.

    An accuracy that ties the best counts as an improvement when the validation loss is lower.

    A resumed run carries on where it stopped: the best score and the epochs waited since
    are replayed from ``state.history``, and the best weights so far are read from
    ``best_checkpoint`` (the ``best.pt`` that :class:`Checkpointer` writes) when they
    predate the resume.
    """

    def __init__(
        self,
        monitor: str = "val_accuracy",
        patience: int = 5,
        restore_best: bool = True,
        best_checkpoint: str | Path | None = None,
    ):
        self.monitor, self.patience, self.restore_best = monitor, patience, restore_best
        self.best_checkpoint = best_checkpoint
        self.best, self.best_epoch, self.best_weights, self.wait = (-math.inf,), 0, None, 0

    def on_train_begin(self, state):
        for logs in state.history:  # resumed: replay the epochs already trained
            score = _score(logs, self.monitor)
            if score is None:
                continue
            if score > self.best:
                self.best, self.best_epoch, self.wait = score, logs["epoch"], 0
            else:
                self.wait += 1
        if not (self.restore_best and self.best_epoch and self.best_checkpoint):
            return
        path = Path(self.best_checkpoint)
        if path.is_file():
            from objrec.training.checkpoint import load_checkpoint

            ckpt = load_checkpoint(path)
            if int(ckpt["epoch"]) == self.best_epoch:
                self.best_weights = ckpt["model"]

    def on_epoch_end(self, state, logs):
        score = _score(logs, self.monitor)
        if score is None:
            return
        if score > self.best:
            self.best, self.best_epoch, self.wait = score, logs["epoch"], 0
            if self.restore_best:
                model = getattr(state.model, "module", state.model)
                self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop_training = True

    def on_train_end(self, state):
        if self.restore_best and self.best_weights is not None:
            getattr(state.model, "module", state.model).load_state_dict(self.best_weights)


class Checkpointer(Callback):
    """Write ``folder/last.pt`` every epoch and ``folder/best.pt`` when ``monitor`` improves."""

    def __init__(self, folder, meta_fn, monitor: str = "val_accuracy"):
        self.folder, self.meta_fn, self.monitor = Path(folder), meta_fn, monitor
        self.best = (-math.inf,)

    def on_train_begin(self, state):
        for logs in state.history:  # resumed: best so far
            s = _score(logs, self.monitor)
            if s is not None:
                self.best = max(self.best, s)

    def save(self, state, name: str = "last.pt"):
        from objrec.training.checkpoint import save_checkpoint

        if current().is_main:
            save_checkpoint(
                self.folder / name,
                model=state.model,
                optimizer=state.optimizer,
                scheduler=state.scheduler,
                epoch=state.epoch,
                meta=self.meta_fn(state),
            )

    def on_epoch_end(self, state, logs):
        self.save(state, "last.pt")
        score = _score(logs, self.monitor)
        if score is not None and score > self.best:
            self.best = score
            self.save(state, "best.pt")


class HistoryWriter(Callback):
    """Rewrite ``history.csv`` and ``history.json`` in ``folder`` after every epoch."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def on_epoch_end(self, state, logs):
        if not current().is_main:
            return
        write_history(self.folder, state.history)


def write_history(folder, history: list[dict]) -> None:
    """``history.csv`` and ``history.json`` (one row per epoch) in ``folder``."""
    folder = Path(folder)
    write_json(folder / "history.json", history)
    buf = io.StringIO()
    if history:
        w = csv.DictWriter(buf, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    atomic_write_bytes(folder / "history.csv", buf.getvalue().encode())


class TensorBoardLogger(Callback):
    """Per-epoch scalars for TensorBoard (``pip install tensorboard``)."""

    def __init__(self, log_dir):
        self.log_dir, self.writer = Path(log_dir), None

    def on_epoch_end(self, state, logs):
        if not current().is_main:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        for k, v in logs.items():
            if k != "epoch" and v is not None:
                self.writer.add_scalar(k, v, logs["epoch"])
        self.writer.flush()

    def on_train_end(self, state):
        if self.writer is not None:
            self.writer.close()
