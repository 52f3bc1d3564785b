"""The training loop: ``fit`` = ``train_step`` over batches + ``evaluate`` + callbacks (Keras style).

``TrainState`` holds what a checkpoint must restore (model, optimiser, scheduler, epochs
done, history). Batches come from :class:`Batches`, which turns uint8 tensors into
normalised, augmented float input on the device, a whole batch at a time.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch

from objrec.errors import ObjrecError
from objrec.training.augment import augment_batch
from objrec.training.distributed import all_reduce_sum, current


class NonFiniteLossError(ObjrecError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainState:
    model: torch.nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: torch.nn.Module
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # one logs dict per epoch
    stop_training: bool = False
    amp: bool = False  # bf16 autocast on the batches' device (runtime.use_bf16)
    frozen: tuple = ()  # modules kept in eval mode while training (a frozen backbone's BatchNorm)
    deadline: float | None = None  # time.perf_counter() value at which training stops


class Batches:
    """uint8 batches -> float32 (B, C, H, W) ``(x/255 [augmented] - mean) / std`` on ``device``,
    in NHWC memory (channels-last), the layout the networks train in."""

    def __init__(self, loader, mean, std, device, *, augment=None, seed=0):
        self.loader, self.device, self.augment, self.seed = loader, device, augment or {}, seed
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)[None, :, None, None]
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device)[None, :, None, None]
        self.gen = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)
        self.gen.manual_seed(self.seed * 7919 + epoch * 131 + current().rank)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for xb, yb in self.loader:
            x = xb.to(self.device, non_blocking=True).float().div_(255)  # (B, C, H, W) in 0..1
            x = augment_batch(x, self.augment, self.gen)
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            yield x, yb.to(self.device, non_blocking=True)


def _autocast(amp: bool, device: torch.device):
    """bf16 autocast on ``device`` when ``amp``, else nothing."""
    if amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    state: TrainState, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; returns (mean loss, number correct) as 0-d tensors."""
    state.model.train()
    for m in state.frozen:
        m.eval()
    with _autocast(state.amp, x.device):
        logits = state.model(x)  # (B, num_classes)
        loss = state.loss_fn(logits.float(), y)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"the training loss became {loss.item()} in epoch {state.epoch + 1}; lower the learning "
            "rate (--lr) or check the data. The last checkpoint is intact and can be resumed"
        )
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def _device_of(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Totals:
    """Running sums of (loss * images, correct, images) over batches, kept on ``device``:
    adding a batch's 0-d loss and count tensors waits for nothing, and the final
    all-reduce runs on the device the group's backend needs (CUDA under nccl)."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss * n, correct
        self.n = 0  # images

    def add(self, mean_loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        """One batch of ``n`` images: its mean loss and number correct (0-d tensors)."""
        self.sums[0] += mean_loss.detach().double() * n
        self.sums[1] += correct.double()
        self.n += int(n)

    def local(self) -> tuple[float, float]:
        """(mean loss, accuracy) of this rank's batches so far."""
        loss, correct = self.sums.tolist()
        n = max(self.n, 1)
        return loss / n, correct / n

    def over_ranks(self) -> tuple[float, float, int]:
        """(mean loss, accuracy, images) over all ranks' batches (an all-reduce when
        distributed; every rank must call it)."""
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.sums.device)
        sums = all_reduce_sum(torch.cat([self.sums, n]))  # (3,) loss * n, correct, n
        loss, correct, total = sums.tolist()
        return loss / max(total, 1.0), correct / max(total, 1.0), int(total)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, loss_fn) -> dict:
    """Mean loss and accuracy of ``model`` over ``batches`` (summed over ranks when distributed).

    Always in fp32, also after bf16 training: the validation metrics are those of the
    model that ``predict`` and the exported graph run.
    """
    model.eval()
    totals = _Totals(_device_of(model))
    for x, y in batches:
        logits = model(x)  # (B, num_classes)
        totals.add(loss_fn(logits.float(), y), (logits.argmax(1) == y).sum(), len(y))
    loss, accuracy, _ = totals.over_ranks()
    return {"loss": loss, "accuracy": accuracy}


def fit(
    state: TrainState,
    train: Batches,
    val: Batches | None,
    epochs: int,
    callbacks=(),
    progress: bool = True,
) -> TrainState:
    """Train from ``state.epoch`` up to ``epochs``, validating after every epoch."""
    from objrec.progress import on_terminal
    from objrec.progress import progress as bar_over

    for cb in callbacks:
        cb.on_train_begin(state)
    show = progress and current().is_main
    for epoch in range(state.epoch, epochs):
        for cb in callbacks:
            if hasattr(cb, "on_epoch_begin"):  # optional hook (e.g. a fine-tuning phase starts)
                cb.on_epoch_begin(state)
        train.set_epoch(epoch)
        t0, totals = time.perf_counter(), _Totals(_device_of(state.model))
        bar = bar_over(  # a bar on a terminal only: in a log, EpochPrinter's line per epoch
            train,
            desc=f"epoch {epoch + 1}/{epochs}",
            enabled=show and on_terminal(),
            unit="batch",
            dynamic_ncols=True,
        )
        for i, (x, y) in enumerate(bar):
            if state.deadline is not None and time.perf_counter() > state.deadline:
                state.stop_training = True  # time budget spent: finish with this partial epoch
                break
            loss, correct = train_step(state, x, y)
            totals.add(loss, correct, len(y))
            if i % 10 == 0 and show:
                loss_so_far, acc_so_far = totals.local()
                bar.set_postfix(loss=f"{loss_so_far:.4f}", acc=f"{acc_so_far:.4f}")
        bar.close()
        if totals.n == 0:  # the time budget ran out before this epoch's first batch
            break
        train_loss, train_accuracy, _ = totals.over_ranks()
        logs = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": None,
            "val_accuracy": None,
        }
        if val is not None:
            res = evaluate(state.model, val, state.loss_fn)
            logs.update(val_loss=res["loss"], val_accuracy=res["accuracy"])
        logs.update(lr=state.optimizer.param_groups[-1]["lr"], seconds=time.perf_counter() - t0)
        state.history.append(logs)
        state.epoch = epoch + 1
        for cb in callbacks:
            cb.on_epoch_end(state, logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    return state
