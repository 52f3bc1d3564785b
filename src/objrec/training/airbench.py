"""The ``airbench`` recipe's own training loop (airbench94, Keller Jordan, 2024).

It does not run in :func:`objrec.training.loop.fit`, because four of its parts have no
place there: the whitening layer is set from training patches before the first step;
the weights are pulled back to a lookahead average every 5 steps; the whitening bias
trains only for the first ``WHITEN_BIAS_EPOCHS``; flips alternate per image between
epochs. Everything else is the general recipe's vocabulary (``epochs``, ``batch_size``,
``lr``, ``weight_decay``, ``label_smoothing``, ``augment``), in airbench94's units:

- loss: cross-entropy with label smoothing, *summed* over the batch;
- optimiser: Nesterov SGD, momentum :data:`MOMENTUM`; ``lr`` and ``weight_decay`` are per
  1,024 images (airbench94's 11.5 and 0.0153); BatchNorm biases learn
  :data:`BIAS_SCALER` times faster (not decayed faster);
- schedule: triangular per step, 0.2 -> 1 over the first 23% of the steps, then down to
  0.07 at the end;
- lookahead: from epoch :data:`LOOKAHEAD_START_EPOCHS` (0-based) on, every 5 steps
  ``ema = lerp(ema, w, 1 - d)``, ``w = ema``, with ``d = 0.95**5 * (step / total)**3``;
  the average starts as the weights at its first such step; at the end of each epoch
  from then on ``w = ema``;
- augmentation: ``translate`` pixels of random shift (reflect padding) and mirror images
  that alternate: a random half in the first epoch, then each image flipped in every
  other epoch;
- test-time augmentation: in the network's eval mode (``Airbench.tta``).

Input: uint8 images (N, C, H, W) and int64 labels, in memory; the validation split is
evaluated (eval mode, with the network's TTA) after each epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from objrec.training.loop import NonFiniteLossError
from objrec.training.recipes import AIRBENCH_RECIPE

__all__ = ["AIRBENCH_RECIPE", "evaluate", "lookahead_decay", "lr_factor", "train"]

MOMENTUM = 0.85
BIAS_SCALER = 64.0
WHITEN_BIAS_EPOCHS = 3
WHITEN_IMAGES = 5000  # training images whose patches set the whitening layer
LOOKAHEAD_EVERY = 5
LOOKAHEAD_START_EPOCHS = 3  # airbench94's ema start_epochs
WARMUP = 0.23  # share of the steps of rising rate
LR_START, LR_END = 0.2, 0.07  # multiples of the base rate at the first and the last step


def lr_factor(step: int, total: int) -> float:
    """Multiple of the base rate at optimiser step ``step`` of ``total`` (triangular)."""
    up = int(total * WARMUP)
    if step < up:
        f = step / up
        return LR_START * (1 - f) + f
    f = (step - up) / max(total - up, 1)
    return (1 - f) + LR_END * f


def schedule_step(step: int, total: int, elapsed: float, max_time: float | None) -> int:
    """The step of the ``total``-step schedule (rate and lookahead decay) that optimiser step
    ``step`` runs at: ``step`` itself, or with a time budget ``max_time`` (seconds) the
    further along of it and the share ``elapsed / max_time`` of the budget spent, so a run
    that the budget cuts short still anneals (at most ``total``)."""
    if max_time is None:
        return step
    if max_time <= 0:
        raise ValueError(f"max_time must be positive, got {max_time}")
    return min(total, max(step, math.ceil(elapsed / max_time * total)))


def make_optimizer(net, lr: float, weight_decay: float, batch_size: int):
    """Nesterov SGD over the trainable weights; ``lr`` and ``weight_decay`` per 1,024 images
    with a summed loss (airbench94's units), BatchNorm biases ``BIAS_SCALER`` times faster."""
    scale = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr_w = lr / scale
    wd = weight_decay * batch_size / scale
    lr_b = lr_w * BIAS_SCALER
    bn = [
        p
        for m in net.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters()
        if p.requires_grad
    ]
    bn_ids = {id(p) for p in bn}
    other = [p for p in net.parameters() if id(p) not in bn_ids]  # incl. the whitening bias
    groups = [
        {"params": bn, "lr": lr_b, "weight_decay": wd / lr_b, "base_lr": lr_b},
        {"params": other, "lr": lr_w, "weight_decay": wd / lr_w, "base_lr": lr_w},
    ]
    return torch.optim.SGD(groups, momentum=MOMENTUM, nesterov=True)


def lookahead_decay(step: int, total: int) -> float:
    """The lookahead's decay at optimiser step ``step`` of ``total``: ``0.95**5 *
    (step / total)**3`` (airbench94's decay_base, every_n_steps and decay_pow)."""
    return 0.95**LOOKAHEAD_EVERY * (step / total) ** 3


class Lookahead:
    """airbench94's lookahead: a running average of the weights (and BatchNorm statistics,
    every floating-point entry of the state dict) that they are reset to."""

    def __init__(self, net):
        self.avg = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net, decay: float) -> None:
        """``avg = decay * avg + (1 - decay) * w``, then ``w = avg`` (``decay`` 1: reset
        the weights to the average only)."""
        for k, v in net.state_dict().items():
            if v.dtype.is_floating_point:
                self.avg[k].lerp_(v, 1 - decay)
                v.copy_(self.avg[k])


