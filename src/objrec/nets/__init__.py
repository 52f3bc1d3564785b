"""Network architectures by name (timm-style registry).

    >>> from objrec.nets import create_model, list_models
    >>> model = create_model("simple_cnn", in_channels=1, num_classes=10, input_size=(28, 28))

Every model maps float32 ``(N, C, H, W)`` to logits ``(N, num_classes)`` and splits into
``forward_features(x) -> (N, D)`` and ``forward_head(features) -> (N, num_classes)`` so
that filters and feature maps can be shown and the head replaced (fine-tuning).
Listing models does not import PyTorch; creating one does.
"""

from objrec.nets.registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]
