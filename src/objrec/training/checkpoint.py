"""Checkpoints: one self-describing file, written atomically, loaded without unpickling code.

A checkpoint is a dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)`` (tensors, numbers, strings, lists, dicts only)::

    format: "objrec-checkpoint", version: 1
    meta:      JSON text: model name and args, classes, preprocessing, training config,
               history, best score (everything needed to rebuild the model)
    model:     state_dict of the network
    optimizer: state_dict, scheduler: state_dict
    epoch:     epochs completed
    rng:       torch, numpy and Python random states

The file is written to a temporary name and renamed (``objrec.io.atomic_write_bytes``),
so a crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import torch

from objrec.errors import ModelFileError, ObjrecError
from objrec.io import atomic_write_bytes, to_json

FORMAT = "objrec-checkpoint"
VERSION = 1


class CheckpointError(ObjrecError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


def rng_state() -> dict:
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is what is saved)
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": json.dumps(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    s = state["numpy"]
    np.random.set_state((s[0], s[1].numpy().astype(np.uint32), *s[2:]))  # noqa: NPY002
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(path, *, model, optimizer=None, scheduler=None, epoch: int, meta: dict) -> Path:
    """Write a checkpoint of ``model`` (unwrapped from DDP) atomically to ``path``."""
    path = Path(path)
    model = getattr(model, "module", model)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "meta": to_json(meta),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "epoch": int(epoch),
        "rng": rng_state(),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise CheckpointError(
            f"could not write checkpoint {path} ({e.strerror or e}); "
            "the previous checkpoint is intact. Free disk space or choose another --out"
        ) from e
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint file (or ``last.pt`` in a run folder / its ``checkpoints/``)."""
    p = Path(path)
    for cand in (p, p / "checkpoints" / "last.pt", p / "last.pt"):
        if cand.is_file():
            p = cand
            break
    else:
        raise ModelFileError(f"{path}: no checkpoint found (looked for checkpoints/last.pt in it)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(f"{p}: corrupt or not an objrec checkpoint ({e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelFileError(f"{p}: not an objrec checkpoint")
    if state.get("version", 0) > VERSION:
        raise ModelFileError(f"{p}: written by a newer objrec; upgrade objrec")
    state["meta"] = json.loads(state["meta"])
    state["path"] = str(p)
    return state
