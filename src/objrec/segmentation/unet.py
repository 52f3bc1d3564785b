"""A small U-Net (Ronneberger et al. 2015) for semantic segmentation, trained with
cross-entropy + soft Dice.

Encoder: ``depth`` stages of two 3x3 convolutions (batch norm, ReLU) with ``width``,
2 x width, ... channels, each followed by 2x2 max pooling; a bottleneck; a decoder of
transposed convolutions (x2) concatenated with the encoder's features; a 1x1
convolution to ``n_labels`` logits. Image sides must be multiples of ``2 ** depth``
(96 = 3 x 32 is). Inputs are RGB scaled to -1..1.

With ``grouping="centers"`` the same network also predicts per pixel an object-centre
heatmap (one channel, mean squared error against Gaussians of ``center_sigma`` pixels
around the objects' centres of mass) and the offset from the pixel to its object's centre
(two channels, dy and dx in pixels, L1 loss on object pixels), from a small extra head on
the last decoder features, and instances are grouped from them
(:mod:`objrec.segmentation.centers`, Panoptic-DeepLab); ``grouping="watershed"`` (the
default) trains the semantic head only and splits components by watershed
(:mod:`objrec.segmentation.postprocess`). The default is measured (BENCHMARKS.md
"Segmentation"): on mnist-scenes (4,000 training scenes, width 8, 1,000 steps of the same
schedule) the centre loss held the semantic head back, semantic loss 1.06 against 0.62,
test mIoU 0.108 against 0.411, PQ 0.119 against 0.427, mask AP 0.031 against 0.251; with the
true masks centres group touching objects better (fashion-scenes PQ 0.734 against 0.606),
so they stay an option for a network that learns its classes first.

Training goes through classification's loop (:func:`objrec.training.loop.fit`): the
same progress bar and per-epoch lines (:class:`~objrec.training.callbacks.EpochPrinter`),
time budget, checkpoints (``checkpoint_dir``: ``last.pt`` every epoch, ``best.pt`` on the
best validation pixel accuracy, :mod:`objrec.training.checkpoint`) and ``resume``; the
task's parts are the Dice + cross-entropy (+ centre and offset) loss and pixel accuracy
as the metric. It runs under bfloat16 autocast where the CPU has native bfloat16
(``precision`` ``"auto"``): on 2 cores of an AVX512-BF16 / AMX Xeon a width-8 step on 32
96x96 scenes ran about 1.3-1.6x faster than float32 (BENCHMARKS.md "Segmentation");
prediction and validation are float32. Batches default to 16 scenes: at a fixed number
of epochs, twice the optimiser steps of batch 32 (width 8, 8 epochs of 4,000 scenes: mIoU
0.491 against 0.411, BENCHMARKS.md "Segmentation").
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from objrec.errors import InputError, ModelFileError
from objrec.segmentation.base import (
    IGNORE,
    Segmenter,
    _number,
    _optional,
    _whole,
    check_images,
    check_masks,
    chunks,
)

WEIGHTS_NAME = "weights.safetensors"
MAX_DEPTH = 8
MAX_WIDTH = 1024
PRECISIONS = ("auto", "bf16", "fp32")
GROUPINGS = ("centers", "watershed")
#: the offset channels' raw output is multiplied by this (pixels), so that offsets of tens
#: of pixels need raw values of a few units
OFFSET_SCALE = 10.0


def build_unet(n_labels: int, width: int = 16, depth: int = 3, centers: bool = False):
    """The network: (B, 3, H, W) float -> (B, n_labels, H, W) logits; with ``centers``
    (B, n_labels + 3, H, W): the logits, then the centre heatmap (1 channel) and the
    offsets to the object's centre (2 channels, dy and dx in pixels) of the ``centers``
    head (a 3x3 convolution, ReLU and a 1x1 convolution on the last decoder features)."""
    import torch
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [width * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList(
                [block(3 if i == 0 else chans[i - 1], chans[i]) for i in range(depth)]
            )
            self.bottom = block(chans[depth - 1], chans[depth])
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth)]
            )
            self.dec = nn.ModuleList([block(2 * chans[i], chans[i]) for i in range(depth)])
            self.head = nn.Conv2d(chans[0], n_labels, 1)
            if centers:
                self.centers = nn.Sequential(
                    nn.Conv2d(chans[0], chans[0], 3, padding=1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(chans[0], 3, 1),
                )
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for i in reversed(range(depth)):
                x = self.up[i](x)
                x = self.dec[i](torch.cat([x, skips[i]], 1))
            if not centers:
                return self.head(x)
            extra = self.centers(x)
            return torch.cat([self.head(x), extra[:, :1], extra[:, 1:] * OFFSET_SCALE], 1)

    return UNet()


def dice_ce_loss(logits, target, n_labels: int, dice_weight: float = 1.0):
    """Cross-entropy + ``dice_weight`` x (1 - soft Dice averaged over the labels present
    in the batch's ground truth or prediction); pixels labelled :data:`IGNORE` count in
    neither."""
    import torch
    import torch.nn.functional as F

    valid = target != IGNORE  # (B, H, W)
    if not bool(valid.any()):
        return (logits * 0).sum()
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
    prob = logits.softmax(1) * valid[:, None]
    onehot = F.one_hot(torch.where(valid, target, 0), n_labels).permute(0, 3, 1, 2)
    onehot = onehot.to(prob.dtype) * valid[:, None]
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + 1.0) / (denom + 1.0)
    dice_loss = 1 - dice[present].mean() if bool(present.any()) else torch.zeros_like(ce)
    return ce + dice_weight * dice_loss


def center_offset_loss(extra, heat, offset, thing, valid):
    """(centre loss, offset loss): the mean squared error of the predicted heatmap
    ``extra[:, 0]`` against ``heat`` (B, H, W) over the ``valid`` pixels (bool (B, H, W)),
    and the mean over the object pixels (``thing & valid``) of the L1 distance
    ``|dy - dy*| + |dx - dx*|`` (pixels) of ``extra[:, 1:]`` to ``offset`` (B, 2, H, W)."""
    v = valid.to(extra.dtype)
    heat_loss = ((extra[:, 0] - heat) ** 2 * v).sum() / v.sum().clamp_min(1.0)
    t = (thing & valid).to(extra.dtype)
    off_loss = ((extra[:, 1:] - offset).abs().sum(1) * t).sum() / t.sum().clamp_min(1.0)
    return heat_loss, off_loss


def lr_factor(progress: float) -> float:
    """The U-Net's learning rate as a multiple of ``lr`` at training ``progress`` (0..1,
    clipped): a linear warm-up over the first 5 % (from 0.02), then cosine decay to 0."""
    t = min(progress, 1.0)
    if t < 0.05:
        return max(t / 0.05, 0.02)
    return 0.5 * (1 + math.cos(math.pi * (t - 0.05) / 0.95))


class SceneBatches:
    """Training or validation batches of scenes for :func:`objrec.training.loop.fit`:
    ``(x, targets)`` with ``x`` float32 (B, 3, H, W) in -1..1 and ``targets`` the labels
    int64 (B, H, W), or with ``instances`` (grouping "centers") the tuple (labels, centre
    heatmap float32 (B, H, W), offsets float32 (B, 2, H, W) in pixels, object pixels bool
    (B, H, W)) from :func:`objrec.segmentation.centers.center_targets`.

    ``images`` uint8 (N, H, W, 3), ``masks`` uint8 (N, H, W), ``instances`` object ids
    (N, H, W) or None. With ``shuffle`` the order of epoch ``e`` is the permutation
    :class:`objrec.training.loader.BatchLoader` draws from ``seed`` and ``e``, so a resumed
    run sees the same batches as an uninterrupted one; the last batch may be smaller.
    """

    def __init__(self, images, masks, instances, batch_size: int, *, to_tensor,
                 shuffle: bool = False, seed: int = 0, sigma: float = 4.0):  # fmt: skip
        import torch

        from objrec.training.loader import BatchLoader

        ids = torch.arange(len(images))
        self.images, self.masks, self.instances = images, masks, instances
        self.to_tensor, self.sigma = to_tensor, sigma
        self.loader = BatchLoader(ids, ids, batch_size, shuffle=shuffle, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        import torch

        from objrec.segmentation.centers import center_targets

        for idx in self.loader.batch_indices():
            b = idx.numpy()
            x = self.to_tensor(self.images[b])
            y = torch.from_numpy(self.masks[b].astype(np.int64))
            if self.instances is None:
                yield x, y
                continue
            inst = self.instances[b]
            heat, off = center_targets(inst, self.sigma)
            yield x, (y, torch.from_numpy(heat), torch.from_numpy(off), torch.from_numpy(inst > 0))


class UNetLoss:
    """The training loss of the U-Net on (output float32 (B, L [+ 3], H, W), targets of
    :class:`SceneBatches`): :func:`dice_ce_loss` of the logits; with the centre head
    (tuple targets) plus ``center_weight`` x and ``offset_weight`` x the two terms of
    :func:`center_offset_loss`, returned as (sum, {"semantic_loss", "center_loss",
    "offset_loss"}: the three weighted terms)."""

    def __init__(self, n_labels: int, dice_weight: float, center_weight: float = 0.0,
                 offset_weight: float = 0.0):  # fmt: skip
        self.n_labels, self.dice_weight = n_labels, dice_weight
        self.center_weight, self.offset_weight = center_weight, offset_weight

    def __call__(self, out, targets):
        L = self.n_labels
        if not isinstance(targets, tuple):
            return dice_ce_loss(out[:, :L], targets, L, self.dice_weight)
        y, heat, off, thing = targets
        sem = dice_ce_loss(out[:, :L], y, L, self.dice_weight)
        heat_l, off_l = center_offset_loss(out[:, L:], heat, off, thing, y != IGNORE)
        heat_l, off_l = self.center_weight * heat_l, self.offset_weight * off_l
        loss = sem + heat_l + off_l
        return loss, {"semantic_loss": sem, "center_loss": heat_l, "offset_loss": off_l}


def pixel_hits(out, targets, n_labels: int):
    """(pixels whose most probable label is the true one, labelled pixels) of output
    (B, L [+ 3], H, W) against the targets of :class:`SceneBatches`; :data:`IGNORE`
    pixels count in neither."""
    y = targets[0] if isinstance(targets, tuple) else targets
    valid = y != IGNORE
    return ((out[:, :n_labels].argmax(1) == y) & valid).sum(), valid.sum()


class UNetSegmenter(Segmenter):
    """U-Net estimator: ``fit(images, masks, instances=...)``, ``predict_proba``,
    ``predict``, ``predict_panoptic`` (objects grouped by ``grouping``)."""

    method = "unet"
    _param_rules: ClassVar[dict] = {
        "width": (f"a whole number 1..{MAX_WIDTH}", lambda v: _whole(1)(v) and v <= MAX_WIDTH),
        "depth": (f"a whole number 1..{MAX_DEPTH}", lambda v: _whole(1)(v) and v <= MAX_DEPTH),
        "epochs": ("a whole number >= 1", _whole(1)),
        "batch_size": ("a whole number >= 1", _whole(1)),
        "lr": ("a number > 0", _number(0, strict=True)),
        "dice_weight": ("a number >= 0", _number(0)),
        "n_labels": ("a whole number >= 2 or null", _optional(_whole(2))),
        "max_seconds": ("a number > 0 or null", _optional(_number(0, strict=True))),
        "seed": ("a whole number >= 0", _whole(0)),
        "progress": ("true or false", lambda v: isinstance(v, bool)),
        "precision": ("'auto', 'bf16' or 'fp32'", lambda v: v in PRECISIONS),
        "grouping": ("'centers' or 'watershed'", lambda v: v in GROUPINGS),
        "center_sigma": ("a number > 0", _number(0, strict=True)),
        "center_weight": ("a number >= 0", _number(0)),
        "offset_weight": ("a number >= 0", _number(0)),
        "checkpoint_dir": ("a folder path or null", lambda v: v is None or isinstance(v, str)),
        "resume": ("a checkpoint path or null", lambda v: v is None or isinstance(v, str)),
    }

    def __init__(
        self,
        width: int = 16,
        depth: int = 3,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 3e-3,
        dice_weight: float = 1.0,
        n_labels: int | None = None,
        max_seconds: float | None = None,
        seed: int = 0,
        progress: bool = False,
        precision: str = "auto",
        grouping: str = "watershed",
        center_sigma: float = 4.0,
        center_weight: float = 200.0,
        offset_weight: float = 0.01,
        checkpoint_dir: str | None = None,
        resume: str | None = None,
    ) -> None:
        self.width = width
        self.depth = depth
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.dice_weight = dice_weight
        self.n_labels = n_labels
        self.max_seconds = max_seconds
        self.seed = seed
        self.progress = progress
        self.precision = precision
        self.grouping = grouping
        self.center_sigma = center_sigma
        self.center_weight = center_weight
        self.offset_weight = offset_weight
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    @property
    def has_centers(self) -> bool:
        """Whether the network has the centre/offset head: the fitted network's, else
        whether ``grouping`` is "centers" (the network that ``fit`` will build)."""
        net = self.__dict__.get("net_")
        if net is not None:
            return hasattr(net, "centers")
        return self.grouping == "centers"

    def _to_tensor(self, X: np.ndarray):
        import torch

        side = 2**self.depth
        if X.shape[1] % side or X.shape[2] % side:
            raise InputError(
                f"image sides {X.shape[1:3]} must be multiples of {side} for a depth-"
                f"{self.depth} U-Net"
            )
        return torch.from_numpy(X).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def _bf16(self) -> bool:
        """Whether training runs under bfloat16 autocast for the convolutions (``precision``
        ``"bf16"``, or ``"auto"`` where the CPU has native bfloat16: AVX512-BF16 / AMX); the
        weights, the optimiser and the loss stay float32, and prediction and validation run
        in float32 (so they match the ONNX export)."""
        import torch

        return self.precision == "bf16" or (
            self.precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )

    def _check_grouping(self, grouping) -> str:
        if grouping not in GROUPINGS:
            raise InputError(f"grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
        return grouping

    def fit(self, images, masks, *, instances=None, val=None, callbacks=()) -> UNetSegmenter:
        """Train on uint8 images (N, H, W, 3) and label masks (N, H, W), 0 = background.

        ``instances``: the object ids (N, H, W) (integers, 0 = none) that the centre and
        offset targets come from (``grouping`` "centers"); without them every 8-connected
        region of one label is taken for one object (touching objects of one class then
        teach one centre). ``val``: (images, masks[, instances]) validated after every epoch
        (loss and pixel accuracy, float32). ``callbacks``: extra
        :mod:`objrec.training.callbacks` objects, run after the built-in ones.

        Trains through :func:`objrec.training.loop.fit` with AdamW (weight decay 1e-4) at
        ``lr`` x :func:`lr_factor` of the progress, the larger of the steps done and, with
        ``max_seconds``, the time spent (so a time budget still ends annealed). Stops after
        ``epochs`` epochs or once ``max_seconds`` have passed (at the end of a batch).
        ``checkpoint_dir``: write ``last.pt`` there every epoch and ``best.pt`` when the
        validation pixel accuracy improves; ``resume``: a checkpoint (file or folder) to
        continue from, with its optimiser, schedule and random state (``epochs`` the new
        total; raised, the schedule stretches to it), the same scenes and network needed.

        ``history_``: one dict per epoch: ``epoch``, ``train_loss`` (mean per scene), with
        the centre head also its weighted parts ``train_semantic_loss``,
        ``train_center_loss``, ``train_offset_loss``; ``train_pixel_accuracy``; ``val_loss``
        and ``val_pixel_accuracy`` (None without ``val``); ``lr``; ``seconds`` (the epoch's).
        """
        import torch

        from objrec.training import callbacks as cb
        from objrec.training.checkpoint import load_checkpoint, set_rng_state
        from objrec.training.loop import Metric, TrainState
        from objrec.training.loop import fit as fit_loop

        if self.precision not in PRECISIONS:
            raise InputError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        self._check_grouping(self.grouping)
        X = check_images(images)
        Y, self.n_labels_ = check_masks(X, masks, self.n_labels)
        centers = self.grouping == "centers"  # not has_centers: a refit builds a new network
        if centers:
            for name in ("center_sigma", "center_weight", "offset_weight"):
                want, ok = self._param_rules[name]
                if not ok(getattr(self, name)):
                    raise InputError(f"{name} must be {want}, got {getattr(self, name)!r}")
        inst = None  # checked when given, though only the centre head uses them
        if centers or instances is not None:
            inst = self._instances_for(Y, instances)
        val_batches = self._val_batches(val, centers)
        self._fitted_on(X)
        ckpt = load_checkpoint(self.resume) if self.resume else None
        if ckpt is not None:
            self._check_resumable(ckpt)
        torch.manual_seed(self.seed)
        self.net_ = build_unet(self.n_labels_, self.width, self.depth, centers=centers)
        # start from the label prior (the output bias = log pixel frequency): otherwise Adam
        # moves the bias by about lr per step and needs thousands of steps to learn that
        # ~90 % of the pixels are background
        freq = np.bincount(Y.ravel(), minlength=self.n_labels_)[: self.n_labels_] + 1.0
        with torch.no_grad():
            self.net_.head.bias.copy_(torch.from_numpy(np.log(freq / freq.sum())).float())
            if centers:  # start at heatmap 0, offsets 0: no large early centre-loss gradients
                self.net_.centers[-1].weight.zero_()
                self.net_.centers[-1].bias.zero_()
        train = SceneBatches(
            X, Y, inst if centers else None, self.batch_size, to_tensor=self._to_tensor,
            shuffle=True, seed=self.seed, sigma=self.center_sigma,
        )  # fmt: skip
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        steps = self.epochs * max(1, len(train))
        start = time.perf_counter()

        def factor(step: int) -> float:
            t = step / steps
            if self.max_seconds:
                t = max(t, (time.perf_counter() - start) / self.max_seconds)
            return lr_factor(t)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        loss_fn = UNetLoss(self.n_labels_, self.dice_weight, self.center_weight,
                           self.offset_weight)  # fmt: skip
        metric = Metric(
            "pixel_accuracy", "pixacc", lambda out, t: pixel_hits(out, t, self.n_labels_)
        )
        state = TrainState(self.net_, opt, sched, loss_fn, amp=self._bf16(), metric=metric)
        if self.max_seconds:
            state.deadline = start + float(self.max_seconds)
        if ckpt is not None:
            self.net_.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            state.epoch = int(ckpt["epoch"])
            state.history = list(ckpt["meta"].get("history", []))
            set_rng_state(ckpt["rng"])
        cbs = [cb.EpochPrinter()] if self.progress else []
        saver = None
        if self.checkpoint_dir:
            saver = cb.Checkpointer(
                self.checkpoint_dir, self._checkpoint_meta, "val_pixel_accuracy"
            )
            cbs.append(saver)
        cbs += list(callbacks)
        try:
            fit_loop(state, train, val_batches, self.epochs, cbs, progress=self.progress)
        except KeyboardInterrupt:
            if saver is not None and state.epoch == 0:
                saver.save(state)  # a resumable starting point even before epoch 1 ends
            raise
        finally:
            self.history_ = list(state.history)
            self.net_.eval()
        return self

    def _val_batches(self, val, centers: bool):
        """The :class:`SceneBatches` of ``val`` = (images, masks[, instances]), or None."""
        if val is None:
            return None
        if not isinstance(val, tuple | list) or len(val) not in (2, 3):
            raise InputError("val must be (images, masks) or (images, masks, instances)")
        Xv = check_images(val[0])
        Yv, _ = check_masks(Xv, val[1], self.n_labels_)
        self._to_tensor(Xv[:0])  # sides that fit the network, before training starts
        inst = self._instances_for(Yv, val[2] if len(val) == 3 else None) if centers else None
        return SceneBatches(Xv, Yv, inst, 64, to_tensor=self._to_tensor, sigma=self.center_sigma)

    def _checkpoint_meta(self, state) -> dict:
        """What a checkpoint records besides the weights: the parameters, the labels, the
        image shape and the history so far."""
        keep = (str, int, float, bool, type(None))
        return {
            "method": self.method,
            "params": {k: v for k, v in self.get_params().items() if isinstance(v, keep)},
            "n_labels": self.n_labels_,
            "input_shape": list(self.input_shape_),
            "history": state.history,
        }

    def _check_resumable(self, ckpt) -> None:
        """The checkpoint ``ckpt`` was written by a U-Net of this network on such scenes."""
        m = ckpt["meta"]
        p = m.get("params", {})
        mine = (self.n_labels_, list(self.input_shape_), self.width, self.depth, self.grouping)
        theirs = (m.get("n_labels"), m.get("input_shape"), p.get("width"), p.get("depth"),
                  p.get("grouping"))  # fmt: skip
        if m.get("method") != self.method or mine != theirs:
            raise InputError(
                f"{self.resume}: the checkpoint is of a U-Net with (labels, image shape, width, "
                f"depth, grouping) {theirs}, this one {mine}; resume needs the same scenes and "
                "network"
            )

    def _instances_for(self, Y: np.ndarray, instances) -> np.ndarray:
        """The instance maps (N, H, W) the centre targets come from (uint16 where the ids
        fit, to keep 10,000 scenes small): ``instances`` checked against the masks ``Y``, or
        the 8-connected regions of each label."""
        from objrec.data.segfolders import instances_from_semantic

        if instances is None:
            return np.stack([instances_from_semantic(y) for y in Y] or [Y.astype(np.uint16)])
        inst = np.asarray(instances)
        if inst.shape != Y.shape:
            raise InputError(f"instances {inst.shape} do not match the masks {Y.shape}")
        if not np.issubdtype(inst.dtype, np.integer) or (inst.size and inst.min() < 0):
            raise InputError(f"instances must hold object ids >= 0 (integers), got {inst.dtype}")
        return inst.astype(np.uint16 if int(inst.max(initial=0)) < 2**16 else np.int64)

    def _forward(self, images, batch: int) -> np.ndarray:
        """The network's output float32 (N, L [+ 3], H, W) on ``images``, the L label
        channels turned into probabilities (softmax of the logits): float32, no autocast
        (as the ONNX export), ``batch`` images at a time written into one array, so that
        the memory held is the output and one batch's activations."""
        import torch

        self._check_fitted()
        X = check_images(images)
        L = self.n_labels_
        out = np.empty((len(X), L + (3 if self.has_centers else 0), *X.shape[1:3]), np.float32)
        self.net_.eval()
        with torch.inference_mode():
            for s in range(0, len(X), batch):
                y = self.net_(self._to_tensor(X[s : s + batch])).float()
                y[:, :L] = y[:, :L].softmax(1)
                out[s : s + len(y)] = y.numpy()
        return out

    def predict_proba(self, images, *, batch: int = 64) -> np.ndarray:
        """Label probabilities float32 (N, L, H, W) (softmax of the logits)."""
        return self._forward(images, batch)[:, : self.n_labels_]

    def predict_heads(self, images, *, batch: int = 64):
        """(label probabilities float32 (N, L, H, W), centre heatmap float32 (N, H, W),
        offsets to the object's centre float32 (N, 2, H, W), dy and dx in pixels) of a
        network with the centre head (``grouping`` "centers")."""
        self._check_fitted()
        if not self.has_centers:
            raise InputError(
                "this U-Net's network has no centre and offset head (it was trained with "
                "grouping='watershed'); train it with grouping='centers'"
            )
        out = self._forward(images, batch)
        L = self.n_labels_
        return out[:, :L], out[:, L], out[:, L + 1 : L + 3]

    def predict_panoptic(self, images, *, grouping: str | None = None, **kw):
        """(semantic uint8 (N, H, W), instances uint16 (N, H, W), scores [{id: score}]):
        objects grouped by ``grouping`` (default the segmenter's): "centers" from the
        centre and offset head (:func:`objrec.segmentation.centers.panoptic_centers_batch`,
        ``kw`` its options), "watershed" from the probabilities alone
        (:func:`objrec.segmentation.postprocess.panoptic_batch`)."""
        g = self._check_grouping(self.grouping if grouping is None else grouping)
        if g == "watershed":
            return super().predict_panoptic(images, **kw)
        from objrec.segmentation.centers import panoptic_centers_batch
        from objrec.segmentation.postprocess import join_panoptic

        X = check_images(images)
        return join_panoptic(
            [panoptic_centers_batch(*self.predict_heads(c), **kw) for c in chunks(X)]
        )

    # ----------------------------------------------------------------- model file
    def _save_artifact(self, folder) -> dict:
        """Write the network's state to ``weights.safetensors`` in ``folder``; the training
        history goes to the metadata."""
        from safetensors import SafetensorError
        from safetensors.torch import save

        from objrec.io import atomic_write_bytes

        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        file = Path(folder) / WEIGHTS_NAME
        try:
            atomic_write_bytes(file, save(state))
        except SafetensorError as e:
            raise ModelFileError(f"{file}: could not write the weights ({e})") from e
        return {"weights": WEIGHTS_NAME, "history": list(getattr(self, "history_", []))}

    @classmethod
    def _load_artifact(cls, folder, meta) -> UNetSegmenter:
        """The U-Net segmenter of model folder ``folder`` (``meta``: its validated metadata).
        The stored tensors' names and shapes are checked against the network that
        ``params`` (width, depth) and ``classes`` describe before anything is loaded."""
        import torch
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        from objrec.artifact import model_file
        from objrec.metadata import META_NAME

        est = cls._from_metadata(folder, meta)
        if "grouping" not in meta.params:  # saved before the centre head: semantic head only
            est.grouping = "watershed"
        where = Path(folder) / META_NAME
        side = 2**est.depth
        H, W = est.input_shape_[:2]
        if H % side or W % side:
            raise ModelFileError(
                f"{where}: field 'input_shape' {list(est.input_shape_)} does not fit a depth-"
                f"{est.depth} U-Net (sides multiples of {side}); the model file was edited"
            )
        file = model_file(folder, meta.weights or WEIGHTS_NAME)
        if not file.is_file():
            raise ModelFileError(f"{file}: missing; the model folder is incomplete")
        try:
            with safe_open(str(file), framework="pt") as f:
                stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(f"{file}: corrupt weights file ({e})") from e
        with torch.device("meta"):
            wanted = {
                k: tuple(v.shape)
                for k, v in build_unet(est.n_labels_, est.width, est.depth, centers=est.has_centers)
                .state_dict()
                .items()
            }
        head = stored.get("head.weight")
        if head is not None and head[0] != est.n_labels_:
            raise ModelFileError(
                f"{where}: field 'classes' holds {est.n_labels_} labels but the network in "
                f"{file.name} has {head[0]} outputs; the model file was edited"
            )
        if stored != wanted:
            bad = sorted(set(stored) ^ set(wanted)) or [k for k in wanted if stored[k] != wanted[k]]
            raise ModelFileError(
                f"{where}: field 'params' (width {est.width}, depth {est.depth}, grouping "
                f"{est.grouping}) does not fit "
                f"the weights in {file.name} (first difference: {bad[0]}); the model file was "
                "edited"
            )
        est.net_ = build_unet(est.n_labels_, est.width, est.depth, centers=est.has_centers)
        try:
            est.net_.load_state_dict(load_file(str(file)))
        except (SafetensorError, RuntimeError, OSError, ValueError) as e:
            raise ModelFileError(f"{file}: weights do not fit the U-Net ({e})") from e
        est.net_.eval()
        est.history_ = list(meta.history)
        return est
