"""``mlp``: a multilayer perceptron on the flattened image, the baseline for the convolution argument.

    (N, C, H, W) -> Flatten (N, C*H*W) -> Linear 256, ReLU -> Linear 128, ReLU -> Linear num_classes

Every input value has its own weight in every first-layer unit (784 x 256 weights for
28x28 grey against 9 + 1 per 3x3 conv filter) and nothing is shared across positions, so
a shifted digit is a different input: the invariance suite shows what that costs.
"""

from __future__ import annotations

from torch import nn

from objrec.nets.base import Net
from objrec.nets.registry import register_model


class MLP(Net):
    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, input_size=(28, 28), hidden=(256, 128)
    ):
        super().__init__()
        d = in_channels * input_size[0] * input_size[1]
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.features = nn.Sequential(*layers)
        self.num_features = d
        self.head = nn.Linear(d, num_classes)


@register_model("mlp")
def mlp(in_channels: int = 1, num_classes: int = 10, input_size=(28, 28), hidden=(256, 128)) -> MLP:
    return MLP(in_channels, num_classes, input_size, tuple(hidden))
