"""A training callback shared by the resume tests of classification and segmentation
(importable because ``tests/`` holds the root conftest)."""

from __future__ import annotations

from objrec.training.callbacks import Callback


class StopAfter(Callback):
    """Ctrl-C (KeyboardInterrupt) once epoch ``n`` is logged and checkpointed: callbacks
    given after the built-in ones run after the checkpoint is written."""

    def __init__(self, n: int):
        self.n = n

    def on_epoch_end(self, state, logs):
        if state.epoch == self.n:
            raise KeyboardInterrupt
