"""A Keras-style ``model.summary()``: each layer's output shape, parameter count and multiply-adds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LayerRow:
    name: str  # dotted module path, e.g. "features.0"
    kind: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # without the batch axis, e.g. (32, 26, 26)
    params: int
    macs: int  # multiply-accumulates per image (conv and linear layers only)


def summarize(model, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Run one zero image of ``input_shape`` (C, H, W) through ``model``; one row per leaf layer."""
    import torch
    from torch import nn

    rows: list[LayerRow] = []
    hooks = []

    def hook(name):
        def fn(mod, inp, out):
            shape = tuple(out.shape[1:])
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            macs = 0
            if isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs = out[0].numel() * k
            elif isinstance(mod, nn.Linear):
                macs = mod.in_features * mod.out_features
            rows.append(LayerRow(name, type(mod).__name__, shape, params, macs))

        return fn

    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters(), torch.zeros(0)).device
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_summary(model, input_shape: tuple[int, int, int], title: str = "") -> str:
    """The table :func:`summarize` returns, as text, with totals."""
    rows = summarize(model, input_shape)
    head = f"{'layer':<24}{'type':<14}{'output shape':<20}{'params':>10}{'mult-adds':>12}"
    lines = [title or type(model).__name__, f"input: {'x'.join(map(str, input_shape))}", head]
    lines.append("-" * len(head))
    for r in rows:
        shape = "x".join(map(str, r.output_shape))
        lines.append(f"{r.name:<24}{r.kind:<14}{shape:<20}{r.params:>10,}{r.macs:>12,}")
    lines.append("-" * len(head))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs = sum(r.macs for r in rows)
    lines.append(f"total params: {total:,} (trainable {trainable:,})")
    lines.append(f"multiply-adds per image: {macs:,} ({2 * macs / 1e6:.1f} MFLOP forward)")
    return "\n".join(lines)


def forward_flops(model, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass of one image: 2 x the conv/linear multiply-adds."""
    return 2 * sum(r.macs for r in summarize(model, input_shape))
