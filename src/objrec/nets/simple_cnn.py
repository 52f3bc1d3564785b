"""``simple_cnn``: the reference network of objrec's mission, layer for layer.

For 1x28x28 input::

    (N, 1, 28, 28) -> Conv 3x3, 32, ReLU -> (N, 32, 26, 26) -> MaxPool 2 -> (N, 32, 13, 13)
    -> Conv 3x3, 64, ReLU -> (N, 64, 11, 11) -> MaxPool 2 -> (N, 64, 5, 5)
    -> Flatten (N, 1600) -> Linear 64, ReLU -> Linear num_classes (logits)

Other inputs: ``in_channels`` sets the first convolution's depth (3 for RGB) and
``num_classes`` the last layer. Maps larger than the reference's 5x5 after the two
conv/pool stages are average-pooled to 5x5 (:class:`GridPool`, the windows of
``AdaptiveAvgPool2d`` as two matrix products, which ONNX exports at any size; before the flatten),
so the flatten stays 64*5*5 and the first linear layer keeps its 102k weights at any
input size (a 320x240 photo would otherwise need a 76x58x64 -> 64 layer of 18M weights,
72 MB, that 150 images cannot train); smaller maps are flattened as they are (64 x h' x w',
e.g. 64*3*3 for 20x20). The convolutions are unpadded as in the reference whenever that
leaves at least 1x1 pixels, i.e. for inputs of 10x10 and larger; smaller images (the
8x8 ``digits``) use padding 1 in both convolutions, so 8x8 -> 8 -> 4 -> 4 -> 2 and the
flatten is 64*2*2. At 28x28 the network is exactly the reference (no pooling layer added).
"""

from __future__ import annotations

import torch
from torch import nn

from objrec.nets.base import Net, conv_out
from objrec.nets.registry import register_model

GRID = 5  # the reference's final map side (28x28 input), the largest one kept as it is


def _pool_matrix(size: int, out: int) -> torch.Tensor:
    """(out, size) float32: row i averages positions floor(i*size/out) .. ceil((i+1)*size/out)-1,
    the windows of ``torch.nn.AdaptiveAvgPool1d``."""
    m = torch.zeros(out, size)
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


class GridPool(nn.Module):
    """Average-pool (N, C, h, w) maps to (N, C, oh, ow) with adaptive windows:
    ``P_h @ x @ P_w^T``. The same numbers as ``nn.AdaptiveAvgPool2d((oh, ow))`` for this
    (h, w), in operations (MatMul) that ONNX exports when oh, ow do not divide h, w.
    The matrices are fixed by the sizes and are not part of the state dict."""

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", _pool_matrix(in_size[0], out_size[0]), persistent=False)
        self.register_buffer(
            "cols", _pool_matrix(in_size[1], out_size[1]).T.contiguous(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.rows, torch.matmul(x, self.cols))


def _final_size(size: int, padding: int) -> int:
    s = conv_out(size, 3, padding) // 2
    return conv_out(s, 3, padding) // 2


class SimpleCNN(Net):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)):
        super().__init__()
        h, w = input_size
        pad = 0 if min(_final_size(h, 0), _final_size(w, 0)) >= 1 else 1
        fh, fw = _final_size(h, pad), _final_size(w, pad)
        layers = [
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        if fh > GRID or fw > GRID:  # (N, 64, fh, fw) -> (N, 64, <=5, <=5)
            grid = (min(fh, GRID), min(fw, GRID))
            layers.append(GridPool((fh, fw), grid))
            fh, fw = grid
        layers.append(nn.Flatten())  # (N, 64 * fh * fw); 64*5*5 = 1600 for 28x28
        self.features = nn.Sequential(*layers)
        self.num_features = 64 * fh * fw
        self.head = nn.Sequential(
            nn.Linear(self.num_features, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )


@register_model("simple_cnn")
def simple_cnn(in_channels: int = 1, num_classes: int = 10, input_size=(28, 28)) -> SimpleCNN:
    return SimpleCNN(in_channels, num_classes, input_size)
