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


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, loss_fn) -> dict:
    """Mean loss and accuracy of ``model`` over ``batches`` (summed over ranks when distributed).

    Always in fp32, also after bf16 training: the validation metrics are those of the
    model that ``predict`` and the exported graph run.
    """
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    for x, y in batches:
        logits = model(x)
        sums += torch.stack(
            [
                loss_fn(logits.float(), y).double().cpu() * len(y),
                (logits.argmax(1) == y).sum().double().cpu(),
                torch.tensor(len(y), dtype=torch.float64),
            ]
        )
    all_reduce_sum(sums)
    n = max(sums[2].item(), 1.0)
    return {"loss": sums[0].item() / n, "accuracy": sums[1].item() / n}


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
        t0, sums = time.perf_counter(), torch.zeros(3, dtype=torch.float64)  # loss*n, correct, n
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
            sums += torch.tensor(
                [loss.item() * len(y), correct.item(), len(y)], dtype=torch.float64
            )
            if i % 10 == 0:
                bar.set_postfix(loss=f"{sums[0] / sums[2]:.4f}", acc=f"{sums[1] / sums[2]:.4f}")
        bar.close()
        if sums[2] == 0:  # the time budget ran out before this epoch's first batch
            break
        all_reduce_sum(sums)
        logs = {
            "epoch": epoch + 1,
            "train_loss": sums[0].item() / sums[2].item(),
            "train_accuracy": sums[1].item() / sums[2].item(),
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
