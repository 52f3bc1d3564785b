"""Training recipes and step-counted plans: what a network trains with, at any data size.

A *recipe* is a dict of hyper-parameters (keys of :data:`GLOBAL_DEFAULTS`). It is resolved
per parameter: the estimator's explicit value, else the named recipe (``"default"``: the
network's measured best, ``ModelInfo.defaults``; ``"seed"``: the source notes' recipe,
:data:`SEED_RECIPE`), else :data:`FINE_TUNE_DEFAULTS` for pretrained networks, else
:data:`GLOBAL_DEFAULTS`.

A *plan* (:func:`plan_training`) turns a recipe and a training-set size into optimiser
steps. The schedule counts steps, not epochs, so that 150 images get as many updates as
the recipe needs and 60,000 get the recipe's epochs:

- batch size: a recipe's batch is clipped to a quarter of the training images (at least
  :data:`MIN_BATCH`), so an epoch has several steps; the learning rate follows the batch
  (linear scaling for SGD, square root for Adam/AdamW) unless it was set explicitly;
- steps: ``epochs x batches per pass``, raised to ``min_steps``. A logged epoch is then
  several passes over the data (``steps_per_epoch``) so that training reports, validates
  and early-stops about :data:`SMALL_EPOCHS` times, whatever the data size;
- a final batch of fewer than half a batch is dropped from each pass (BatchNorm estimates
  its statistics from the batch; a batch of 1 image has none), except in the seed recipe,
  which trains on every batch as the notes' script does;
- early stopping (patience in logged epochs, best weights restored) is on by default
  when ``min_steps`` had to raise the step count, i.e. when the data is small;
- augmentation ``"auto"`` (:data:`AUTO_AUGMENT`, the fine-tuning default of
  :data:`FINE_TUNE_DEFAULTS`; any network with ``augment="auto"``): colour images (3
  channels) train with :func:`photo_recipe`, random horizontal flips and shifts of up to
  1/8 of the side (4 pixels at 32x32), as fastai's and timm's fine-tuning defaults flip;
  grey images (1 channel: digits, text, ORL's faces) are treated as a recipe without
  augmentation, since a mirror can change their class (b, d; 2, 5). objrec cannot tell a
  colour photo from a colour scan of text: ``augment="none"`` (``--augment none``) or any
  explicit preset overrides the rule. The plan records what was chosen (``recipe_``).
  Measured on CIFAR-10 with 500 images per class (BENCHMARKS.md, panel): validation 85.8%
  (no augmentation 85.0%, flips + shifts + zoom 0.1 85.2%), test 86.0% (86.7%): within
  the noise of 500 validation images; the validation curve still rises at the end;
- small data and a recipe without augmentation: random shifts of up to 1/32 of the
  image side (at least 1 pixel; 2 at 64x64), :data:`SMALL_DATA_SHIFT`. Measured on ORL
  faces (5 training images per person, 64x64): ``simple_cnn`` 94.0% -> 96.5% test
  accuracy, where the heavier ``default`` augmentation (rotation, scale) gave 94.0%.
  The scratch networks keep their own recipes on colour images too (``simple_cnn``
  none, ``resnet_small`` ``"default"``): flips are not measured for them; ``augment=
  "auto"`` opts in.

Fine-tuning a pretrained network (fastai's ``fine_tune``): phase 1 trains the new head
with the backbone frozen (BatchNorm in eval mode) for one pass, clipped to
:data:`FROZEN_STEPS`; phase 2 trains every weight (the backbone's BatchNorm statistics
stay the pretrained ones, as Keras' fine-tuning guide advises) with a one-cycle
schedule at discriminative rates: parameter group ``g`` of ``G`` (input side first) at
``lr / 2 / lr_mult ** ((G - 1 - g) / (G - 1))``, so the head learns at ``lr / 2`` and the
first layers :data:`LR_MULT` (3) times slower. fastai's ``fine_tune`` slows them 100
times; measured with EfficientNet-Lite0 on the panel (BENCHMARKS.md, "Your own photos"),
3 gives the first layers room to adapt to images unlike ImageNet's (CIFAR-10 upsampled
from 32x32, grey faces): CIFAR-10 with 500 images per class 85.99% -> 87.56% test (10:
86.98%, 1: 86.61%), 100 per class 81.35% -> 83.49%, ORL faces 98.0% -> 99.0%.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# Training settings used when neither the estimator, the recipe nor the network set them.
GLOBAL_DEFAULTS = {
    "epochs": 10,  # passes over the training split (a floor of min_steps steps applies)
    "batch_size": 64,  # images per optimiser step (global, over all ranks)
    "lr": 1e-3,  # base learning rate
    "optimizer": "adam",  # adam | adamw | sgd (Nesterov, momentum 0.9)
    "schedule": "constant",  # constant | cosine | onecycle (per batch, see training.schedules)
    "warmup": 0.0,  # warm-up length in passes over the data (onecycle: 25% of training when 0)
    "weight_decay": 0.0,  # L2 (adam, sgd) or decoupled (adamw) weight decay
    "label_smoothing": 0.0,  # cross-entropy label smoothing, 0..1
    "augment": None,  # preset or recipe, see training.augment
    "min_steps": 500,  # the fewest optimiser steps a fit takes, whatever the data size
}
# The source notes' recipe (MISSION.md's reference CNN), exactly: Adam 1e-3, batch 32,
# 5 epochs, constant rate, nothing else; no step floor, no batch clipping.
SEED_RECIPE = {
    "epochs": 5,
    "batch_size": 32,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "constant",
    "warmup": 0.0,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "augment": None,
    "min_steps": 0,
}
# Pretrained networks: below the network's own defaults (fastai's fine_tune: AdamW,
# base rate 2e-3, one-cycle, a few epochs; label smoothing as in timm's fine-tuning).
FINE_TUNE_DEFAULTS = {
    "epochs": 5,
    "batch_size": 32,
    "lr": 2e-3,
    "optimizer": "adamw",
    "schedule": "onecycle",
    "weight_decay": 0.01,
    "label_smoothing": 0.1,
    "augment": "auto",  # colour: flips + shifts (photo_recipe); grey: none (digits, text)
    "min_steps": 200,  # both phases; a pretrained backbone needs fewer updates than a scratch net
}
# airbench94's recipe (Keller Jordan), trained by objrec.training.airbench's own loop; lr and
# weight_decay in its units (per 1,024 images, summed loss), 10 whole epochs (it: 9.9 on 50k).
AIRBENCH_RECIPE = {
    "epochs": 10,
    "batch_size": 1024,
    "lr": 11.5,
    "optimizer": "sgd",  # Nesterov, momentum 0.85
    "schedule": "triangular",  # 0.2 -> 1 over 23% of the steps, then -> 0.07
    "warmup": 0.23,
    "weight_decay": 0.0153,
    "label_smoothing": 0.2,
    "augment": "translate=2,flip",  # flips alternate per image between epochs
    "min_steps": 0,
}
RECIPES = ("default", "seed", "airbench")
MIN_BATCH = 8  # batch-size floor of the clipping (BatchNorm needs a few images per batch)
SMALL_EPOCHS = 20  # logged epochs of a step-floored (small-data) plan
FROZEN_STEPS = (50, 300)  # phase 1 of fine-tuning: one pass, clipped to this range of steps
SMALL_DATA_SHIFT = 1 / 32  # max random shift, as a share of the image side, on small data
LR_MULT = 3.0  # fine-tuning: the head's rate over the first layers' (fastai: 100, see above)
AUTO_AUGMENT = "auto"  # augmentation by the images' colour, see the module docstring
PHOTO_SHIFT = 1 / 8  # photo_recipe: max shift as a share of the shorter side (CIFAR's 4 of 32)


def photo_recipe(image_size: tuple[int, int]) -> dict:
    """Augmentation (a ``training.augment`` recipe) for natural colour photos of
    ``image_size`` (H, W) pixels: random horizontal flips (a mirrored photo shows the same
    object) and random shifts of up to :data:`PHOTO_SHIFT` of the shorter side, at least 1
    pixel (CIFAR training's pad-and-crop: 4 pixels at 32x32, 8 at 64x64)."""
    side = min(int(image_size[0]), int(image_size[1]))
    if side < 1:
        raise ValueError(f"image_size must be positive, got {tuple(image_size)}")
    return {"translate": max(1, round(side * PHOTO_SHIFT)), "flip": True}


def auto_augment(channels: int | None, image_size: tuple[int, int] | None) -> dict | None:
    """What ``augment="auto"`` means for images of ``channels`` channels and ``image_size``
    (H, W): :func:`photo_recipe` for colour (3 channels), None (no augmentation of its own;
    small data then gets the small shifts) for grey or when either is unknown."""
    if channels == 3 and image_size is not None:
        return photo_recipe(image_size)
    return None


def resolve_recipe(
    name: str | None, explicit: dict, net_defaults: dict, *, pretrained: bool = False
) -> dict:
    """The recipe dict: ``explicit`` (values not None), else recipe ``name``, else globals.

    ``name``: ``None`` or ``"default"`` (the network's ``net_defaults``), ``"seed"``, or
    ``"airbench"`` (:data:`objrec.training.airbench.AIRBENCH_RECIPE`, trained by that
    module's own loop). Raises ``ValueError`` for an unknown name.
    """
    name = name or "default"
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    base = dict(GLOBAL_DEFAULTS)
    if name == "seed":
        base.update(SEED_RECIPE)
    elif name == "airbench":
        base.update(AIRBENCH_RECIPE)
    else:
        if pretrained:
            base.update(FINE_TUNE_DEFAULTS)
        base.update({k: v for k, v in net_defaults.items() if k in GLOBAL_DEFAULTS})
    out = {k: (explicit[k] if explicit.get(k) is not None else v) for k, v in base.items()}
    out["recipe"] = name
    return out


@dataclass
class Phase:
    """One stretch of training with one optimiser and one schedule."""

    name: str  # "train" | "frozen" (head only, backbone frozen) | "unfrozen"
    epochs: int  # logged epochs
    steps_per_epoch: int  # optimiser steps per logged epoch (passes x batches, or fewer)
    lr: float  # base rate (the head's in the unfrozen phase)
    lr_mult: float = 1.0  # head rate / first group's rate (discriminative rates)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class Plan:
    """A resolved recipe in optimiser steps for one training-set size (see the module doc)."""

    recipe: dict
    n_train: int
    batch_size: int
    lr: float
    batches_per_pass: int
    drop_last: bool = True  # drop a final batch of less than half a batch (keep_last)
    phases: list[Phase] = field(default_factory=list)
    warmup_steps: int | None = None  # None: the schedule's own (onecycle: 25%)
    early_stopping: int | None = None  # patience in logged epochs
    small: bool = False  # min_steps raised the step count
    augment_rule: str | None = None  # how augment "auto" was resolved, e.g. "auto: colour ..."

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def summary(self) -> dict:
        """JSON-able record of the plan (stored with the model and the run): ``recipe`` (its
        name), ``settings`` (the resolved recipe), the batch size and rate actually used,
        the phases, total steps and epochs, early stopping."""
        out = asdict(self)
        settings = out.pop("recipe")
        out = {"recipe": settings.pop("recipe", "default"), "settings": settings, **out}
        out.update(epochs=self.epochs, total_steps=self.total_steps)
        return out


def batches_per_pass(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Batches of one pass over ``n`` images: full ones, plus the rest unless ``drop_last``
    drops it (less than half a batch, see :func:`keep_last`)."""
    full, rest = divmod(int(n), int(batch_size))
    return max(1, full + (rest > 0 and (not drop_last or keep_last(rest, batch_size))))


def keep_last(rest: int, batch_size: int) -> bool:
    """Whether a last batch of ``rest`` images (of ``batch_size``) is trained on."""
    return rest * 2 >= batch_size and rest >= 2


def plan_training(
    rec: dict,
    n_train: int,
    *,
    explicit: set[str] = frozenset(),
    early_stopping: int | None = None,
    fine_tune: bool = False,
    world_size: int = 1,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> Plan:
    """Steps, batch size, learning rate and phases for ``rec`` on ``n_train`` images.

    ``explicit``: the recipe keys the user set (an explicit batch size is not clipped
    below ``n_train``, an explicit rate is not rescaled). ``early_stopping``: the user's
    patience (None: the default, on for small data; 0: off). ``fine_tune``: a pretrained
    network or a new head on a trained one: a frozen phase, then an unfrozen one.
    ``image_size``: (H, W) of the images and ``channels`` their channels (1 grey, 3 colour),
    for augmentation ``"auto"`` and the small-data shifts.
    """
    if n_train < 1:
        raise ValueError("no training images")
    seed = rec.get("recipe") == "seed"
    b0 = int(rec["batch_size"])
    if b0 < 1:
        raise ValueError(f"batch_size must be at least 1, got {b0}")
    if seed or "batch_size" in explicit:
        batch = min(b0, n_train)
    else:
        batch = min(b0, max(n_train // 4, min(MIN_BATCH, n_train)))
    batch = max(batch, min(world_size, n_train))
    lr = float(rec["lr"])
    if batch < b0 and "lr" not in explicit and not seed:
        ratio = batch / b0
        lr *= ratio if rec["optimizer"] == "sgd" else math.sqrt(ratio)
    bpp = batches_per_pass(n_train, batch, drop_last=not seed)
    epochs = int(rec["epochs"])
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    min_steps = int(rec.get("min_steps") or 0)
    phases = []
    if fine_tune:
        frozen = min(max(bpp, FROZEN_STEPS[0]), FROZEN_STEPS[1])
        phases.append(_phase("frozen", frozen, frozen, lr, bpp))
        phases.append(
            _phase("unfrozen", epochs * bpp, max(0, min_steps - frozen), lr / 2, bpp, LR_MULT)
        )
    else:
        phases.append(_phase("train", epochs * bpp, min_steps, lr, bpp))
    small = phases[-1].steps_per_epoch > bpp
    rec = dict(rec)
    chosen = "augment" in explicit
    rule = None
    if rec.get("augment") == AUTO_AUGMENT:  # the one rule: photos flip, digits do not
        rec["augment"], chosen = auto_augment(channels, image_size), False
        rule = (
            "auto: colour images, photo recipe (flips, shifts)"
            if rec["augment"] is not None
            else f"auto: {'grey' if channels == 1 else 'unknown'} images, no flips"
        )
    if small and not seed and rec.get("augment") is None and not chosen:
        if image_size is not None:
            rec["augment"] = {"translate": max(1, round(min(image_size) * SMALL_DATA_SHIFT))}
    warmup = float(rec.get("warmup") or 0.0)
    patience = early_stopping
    if patience is None and small and not seed:
        patience = max(3, phases[-1].epochs // 3)
    return Plan(
        recipe=dict(rec),
        n_train=int(n_train),
        batch_size=batch,
        lr=lr,
        batches_per_pass=bpp,
        drop_last=not seed,
        phases=phases,
        warmup_steps=round(warmup * bpp) or None,
        early_stopping=patience or None,
        small=small,
        augment_rule=rule,
    )


def _phase(name, steps_by_epochs, min_steps, lr, bpp, lr_mult=1.0) -> Phase:
    """A phase of at least ``min_steps`` steps; raised ones are grouped into about
    :data:`SMALL_EPOCHS` logged epochs of whole passes."""
    if name == "frozen":  # one pass or part of one, one logged epoch
        return Phase(name, 1, steps_by_epochs, lr, lr_mult)
    if steps_by_epochs >= min_steps:
        return Phase(name, steps_by_epochs // bpp, bpp, lr, lr_mult)
    passes = max(1, math.ceil(min_steps / (bpp * SMALL_EPOCHS)))
    per_epoch = passes * bpp
    return Phase(name, math.ceil(min_steps / per_epoch), per_epoch, lr, lr_mult)


def discriminative_lrs(lr: float, n_groups: int, lr_mult: float) -> list[float]:
    """Rates of ``n_groups`` parameter groups, input side first, geometric from
    ``lr / lr_mult`` up to ``lr`` for the last (the head)."""
    if n_groups <= 1:
        return [float(lr)] * max(n_groups, 0)
    return [lr / lr_mult ** ((n_groups - 1 - g) / (n_groups - 1)) for g in range(n_groups)]