class AugmentedBatches:
    """Shuffled batches of normalised (B, C, H, W) float32 images from uint8 ``X`` (N, C, H, W),
    shifted by up to ``translate`` pixels (reflect padding) and mirrored in alternation."""

    def __init__(self, X, y, batch_size, mean, std, *, translate=2, flip=True, seed=0):
        if len(X) != len(y):
            raise ValueError(f"{len(X)} images but {len(y)} labels")
        self.t = int(translate)
        self.X = F.pad(X, (self.t,) * 4, mode="reflect") if self.t else X  # uint8 (N,C,H+2t,W+2t)
        self.y, self.batch, self.flip = y, int(batch_size), bool(flip)
        self.h, self.w = X.shape[-2:]
        self.mean = torch.as_tensor(mean, dtype=torch.float32)[None, :, None, None]
        self.std = torch.as_tensor(std, dtype=torch.float32)[None, :, None, None]
        self.gen = torch.Generator().manual_seed(seed)
        self.flip0 = torch.rand(len(X), generator=self.gen) < 0.5  # first epoch's mirrored half

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch)

    def epoch(self, e: int):
        """Batches ``(x, y)`` of epoch ``e`` (0-based)."""
        n = len(self.y)
        order = torch.randperm(n, generator=self.gen)
        flips = self.flip0 ^ bool(e % 2) if self.flip else torch.zeros(n, dtype=torch.bool)
        shifts = torch.randint(0, 2 * self.t + 1, (n, 2), generator=self.gen)
        for i in range(0, n, self.batch):
            idx = order[i : i + self.batch]
            xb = self._crop(self.X[idx], shifts[idx])
            fl = flips[idx]
            xb[fl] = xb[fl].flip(-1)
            xb = (xb.float().div_(255) - self.mean) / self.std
            yield xb.contiguous(memory_format=torch.channels_last), self.y[idx]

    def _crop(self, xb, shifts):
        if not self.t:
            return xb.clone()
        out = torch.empty((*xb.shape[:2], self.h, self.w), dtype=xb.dtype)
        for dy in range(2 * self.t + 1):
            for dx in range(2 * self.t + 1):
                m = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                if m.any():
                    out[m] = xb[m, :, dy : dy + self.h, dx : dx + self.w]
        return out


