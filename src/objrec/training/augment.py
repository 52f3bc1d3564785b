"""Batch augmentation in PyTorch: one affine warp per batch, flips and cutout by masks.

All functions take float images ``(N, C, H, W)`` in 0..1 (before normalisation, so the
fill value 0 is black background) and a ``torch.Generator`` so that augmentation is
seeded and reproducible.

A recipe is a dict (units beside each key)::

    translate: max shift in pixels (uniform, per image, per axis)
    rotate:    max rotation in degrees (uniform +-)
    scale:     max relative zoom (uniform in 1 +- scale)
    flip:      random horizontal flip (only where mirrored images are valid: clothes,
               objects; never digits or letters)
    cutout:    side in pixels of one zeroed square per image (0: off)

``"auto"`` is not a recipe but a rule, resolved where the images are known
(:func:`objrec.training.recipes.plan_training`): colour images get
:func:`objrec.training.recipes.photo_recipe` (the default of pretrained fine-tuning), grey
ones nothing (or the small-data shifts). The ``"photo"`` preset is that recipe at 32x32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from objrec.training.recipes import AUTO_AUGMENT, photo_recipe

PRESETS: dict[str, dict] = {
    "none": {},
    "shift": {"translate": 2},
    "default": {"translate": 2, "rotate": 10, "scale": 0.1},
    "flip": {"translate": 2, "flip": True},
    "strong": {"translate": 3, "rotate": 12, "scale": 0.12, "cutout": 8},
    "objects": {"translate": 3, "flip": True, "cutout": 8},
    "photo": photo_recipe((32, 32)),  # {"translate": 4, "flip": True}
}
KEYS = ("translate", "rotate", "scale", "flip", "cutout")


def resolve_recipe(spec) -> dict:
    """A recipe dict from a preset name, ``"key=value,key=value"``, a dict or None."""
    if spec is None or spec is False:
        return {}
    if isinstance(spec, str) and spec.strip() == AUTO_AUGMENT:
        raise ValueError(
            f"{AUTO_AUGMENT!r} is chosen per dataset by objrec's training loop "
            "(training.recipes.plan_training); give a preset or key=value pairs here"
        )
    if isinstance(spec, dict):
        recipe = dict(spec)
    elif spec in PRESETS:
        recipe = dict(PRESETS[spec])
    else:
        recipe = {}
        for part in str(spec).split(","):
            key, _, val = part.strip().partition("=")
            if key in PRESETS and not val:
                recipe.update(PRESETS[key])
                continue
            recipe[key] = True if val == "" else float(val)
    bad = set(recipe) - set(KEYS)
    if bad:
        raise ValueError(
            f"unknown augmentation {sorted(bad)}; use a preset ({', '.join(PRESETS)}), "
            f"{AUTO_AUGMENT} (objrec's training loop) or key=value pairs with keys {', '.join(KEYS)}"
        )
    return recipe


def random_affine(
    x: torch.Tensor, g: torch.Generator, translate: float = 0, rotate: float = 0, scale: float = 0
) -> torch.Tensor:
    """Shift (pixels), rotate (degrees) and zoom each image by random amounts; zero fill."""
    n, _, h, w = x.shape
    u = torch.rand(n, 4, generator=g) * 2 - 1  # (N, 4) uniform in -1..1
    angle = u[:, 0] * math.radians(rotate)
    zoom = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    theta[:, 0, 2] = u[:, 2] * translate * 2 / w  # grid units: the image spans -1..1
    theta[:, 1, 2] = u[:, 3] * translate * 2 / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square (centre uniform over the image, clipped) per image."""
    n, _, h, w = x.shape
    cy = (torch.rand(n, generator=g) * h).long().to(x.device)[:, None, None]
    cx = (torch.rand(n, generator=g) * w).long().to(x.device)[:, None, None]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    half = size // 2  # rows cy - half .. cy - half + size - 1
    inside = ((ys - cy + half) >= 0) & ((ys - cy + half) < size)
    inside = inside & ((xs - cx + half) >= 0) & ((xs - cx + half) < size)
    return x * (~inside)[:, None].to(x.dtype)


def augment_batch(x: torch.Tensor, recipe: dict, g: torch.Generator) -> torch.Tensor:
    """Apply ``recipe`` (see module docstring) to a float batch (N, C, H, W) in 0..1."""
    if not recipe:
        return x
    if recipe.get("translate") or recipe.get("rotate") or recipe.get("scale"):
        x = random_affine(
            x, g, recipe.get("translate", 0), recipe.get("rotate", 0), recipe.get("scale", 0)
        )
    if recipe.get("flip"):
        x = random_flip(x, g)
    if recipe.get("cutout"):
        x = cutout(x, g, int(recipe["cutout"]))
    return x
