"""Network architectures by name (timm-style registry).

    >>> from objrec.nets import create_model, list_models
    >>> model = create_model("simple_cnn", in_channels=1, num_classes=10, input_size=(28, 28))

Every model maps float32 ``(N, C, H, W)`` to logits ``(N, num_classes)`` and splits into
``forward_features(x) -> (N, D)`` and ``forward_head(features) -> (N, num_classes)`` so
that filters and feature maps can be shown and the head replaced (fine-tuning).
Listing models does not import PyTorch; creating one does.

Pretrained networks (``efficientnet_lite0``, ``_lite1``, ``_lite2``; ``model_info(name).pretrained``)
start from ImageNet weights with ``create_model(..., pretrained=True)`` and add
``backbone`` / ``head`` / ``param_groups()``; any network starts from a weights file or a
checked download with ``create_model(..., weights="FILE" | "URL#sha256=HEX")``
(:mod:`objrec.nets.weights`).
"""

from objrec.nets.registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]
