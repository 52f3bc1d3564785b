"""PyTorch Lightning 2.x: a ``LightningModule`` (``training_step``, ``validation_step``,
``configure_optimizers``) trained by ``lightning.Trainer``, as the source notes' example.

Fixes to the notes: ``import pytorch_lightning`` is the 1.x package name (2.x is
``lightning``); its normalisation mean 0.3387 and a 56,000 + 10,000 split of MNIST's 60,000
training images do not add up (objrec's 50,000 / 10,000 / 10,000 split and training-split
mean and std are used, as everywhere); the training loader is shuffled; validation logs
accuracy; weights are Glorot uniform with zero biases (Keras' default, the scheme every
file uses) instead of PyTorch's Kaiming uniform. Checkpoints, loggers and the progress bar are off so no files are written.
"""

import lightning as L
import torch
from torch import nn, optim
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from objrec.frameworks._common import EpochClock


class LitModel(L.LightningModule):
    def __init__(self, channels, n_classes, flat):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.fc1 = nn.Linear(flat, 64)
        self.fc2 = nn.Linear(64, n_classes)
        self.flat = flat
        for m in self.modules():  # Glorot-uniform weights, zero biases: Keras' default
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(x, 2)
        x = torch.relu(self.conv2(x))
        x = torch.max_pool2d(x, 2)
        x = x.view(-1, self.flat)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(dim=1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return optim.Adam(self.parameters(), lr=0.001)


class EpochTimes(L.Callback):
    def __init__(self, clock):
        self.clock = clock

    def on_train_epoch_end(self, trainer, pl_module):
        self.clock.epoch_end(trainer.callback_metrics["val_acc"].item())


def loader(data, split, batch_size, shuffle=False):
    x = torch.from_numpy(data[f"x_{split}"]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return DataLoader(
        TensorDataset(x, torch.from_numpy(data[f"y_{split}"])),
        batch_size=batch_size,
        shuffle=shuffle,
    )


def train(data: dict, epochs: int, batch_size: int, seed: int) -> dict:
    L.seed_everything(seed, verbose=False)
    h, w, c = data["x_train"].shape[1:]
    flat = ((h - 2) // 2 - 2) // 2 * (((w - 2) // 2 - 2) // 2) * 64
    model = LitModel(c, data["n_classes"], flat)
    clock = EpochClock()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[EpochTimes(clock)],
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    clock.start()
    trainer.fit(model, loader(data, "train", batch_size, True), loader(data, "val", 1000))
    (test,) = trainer.test(model, loader(data, "test", 1000), verbose=False)
    params = sum(p.numel() for p in model.parameters())
    return {**clock.result(test["test_acc"], params), "model": model}
