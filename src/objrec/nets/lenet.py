"""``lenet5``: LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.

LeNet-5 was designed for 32x32 input; MNIST's 28x28 digits are padded by 2 in the first
convolution, as in the paper's own set-up::

    (N, C, 28, 28) -> Conv 5x5 pad 2, 6, ReLU -> (N, 6, 28, 28) -> MaxPool 2 -> (N, 6, 14, 14)
    -> Conv 5x5, 16, ReLU -> (N, 16, 10, 10) -> MaxPool 2 -> (N, 16, 5, 5)
    -> Flatten 400 -> Linear 120, ReLU -> Linear 84, ReLU -> Linear num_classes

The first convolution is padded by 2 for inputs under 32 pixels (none for 32 and up);
the second is padded by 2 when the image would otherwise shrink below 1x1 (8x8 digits:
8 -> 8 -> 4 -> 4 -> 2, flatten 16*2*2). The flatten size follows from ``input_size``.
"""

from __future__ import annotations

from torch import nn

from objrec.nets.base import Net, conv_out
from objrec.nets.registry import register_model


class LeNet5(Net):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        p1 = 0 if min(h, w) >= 32 else 2
        h1, w1 = conv_out(h, 5, p1) // 2, conv_out(w, 5, p1) // 2
        p2 = 0 if min(conv_out(h1, 5), conv_out(w1, 5)) // 2 >= 1 else 2
        fh, fw = conv_out(h1, 5, p2) // 2, conv_out(w1, 5, p2) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=p1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=p2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),  # (N, 16 * fh * fw)
        )
        self.num_features = 16 * fh * fw
        self.head = nn.Sequential(
            nn.Linear(self.num_features, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )


@register_model("lenet5")
def lenet5(in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)) -> LeNet5:
    return LeNet5(in_channels, num_classes, input_size)
