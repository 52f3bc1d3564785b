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

    ``drop_last``: also drop a final batch of less than half a batch (or of one image),
    which would weigh as much as a full one in the optimiser and give BatchNorm too few
    images (see :func:`objrec.training.recipes.keep_last`). ``steps_per_epoch``: an epoch
    is that many batches, drawn from as many consecutive passes (each its own seeded
    permutation) as it takes, so that an epoch of a small set can span several passes;
    None: one pass.
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
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
    ):
        if len(X) != len(y):
            raise ValueError(f"{len(X)} images but {len(y)} labels")
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _keeps(self, rest: int, first: bool) -> bool:
        """Whether a last batch of ``rest`` images is used (``first``: the pass's only one)."""
        from objrec.training.recipes import keep_last

        if rest < self.world_size:
            return False
        return first or not self.drop_last or keep_last(rest, self.batch_size)

    def batches_per_pass(self) -> int:
        n = len(self.y) // self.batch_size
        rest = len(self.y) - n * self.batch_size
        return n + (rest > 0 and self._keeps(rest, n == 0))

    def __len__(self) -> int:
        return self.steps_per_epoch or self.batches_per_pass()

    def _order(self, j: int) -> torch.Tensor:
        """The image order of pass ``j`` of this epoch (pass 0: seeded by seed and epoch)."""
        n = len(self.y)
        if not self.shuffle:
            return torch.arange(n)
        key = self.seed * 1_000_003 + self.epoch
        if j:
            key = (key * 1_000_033 + j * 7_919) % (2**62)
        return torch.randperm(n, generator=torch.Generator().manual_seed(key))

    def batch_indices(self):
        """This epoch's batches as int64 index tensors (this rank's share of each)."""
        n, done, j = len(self.y), 0, 0
        if self.batches_per_pass() == 0:
            return
        while True:
            order = self._order(j)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < self.batch_size and not self._keeps(len(idx), start == 0):
                    break
                if self.world_size > 1:
                    idx = idx[: len(idx) - len(idx) % self.world_size][self.rank :: self.world_size]
                yield idx
                done += 1
                if self.steps_per_epoch and done >= self.steps_per_epoch:
                    return
            j += 1
            if not self.steps_per_epoch:
                return

    def __iter__(self):
        for idx in self.batch_indices():
            yield self.X[idx], self.y[idx]
