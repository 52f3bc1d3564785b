"""The training loop: ``fit`` = ``train_step`` over batches + ``evaluate`` + callbacks (Keras style).

``TrainState`` holds what a checkpoint must restore (model, optimiser, scheduler, epochs
done, history). Batches come from :class:`Batches`, which turns uint8 tensors into
normalised, augmented float input on the device, a whole batch at a time.

The task is what the state's ``loss_fn`` and ``metric`` make of the network's output: by
default classification (cross-entropy on ``(B, num_classes)`` logits against ``(B,)``
labels, :data:`ACCURACY`). Any other batches ``(x (B, ...), targets)`` train the same way
when ``loss_fn(output, targets)`` and ``metric.fn(output, targets)`` understand the
targets (any tensor or tuple of tensors): the U-Net's pixel labels, centres and offsets
(:mod:`objrec.segmentation.unet`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from objrec.errors import ObjrecError
from objrec.training.augment import augment_batch
from objrec.training.distributed import all_reduce_sum, current


class NonFiniteLossError(ObjrecError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class Metric:
    """The metric the loop reports next to the loss, a ratio summed over batches.

    ``fn(output, targets)`` -> (hits, count), 0-d tensors or numbers: the metric of an
    epoch is sum(hits) / sum(count) over its batches (and ranks). ``name`` keys the logs
    (``train_NAME``, ``val_NAME``; monitor ``val_NAME``), ``label`` is its short form in
    the progress output.
    """

    name: str
    label: str
    fn: Callable


def _accuracy(logits: torch.Tensor, y: torch.Tensor):
    """(correct, labels) of logits (B, num_classes) against labels (B,)."""
    return (logits.argmax(1) == y).sum(), y.numel()


#: classification: the share of images whose most probable class is the label
ACCURACY = Metric("accuracy", "acc", _accuracy)


@dataclass
class TrainState:
    model: torch.nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    # (float32 output, targets) -> mean loss (0-d), or (mean loss, {part: 0-d tensor}):
    # parts (e.g. the terms of a weighted sum) are logged per epoch as train_PART
    loss_fn: Callable
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # one logs dict per epoch
    stop_training: bool = False
    amp: bool = False  # bf16 autocast on the batches' device (runtime.use_bf16)
    frozen: tuple = ()  # modules kept in eval mode while training (a frozen backbone's BatchNorm)
    deadline: float | None = None  # time.perf_counter() value at which training stops
    metric: Metric = ACCURACY  # reported per epoch as train_/val_ + metric.name


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


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    """(mean loss, parts) of what a ``loss_fn`` returned: a loss, or (loss, parts)."""
    if isinstance(out, tuple):
        return out[0], dict(out[1])
    return out, {}


def train_step(state: TrainState, x: torch.Tensor, y) -> tuple:
    """One optimiser step on a batch ``x`` (B, ...) with targets ``y``; returns (mean loss,
    metric hits, metric count, loss parts) (0-d tensors; parts a dict of them)."""
    state.model.train()
    for m in state.frozen:
        m.eval()
    with _autocast(state.amp, x.device):
        logits = state.model(x)  # (B, num_classes) for classification
        loss, parts = _split_loss(state.loss_fn(logits.float(), y))
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"the training loss became {loss.item()} in epoch {state.epoch + 1}; lower the learning "
            "rate (--lr) or check the data. The last checkpoint is intact and can be resumed"
        )
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()
    hits, count = state.metric.fn(logits.detach(), y)
    return loss.detach(), hits, count, parts


def _device_of(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without any)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Totals:
    """Running sums of (loss * images, metric hits, metric count, loss parts * images) and
    the number of images over batches, kept on ``device``: adding a batch's 0-d tensors
    waits for nothing, and the final all-reduce runs on the device the group's backend
    needs (CUDA under nccl)."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, hits, count
        self.parts: dict[str, torch.Tensor] = {}  # part -> part * n
        self.n = 0  # images

    def add(self, mean_loss, hits, count, n: int, parts: dict | None = None) -> None:
        """One batch of ``n`` images: its mean loss, metric hits and count (0-d tensors or
        numbers) and mean loss parts."""
        self.sums[0] += mean_loss.detach().double() * n
        for i, v in ((1, hits), (2, count)):
            self.sums[i] += v.double() if isinstance(v, torch.Tensor) else float(v)
        for k, v in (parts or {}).items():
            if k not in self.parts:
                self.parts[k] = torch.zeros((), dtype=torch.float64, device=self.sums.device)
            self.parts[k] += v.detach().double() * n
        self.n += int(n)

    def local(self) -> tuple[float, float]:
        """(mean loss, metric) of this rank's batches so far."""
        loss, hits, count = self.sums.tolist()
        return loss / max(self.n, 1), hits / max(count, 1.0)

    def over_ranks(self) -> tuple[float, float, int, dict]:
        """(mean loss, metric, images, {part: mean}) over all ranks' batches (an all-reduce
        when distributed; every rank must call it)."""
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=self.sums.device)
        parts = [v.reshape(1) for v in self.parts.values()]
        # (4 + parts,) loss * n, hits, count, n, parts * n
        sums = all_reduce_sum(torch.cat([self.sums, n, *parts])).tolist()
        loss, hits, count, total = sums[:4]
        total = max(total, 1.0)
        means = {k: v / total for k, v in zip(self.parts, sums[4:], strict=True)}
        return loss / total, hits / max(count, 1.0), int(sums[3]), means


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, loss_fn, metric: Metric = ACCURACY) -> dict:
    """Mean loss and ``metric`` of ``model`` over ``batches`` (summed over ranks when
    distributed): ``{"loss": ..., metric.name: ...}``.

    Always in fp32, also after bf16 training: the validation metrics are those of the
    model that ``predict`` and the exported graph run.
    """
    model.eval()
    totals = _Totals(_device_of(model))
    for x, y in batches:
        logits = model(x)  # (B, num_classes) for classification
        loss, _ = _split_loss(loss_fn(logits.float(), y))
        totals.add(loss, *metric.fn(logits, y), len(x))
    loss, score, _, _ = totals.over_ranks()
    return {"loss": loss, metric.name: score}


def fit(
    state: TrainState,
    train: Batches,
    val: Batches | None,
    epochs: int,
    callbacks=(),
    progress: bool = True,
) -> TrainState:
    """Train from ``state.epoch`` up to ``epochs``, validating after every epoch.

    Each epoch's logs (``state.history``): ``epoch``, ``train_loss``, ``train_`` +
    ``state.metric.name``, ``train_PART`` for each part the loss reports, ``val_loss`` and
    ``val_`` + metric name (None without ``val``), ``lr`` and ``seconds`` (the epoch's,
    validation included)."""
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
            loss, hits, count, parts = train_step(state, x, y)
            totals.add(loss, hits, count, len(x), parts)
            if i % 10 == 0 and show:
                loss_so_far, metric_so_far = totals.local()
                shown = {"loss": f"{loss_so_far:.4f}", state.metric.label: f"{metric_so_far:.4f}"}
                bar.set_postfix(**shown)
        bar.close()
        if totals.n == 0:  # the time budget ran out before this epoch's first batch
            break
        train_loss, train_metric, _, train_parts = totals.over_ranks()
        name = state.metric.name
        logs = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            f"train_{name}": train_metric,
            **{f"train_{k}": v for k, v in train_parts.items()},
            "val_loss": None,
            f"val_{name}": None,
        }
        if val is not None:
            res = evaluate(state.model, val, state.loss_fn, state.metric)
            logs.update({"val_loss": res["loss"], f"val_{name}": res[name]})
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
