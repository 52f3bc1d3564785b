"""An in-memory batch loader over uint8 tensors (airbench style).

The whole split lives in one uint8 tensor ``(N, C, H, W)`` (28x28 MNIST: 47 MB for 60k
images); a batch is an index into it, converted to float, normalised and augmented as a
whole by the loop. No per-sample ``Dataset.__getitem__``, no worker processes.
"""

from __future__ import annotations

import numpy as np
import torch


def to_nchw(X: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> (N, C, H, W) (an alpha channel is dropped).

    The result is writable (read-only input is copied) so that it can back a tensor.
    """
    if not X.flags.writeable:
        X = X.copy()
    if X.ndim == 3:
        return X[:, None]
    if X.shape[-1] == 4:
        X = X[..., :3]
    return np.ascontiguousarray(X.transpose(0, 3, 1, 2))


class BatchLoader:
    """Iterate ``(x_uint8 (B, C, H, W), y_int64 (B,))`` batches of tensors held in memory.

    The order of each epoch is a permutation drawn from ``seed + epoch`` (call
    :meth:`set_epoch`), so an epoch's batches are the same whether training ran straight
    through or was resumed. Under data-parallel training (``world_size > 1``) every rank
    draws the same global batch of ``batch_size`` images and keeps its ``rank::world_size``
    share, so the averaged gradient equals single-process training with the same batch;
    a final batch smaller than ``world_size`` is dropped.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(X) != len(y):
            raise ValueError(f"{len(X)} images but {len(y)} labels")
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.y) // self.batch_size
        rest = len(self.y) - n * self.batch_size
        return n + (rest >= self.world_size)

    def batch_indices(self):
        """This epoch's batches as int64 index tensors (this rank's share of each)."""
        n = len(self.y)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < self.world_size:
                break
            if self.world_size > 1:
                idx = idx[: len(idx) - len(idx) % self.world_size][self.rank :: self.world_size]
            yield idx

    def __iter__(self):
        for idx in self.batch_indices():
            yield self.X[idx], self.y[idx]
