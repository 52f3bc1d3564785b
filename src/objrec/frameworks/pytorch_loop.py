"""PyTorch: ``nn.Module`` and the source notes' hand-written loop (``DataLoader``, Adam,
``zero_grad`` / ``backward`` / ``step``), on objrec's arrays instead of torchvision's MNIST
(the same split and normalisation as every other framework). The notes' 64*5*5 flatten is
right for 28x28; it is computed from the input size here. Weights are set to the scheme
every file uses (Glorot uniform, zero biases: Keras' default) instead of PyTorch's own
(Kaiming uniform with a = sqrt(5), uniform biases). Validation reports accuracy, not only loss.
"""

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

from objrec.frameworks._common import EpochClock


class SimpleCNN(nn.Module):
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


def loader(data, split, batch_size, shuffle=False):
    x = torch.from_numpy(data[f"x_{split}"]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return DataLoader(
        TensorDataset(x, torch.from_numpy(data[f"y_{split}"])),
        batch_size=batch_size,
        shuffle=shuffle,
    )


def accuracy(model, batches):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    return correct / total


def train(data: dict, epochs: int, batch_size: int, seed: int) -> dict:
    torch.manual_seed(seed)
    h, w, c = data["x_train"].shape[1:]
    flat = ((h - 2) // 2 - 2) // 2 * (((w - 2) // 2 - 2) // 2) * 64
    train_loader = loader(data, "train", batch_size, shuffle=True)
    val_loader = loader(data, "val", 1000)
    test_loader = loader(data, "test", 1000)
    model = SimpleCNN(c, data["n_classes"], flat)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.001)
    clock = EpochClock()
    clock.start()
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        clock.epoch_end(accuracy(model, val_loader))
    params = sum(p.numel() for p in model.parameters())
    return {**clock.result(accuracy(model, test_loader), params), "model": model}
