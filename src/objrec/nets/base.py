"""Shared base of objrec's networks: features, then a head."""

from __future__ import annotations

import torch
from torch import nn


class Net(nn.Module):
    """A classifier split in two: ``features`` (N, C, H, W) -> (N, D) and ``head`` (N, D) -> logits.

    Subclasses set ``self.features`` (ending in a flatten or global pool), ``self.head``
    (a ``nn.Linear`` or a small ``nn.Sequential`` ending in one) and ``self.num_features`` (D).
    """

    features: nn.Module
    head: nn.Module
    num_features: int
    # (H, W) the network resizes its input to before computing (a pretrained backbone's
    # side); None: it computes at the size of its input.
    image_size: tuple[int, int] | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 -> (N, D) features."""
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (N, num_classes) logits."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer by a freshly initialised one for ``num_classes``."""
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        new = nn.Linear(last.in_features, num_classes)
        if isinstance(self.head, nn.Sequential):
            self.head[-1] = new
        else:
            self.head = new
        if hasattr(self, "model_args"):
            self.model_args = {**self.model_args, "num_classes": int(num_classes)}


def conv_out(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """Spatial size after a convolution or pooling: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1