@torch.no_grad()
def evaluate(net, X, y, mean, std, batch_size: int = 1000, amp: bool = False) -> float:
    """Accuracy of ``net`` in eval mode (with its TTA; fp32, or bf16 autocast when ``amp``)
    on uint8 ``X`` (N, C, H, W)."""
    net.eval()
    m = torch.as_tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[None, :, None, None]
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = ((X[i : i + batch_size].float() / 255 - m) / s).contiguous(
            memory_format=torch.channels_last
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            pred = net(xb).argmax(1)
        correct += int((pred == y[i : i + batch_size]).sum())
    return correct / max(len(y), 1)


def train(
    net,
    X: torch.Tensor,
    y: torch.Tensor,
    mean,
    std,
    rec: dict,
    *,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    amp: bool = True,
    seed: int = 0,
    max_time: float | None = None,
    on_epoch: Callable | None = None,
    eval_every: int | None = None,
    log: Callable | None = None,
) -> list[dict]:
    """Train ``net`` (an :class:`objrec.nets.airbench.Airbench`) in place; returns the history.

    ``X`` uint8 (N, C, H, W), ``y`` int64 (N,); ``mean``, ``std`` per channel in 0..1 units;
    ``rec`` the resolved recipe (``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
    ``label_smoothing``, ``augment``: a dict with ``translate`` and ``flip``). ``amp``: bf16
    autocast. ``max_time``: seconds after which training stops (within an epoch); the rate
    and the lookahead decay then advance by whichever is further along, the steps done or
    the time spent (:func:`schedule_step`), so a cut-short run still anneals. ``on_epoch(net, logs)`` runs after each
    epoch's logs, outside the timed training (``logs["train_seconds"]`` excludes it, and
    the validation), with the net in eval mode; ``eval_every``: also call it every that
    many steps (logs: epoch, step, train_seconds). ``rec["epochs"]`` may be fractional
    (airbench94: 9.9): the last epoch is then cut short. ``log(str)``: one line per epoch.
    Each history entry: epoch, train_loss, train_accuracy, val_accuracy, lr, seconds
    (the epoch's training), train_seconds (cumulative).
    """
    torch.manual_seed(seed)
    aug = rec.get("augment") or {}
    batches = AugmentedBatches(
        X, y, int(rec["batch_size"]), mean, std,
        translate=int(aug.get("translate", 0)), flip=bool(aug.get("flip")), seed=seed,
    )  # fmt: skip
    n_white = min(WHITEN_IMAGES, len(X))
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n_white]
    m = torch.as_tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[None, :, None, None]
    net.init_whitening((X[idx].float() / 255 - m) / s)
    net.to(memory_format=torch.channels_last)
    opt = make_optimizer(net, float(rec["lr"]), float(rec["weight_decay"]), batches.batch)
    loss_fn = torch.nn.CrossEntropyLoss(
        label_smoothing=float(rec["label_smoothing"]), reduction="none"
    )
    total = max(1, math.ceil(float(rec["epochs"]) * len(batches)))
    epochs = math.ceil(total / len(batches))
    look = None  # created at the first lookahead step of epoch LOOKAHEAD_START_EPOCHS
    step, spent, history = 0, 0.0, []
    for e in range(epochs):
        net.whiten.bias.requires_grad_(e < WHITEN_BIAS_EPOCHS)
        net.train()
        t0 = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64)
        stop = False
        for xb, yb in batches.epoch(e):
            at = schedule_step(step, total, spent + time.perf_counter() - t0, max_time)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_factor(at, total)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                logits = net(xb)
            loss = loss_fn(logits.float(), yb).sum()
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the training loss became {loss.item()} in epoch {e + 1}; lower the rate (--lr)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if e >= LOOKAHEAD_START_EPOCHS and step % LOOKAHEAD_EVERY == 0:
                if look is None:
                    look = Lookahead(net)
                else:
                    look.update(net, lookahead_decay(min(at + 1, total), total))
            sums += torch.tensor(
                [loss.item(), (logits.argmax(1) == yb).sum().item(), len(yb)], dtype=torch.float64
            )
            if eval_every and on_epoch is not None and step % eval_every == 0 and step < total:
                t1 = time.perf_counter()
                on_epoch(net, {"epoch": e + 1, "step": step, "train_seconds": spent + t1 - t0})
                net.train()
                t0 += time.perf_counter() - t1  # the evaluation is not training time
            if max_time is not None and spent + time.perf_counter() - t0 > max_time:
                stop = True
            if stop or step >= total:
                break
        if look is not None:
            look.update(net, 1.0)  # each epoch ends with the weights as the average
        seconds = time.perf_counter() - t0
        spent += seconds
        logs = {
            "epoch": e + 1,
            "step": step,
            "train_loss": sums[0].item() / max(sums[2].item(), 1),
            "train_accuracy": sums[1].item() / max(sums[2].item(), 1),
            "val_accuracy": None,
            "lr": opt.param_groups[1]["lr"],
            "seconds": seconds,
            "train_seconds": spent,
        }
        if X_val is not None:
            logs["val_accuracy"] = evaluate(net, X_val, y_val, mean, std)
        net.eval()
        if on_epoch is not None:
            on_epoch(net, logs)
        history.append(logs)
        if log is not None:
            va = logs["val_accuracy"]
            log(
                f"epoch {e + 1}/{epochs}: loss {logs['train_loss']:.4f} acc "
                f"{logs['train_accuracy']:.4f}"
                + ("" if va is None else f" val_accuracy {va:.4f}")
                + f" ({seconds:.1f}s)"
            )
        if stop:
            break
    net.eval()
    return history
