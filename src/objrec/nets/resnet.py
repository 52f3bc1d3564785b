"""``resnet_small``: a small residual network built to reach high accuracy quickly on a few CPU cores.

Layout (widths w = (32, 64, 128) by default; shapes for 1x28x28 input)::

    Conv 3x3 C->w0, BN, ReLU    (N, w0, 28, 28)  -> MaxPool 2 (N, w0, 14, 14)
    Conv 3x3 w0->w1, BN, ReLU   (N, w1, 14, 14)  -> MaxPool 2 (N, w1, 7, 7)
    Conv 3x3 w1->w2, BN, ReLU   (N, w2, 7, 7)    -> MaxPool 2 (N, w2, 3, 3)
    residual block: x + BN(Conv(ReLU(BN(Conv(x))))), ReLU     (N, w2, 3, 3)
    global max + mean pooling, concatenated                   (N, 2*w2)
    Linear 2*w2 -> num_classes

Why this shape: on CPUs the cost of a 3x3 convolution is H*W*9*Cin*Cout multiply-adds,
so channels grow only as the image shrinks (about 10M multiply-adds per 28x28 image,
4x simple_cnn's 2.5M) and the residual block, which adds depth, runs where the
map is 3x3 and cheap. BatchNorm lets SGD with a one-cycle schedule and a high learning
rate converge in a few epochs. All convolutions have padding 1, so any input of 8x8 or
more works (8x8 digits: 8 -> 4 -> 2 -> 1).
"""

from __future__ import annotations

import torch
from torch import nn

from objrec.nets.base import Net
from objrec.nets.registry import register_model


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """Conv 3x3 (padding 1, no bias), BatchNorm, ReLU: (N, cin, H, W) -> (N, cout, H, W)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    """x + BN(Conv(ReLU(BN(Conv(x))))), then ReLU; shapes unchanged (N, C, H, W)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c, c), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class MaxMeanPool(nn.Module):
    """(N, C, H, W) -> (N, 2C): global max and global mean, concatenated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


class ResNetSmall(Net):
    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, input_size=(28, 28), widths=(32, 64, 128)
    ):
        super().__init__()
        w0, w1, w2 = widths
        self.features = nn.Sequential(
            conv_bn(in_channels, w0),
            nn.MaxPool2d(2),
            conv_bn(w0, w1),
            nn.MaxPool2d(2),
            conv_bn(w1, w2),
            nn.MaxPool2d(2),
            Residual(w2),
            MaxMeanPool(),
        )
        self.num_features = 2 * w2
        self.head = nn.Linear(self.num_features, num_classes)


@register_model("resnet_small")
def resnet_small(
    in_channels: int = 1, num_classes: int = 10, input_size=(28, 28), widths=(32, 64, 128)
) -> ResNetSmall:
    return ResNetSmall(in_channels, num_classes, input_size, tuple(widths))
