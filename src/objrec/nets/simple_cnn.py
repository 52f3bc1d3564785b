"""``simple_cnn``: the reference network of objrec's mission, layer for layer.

For 1x28x28 input::

    (N, 1, 28, 28) -> Conv 3x3, 32, ReLU -> (N, 32, 26, 26) -> MaxPool 2 -> (N, 32, 13, 13)
    -> Conv 3x3, 64, ReLU -> (N, 64, 11, 11) -> MaxPool 2 -> (N, 64, 5, 5)
    -> Flatten (N, 1600) -> Linear 64, ReLU -> Linear num_classes (logits)

Other inputs: ``in_channels`` sets the first convolution's depth (3 for RGB) and
``num_classes`` the last layer; the flatten size is computed from ``input_size``
(64 x h' x w' after the two conv/pool stages, e.g. 64*6*6 for 32x32). The convolutions
are unpadded as in the reference whenever that leaves at least 1x1 pixels, i.e. for
inputs of 10x10 and larger; smaller images (the 8x8 ``digits``) use padding 1 in both
convolutions, so 8x8 -> 8 -> 4 -> 4 -> 2 and the flatten is 64*2*2.
"""

from __future__ import annotations

from torch import nn

from objrec.nets.base import Net, conv_out
from objrec.nets.registry import register_model


def _final_size(size: int, padding: int) -> int:
    s = conv_out(size, 3, padding) // 2
    return conv_out(s, 3, padding) // 2


class SimpleCNN(Net):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        pad = 0 if min(_final_size(h, 0), _final_size(w, 0)) >= 1 else 1
        fh, fw = _final_size(h, pad), _final_size(w, pad)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),  # (N, 64 * fh * fw); 64*5*5 = 1600 for 28x28
        )
        self.num_features = 64 * fh * fw
        self.head = nn.Sequential(
            nn.Linear(self.num_features, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )


@register_model("simple_cnn")
def simple_cnn(in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)) -> SimpleCNN:
    return SimpleCNN(in_channels, num_classes, input_size)
