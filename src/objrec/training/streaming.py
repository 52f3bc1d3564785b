"""Batches decoded from image files by DataLoader worker processes, for sets too large for memory.

:class:`StreamingLoader` has the interface of :class:`~objrec.training.loader.BatchLoader`
and draws the very same batches (same seeded order per epoch, same rank sharding): a batch
sampler hands each worker a whole batch of indices, the worker decodes those files
(``ImageFiles.read``) and returns one uint8 tensor ``(B, C, H, W)``. Normalisation and
augmentation then run on the whole batch in the training loop, as for in-memory data.

A file that cannot be decoded is left out of its batch and named in one
:class:`~objrec.data.folders.DatasetWarning` (``skip_errors=True``, for training), or
raises :class:`~objrec.errors.DatasetError` (``skip_errors=False``, for prediction).
"""

from __future__ import annotations

import numpy as np
import torch

from objrec.cpu import usable_cores
from objrec.training.loader import BatchLoader, to_nchw


def default_num_workers() -> int:
    """Decoding processes when none are given: the usable cores, at most 4."""
    return min(4, usable_cores())


class _DecodeBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item is a whole batch: index list -> (x, y, failed)."""

    def __init__(self, source, y: torch.Tensor, skip_errors: bool):
        self.source, self.y, self.skip_errors = source, y, skip_errors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: torch.Tensor):
        idx = idx.numpy()
        if hasattr(self.source, "read"):
            images, kept, failed = self.source.read(idx, skip_errors=self.skip_errors)
        else:  # any array-like of uint8 images
            images, kept, failed = np.asarray(self.source[idx]), np.arange(len(idx)), []
        x = torch.from_numpy(to_nchw(images))  # (B, C, H, W) uint8
        return x, self.y[torch.from_numpy(idx[kept])], failed


class _EpochBatches(torch.utils.data.Sampler):
    """The loader's current epoch of batches, as index tensors (drawn in the main process)."""

    def __init__(self, loader: BatchLoader):
        self.loader = loader

    def __iter__(self):
        return self.loader.batch_indices()

    def __len__(self) -> int:
        return len(self.loader)


def _as_is(batch):
    return batch


class StreamingLoader(BatchLoader):
    """Iterate ``(x uint8 (B, C, H, W), y int64 (B,))`` batches decoded by worker processes.

    Parameters
    ----------
    X : an :class:`objrec.data.lazy.ImageFiles` (or any uint8 array-like (N, H, W[, C])
        indexable by an index array)
    y : int64 (N,) labels (tensor or array)
    batch_size, shuffle, seed, rank, world_size, drop_last, steps_per_epoch : as
        :class:`BatchLoader` (same batches)
    num_workers : decoding processes (None: :func:`default_num_workers`; 0: decode in the
        calling process)
    pin_memory : page-locked batches for fast copies to a CUDA device
    skip_errors : leave undecodable images out (with a warning) instead of raising
    """

    def __init__(
        self,
        X,
        y,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int | None = None,
        pin_memory: bool = False,
        skip_errors: bool = True,
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
    ):
        y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
        super().__init__(
            X, y, batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
            drop_last=drop_last, steps_per_epoch=steps_per_epoch,
        )  # fmt: skip
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.pin_memory, self.skip_errors = pin_memory, skip_errors

    def __iter__(self):
        from objrec.data.lazy import warn_failed

        workers = max(0, min(self.num_workers, len(self)))
        loader = torch.utils.data.DataLoader(
            _DecodeBatches(self.X, self.y, self.skip_errors),
            sampler=_EpochBatches(self),
            batch_size=None,  # each item is already a batch
            collate_fn=_as_is,
            num_workers=workers,
            pin_memory=self.pin_memory,
            prefetch_factor=2 if workers else None,
            generator=torch.Generator(),  # leaves the global RNG (dropout, ...) untouched
        )
        for x, y, failed in loader:
            warn_failed(failed)
            if len(y):
                yield x, y
