"""Data-parallel training under ``torchrun`` (DistributedDataParallel), on one or more machines.

``torchrun`` describes each process in environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``; ``MASTER_ADDR``/``MASTER_PORT`` for the
rendezvous); :meth:`DistInfo.from_env` is the one place in objrec that reads them.
:func:`setup` joins the process group with the backend :func:`backend_for` picks for the
training device (nccl on CUDA, gloo otherwise). Each rank trains on its share of every
global batch (see :class:`objrec.training.loader.BatchLoader`); DDP averages the
gradients, so all ranks hold the same weights. Only rank 0 writes files and shows
progress. BatchNorm statistics are per rank (not synchronised).

Collectives (:func:`all_reduce_sum`) take tensors on the training device: an nccl group
reduces CUDA tensors only, so the loop allocates its sums where the model lives.
:class:`DistInfo` needs no PyTorch (the CLI asks for the rank before it knows whether a
network trains); the functions import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from objrec.errors import ObjrecError

if TYPE_CHECKING:
    import torch


class DistributedError(ObjrecError, RuntimeError):
    """The torchrun environment or the process group does not fit the training asked for."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes in all,
    ``local_rank`` of ``local_world_size`` on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistInfo:
        """The process's place as ``torchrun`` set it in ``environ`` (default ``os.environ``).

        Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``): a single process, ``DistInfo()``.
        ``LOCAL_RANK`` defaults to 0; ``LOCAL_WORLD_SIZE`` to ``WORLD_SIZE`` (one machine).
        Raises :class:`DistributedError` on values torchrun would not set.
        """
        env = os.environ if environ is None else environ

        def read(name: str, default: int | None) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                if default is None:
                    raise DistributedError(
                        f"WORLD_SIZE={env.get('WORLD_SIZE')} but {name} is not set; "
                        "launch data-parallel training with torchrun"
                    )
                return default
            try:
                return int(raw)
            except ValueError:
                raise DistributedError(f"{name}={raw!r}: expected an integer") from None

        world = read("WORLD_SIZE", 1)
        if world < 1:
            raise DistributedError(f"WORLD_SIZE={world}: must be at least 1")
        if world == 1:
            return cls()
        info = cls(
            rank=read("RANK", None),
            world_size=world,
            local_rank=read("LOCAL_RANK", 0),
            local_world_size=read("LOCAL_WORLD_SIZE", world),
        )
        if not 0 <= info.rank < world:
            raise DistributedError(f"RANK={info.rank}: must be in 0..{world - 1} (WORLD_SIZE)")
        if not 1 <= info.local_world_size <= world:
            raise DistributedError(
                f"LOCAL_WORLD_SIZE={info.local_world_size}: must be in 1..{world} (WORLD_SIZE)"
            )
        if not 0 <= info.local_rank < info.local_world_size:
            raise DistributedError(
                f"LOCAL_RANK={info.local_rank}: must be in 0..{info.local_world_size - 1} "
                "(LOCAL_WORLD_SIZE)"
            )
        return info


def backend_for(device: torch.device) -> str:
    """The process-group backend for training on ``device``: nccl on CUDA, gloo otherwise."""
    import torch

    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (a no-op otherwise).

    ``device``: the device this rank trains on; it decides the backend
    (:func:`backend_for`) and, on CUDA, becomes the current device, on which nccl runs
    its collectives. A group that already exists must use that backend.
    """
    info = DistInfo.from_env()
    if not info.enabled:
        return info
    import torch
    import torch.distributed as dist

    device = torch.device(device)
    backend = backend_for(device)
    if dist.is_initialized() and dist.get_backend() != backend:
        raise DistributedError(
            f"the process group runs {dist.get_backend()}, but training on {device} needs {backend}"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return info


def current() -> DistInfo:
    """The process group this process is in (``DistInfo()`` when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        env = DistInfo.from_env()
        local_world = min(env.local_world_size, dist.get_world_size())
        return DistInfo(dist.get_rank(), dist.get_world_size(), env.local_rank, local_world)
    return DistInfo()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks (in place); unchanged when not distributed.

    ``t`` must live where the group's backend reduces: on the CUDA device under nccl.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        backend = dist.get_backend()
        if backend == "nccl" and t.device.type != "cuda":
            raise DistributedError(
                f"all_reduce_sum: an nccl group reduces CUDA tensors, got one on {t.device}; "
                "allocate it on the training device"
            )
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when distributed."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = (
        [device.index if device.index is not None else info.local_rank]
        if device.type == "cuda"
        else None
    )
    return DistributedDataParallel(model, device_ids=ids)


def cleanup() -> None:
    """Leave the process group (a no-op when there is none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
