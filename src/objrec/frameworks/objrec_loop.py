"""objrec's own PyTorch loop: ``objrec.make_method("simple_cnn", recipe="seed")`` (the source
notes' recipe: Adam 1e-3, batch 32, constant rate, no step floor), no augmentation and no
early stopping, on the same uint8 arrays (it normalises with the training split's mean and
std itself, as the other files do). It trains channels-last with batches converted on the
fly; threads as the other processes (``OMP_NUM_THREADS``). Its network starts from the
scheme every file uses (:mod:`objrec.frameworks`): Glorot-uniform weights and zero biases,
set by a callback before the first step (objrec's own default is PyTorch's).
"""

import os

import numpy as np
import torch
from torch import nn

import objrec
from objrec.frameworks._common import EpochClock
from objrec.training.callbacks import Callback


class GlorotInit(Callback):
    def on_train_begin(self, state):
        with torch.no_grad():
            for m in state.model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)


class EpochTimes(Callback):
    def __init__(self, clock):
        self.clock = clock

    def on_epoch_end(self, state, logs):
        self.clock.epoch_end(logs["val_accuracy"])


def train(data: dict, epochs: int, batch_size: int, seed: int) -> dict:
    with np.load(data["path"]) as z:
        raw = {k: z[k] for k in z.files}
    clf = objrec.make_method(
        "simple_cnn",
        recipe="seed",
        epochs=epochs,
        batch_size=batch_size,
        augment="none",
        early_stopping=0,
        threads=int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
        seed=seed,
        verbose=0,
    )
    clock = EpochClock()
    clock.start()
    clf.fit(
        raw["x_train"],
        raw["y_train"],
        raw["x_val"],
        raw["y_val"],
        callbacks=[GlorotInit(), EpochTimes(clock)],
    )
    test_acc = float(np.mean(clf.predict(raw["x_test"]) == raw["y_test"]))
    params = sum(p.numel() for p in clf.model_.parameters())
    return {**clock.result(test_acc, params), "model": clf.model_}
