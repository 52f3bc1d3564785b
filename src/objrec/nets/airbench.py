"""``airbench``: the fast CIFAR-10 network of Keller Jordan's airbench94, with its own
test-time augmentation.

Layers, for (N, 3, 32, 32) input (shapes for that size):

- ``whiten``: a frozen 2x2 convolution (float32 also under autocast), 3 -> 24 channels
  (N, 24, 31, 31), set from training
  patches by :meth:`Airbench.init_whitening`: its first 12 filters are the eigenvectors of
  the 2x2x3 patch covariance divided by the square roots of their eigenvalues (so its
  outputs have identity covariance on those patches), the other 12 their negatives (GELU
  keeps both signs). Only its bias trains (the first epochs of the recipe);
- then GELU and three stages of conv3x3 - maxpool 2 - BatchNorm - GELU - conv3x3 -
  BatchNorm - GELU, of ``widths`` channels (64, 256, 256): (N, 64, 15, 15), (N, 256, 7, 7),
  (N, 256, 3, 3); BatchNorm without scale (only its bias trains), convolutions
  initialised partly as identities (Dirac);
- a global max pool, a bias-free linear layer to the classes, logits times ``scale`` (1/9).

In eval mode ``forward`` averages the logits over ``tta`` views: 0 the image, 1 also its
mirror image, 2 also both of them shifted by one pixel up-left and down-right (reflect
padding), weighted as airbench94 does (1/2 the unshifted pair, 1/4 each shifted pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from objrec.nets.base import Net
from objrec.nets.registry import register_model

WIDTHS = (64, 256, 256)
WHITEN_KERNEL = 2


class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with the scale fixed at 1 (not trained) and a trained bias; ``momentum``
    is PyTorch's (the share of the new batch in the running statistics)."""

    def __init__(self, channels: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 'same' convolution without bias, its first ``c_in`` filters identities."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class _Stage(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__(
            _conv(c_in, c_out),
            nn.MaxPool2d(2),
            _BatchNorm(c_out, bn_momentum),
            nn.GELU(),
            _conv(c_out, c_out),
            _BatchNorm(c_out, bn_momentum),
            nn.GELU(),
        )


class Airbench(Net):
    """(N, C, H, W) normalised images -> (N, num_classes) logits (see the module doc)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        widths=WIDTHS,
        tta: int = 2,
        scale: float = 1 / 9,
        bn_momentum: float = 0.4,
    ):
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"airbench: widths needs 3 values (one per stage), got {widths}")
        if tta not in (0, 1, 2):
            raise ValueError(f"airbench: tta must be 0, 1 or 2, got {tta}")
        k = WHITEN_KERNEL
        n_white = 2 * in_channels * k * k
        self.whiten = nn.Conv2d(in_channels, n_white, k, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        with torch.no_grad():
            self.whiten.bias.zero_()
        c = [n_white, *(int(w) for w in widths)]
        self.stages = nn.Sequential(*(_Stage(c[i], c[i + 1], bn_momentum) for i in range(3)))
        self.head = nn.Linear(c[-1], num_classes, bias=False)
        self.num_features = c[-1]
        self.scale = float(scale)
        self.tta = int(tta)

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen whitening filters from images ``x`` (N, C, H, W), normalised as the
        network's input (all 2x2 patches of them; airbench94 uses 5,000 training images).

        Afterwards the first half of ``whiten``'s outputs (bias 0) has covariance
        ``E[p p^T]``-whitened to about the identity over those patches (``eps`` regularises
        the smallest eigenvalues)."""
        k = WHITEN_KERNEL
        c = self.whiten.in_channels
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"init_whitening: images must be (N, {c}, H, W), got {tuple(x.shape)}")
        p = patches(x.float(), k)  # (P, C*k*k)
        cov = p.T @ p / len(p)
        eigval, eigvec = torch.linalg.eigh(cov.double())  # ascending
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)  # largest first
        filt = (eigvec.T / torch.sqrt(eigval + eps)[:, None]).reshape(c * k * k, c, k, k)
        self.whiten.weight.copy_(torch.cat([filt, -filt]).to(self.whiten.weight.dtype))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, widths[-1]) max-pooled features (one view).

        The whitening layer computes in float32 even under autocast: its filters for the
        smallest eigenvalues take small differences of neighbouring pixels, which bf16
        (8-bit mantissa) rounds away; on CIFAR-10 the weakest whitened channel kept 32%
        rounding noise in bf16 (of its rms), the strongest 0.2%."""
        with torch.autocast(x.device.type, enabled=False):
            x = F.gelu(self.whiten(x.float()))
        x = self.stages(x)
        return torch.amax(x, dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(N, widths[-1]) -> (N, num_classes) logits, times ``scale``."""
        return self.head(features) * self.scale

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """One view's logits (N, num_classes), no test-time augmentation."""
        return self.forward_head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.tta == 0:
            return self.logits(x)
        return tta_logits(self.logits, x, self.tta)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes, bias=False)
        if hasattr(self, "model_args"):
            self.model_args = {**self.model_args, "num_classes": int(num_classes)}


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """All k x k patches of ``x`` (N, C, H, W), flattened: (N*(H-k+1)*(W-k+1), C*k*k),
    each row in the (C, k, k) order of a convolution filter."""
    c = x.shape[1]
    u = x.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
    return u.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)


def tta_logits(fn, x: torch.Tensor, level: int) -> torch.Tensor:
    """Logits of ``fn`` averaged over views of ``x`` (N, C, H, W): level 1 the mean of x and
    its mirror; level 2 half that plus half the mean over the two one-pixel shifts
    (up-left, down-right, reflect padding) of each of the pair."""

    def mirror(v):
        return 0.5 * fn(v) + 0.5 * fn(v.flip(-1))

    if level == 0:
        return fn(x)
    out = mirror(x)
    if level == 1:
        return out
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = 0.5 * mirror(padded[..., :h, :w]) + 0.5 * mirror(padded[..., 2 : h + 2, 2 : w + 2])
    return 0.5 * out + 0.5 * shifted


@register_model("airbench")
def airbench(
    in_channels: int = 3,
    num_classes: int = 10,
    input_size=(32, 32),
    widths=WIDTHS,
    tta: int = 2,
    **kw,
) -> Airbench:
    """The airbench94 network for ``input_size`` images of at least 16x16 (see the module doc)."""
    return Airbench(in_channels, num_classes, widths=tuple(widths), tta=tta, **kw)
