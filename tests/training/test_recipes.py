"""Recipes and step-counted plans (objrec.training.recipes), and the loader's multi-pass epochs."""

import math

import pytest

from objrec.nets.registry import model_info
from objrec.training import recipes as R


def _default(name: str, **explicit) -> dict:
    info = model_info(name)
    return R.resolve_recipe(None, explicit, info.defaults, pretrained=info.pretrained)


def test_a_tiny_set_gets_the_step_floor_in_a_few_logged_epochs():
    rec = _default("simple_cnn")
    plan = R.plan_training(rec, 40)
    assert plan.batch_size == 10  # a quarter of the images
    assert plan.lr == pytest.approx(rec["lr"] * math.sqrt(10 / 64))  # Adam: square-root scaling
    assert plan.batches_per_pass == 4
    assert plan.total_steps >= rec["min_steps"] == 500
    (phase,) = plan.phases
    assert phase.steps_per_epoch % plan.batches_per_pass == 0  # whole passes per epoch
    assert plan.epochs <= R.SMALL_EPOCHS + 1
    assert plan.small and plan.early_stopping == max(3, plan.epochs // 3)
    sgd = R.plan_training(_default("resnet_small"), 40)
    assert sgd.lr == pytest.approx(0.1 * 10 / 128)  # SGD: linear scaling


def test_small_data_without_augmentation_gets_small_shifts():
    rec = _default("simple_cnn")
    assert rec["augment"] is None
    assert R.plan_training(rec, 40, image_size=(64, 64)).recipe["augment"] == {"translate": 2}
    assert R.plan_training(rec, 40, image_size=(8, 8)).recipe["augment"] == {"translate": 1}
    assert R.plan_training(rec, 50_000, image_size=(28, 28)).recipe["augment"] is None  # large
    off = _default("simple_cnn", augment="none")  # switched off explicitly
    assert R.plan_training(off, 40, image_size=(64, 64)).recipe["augment"] == "none"
    res = _default("resnet_small")  # its own augmentation is kept
    assert R.plan_training(res, 40, image_size=(64, 64)).recipe["augment"] == "default"
    seed = R.resolve_recipe("seed", {}, {})
    assert R.plan_training(seed, 40, image_size=(64, 64)).recipe["augment"] is None


def test_auto_augmentation_flips_colour_photos_and_leaves_grey_images_as_before():
    rec = _default("efficientnet_lite0")  # a pretrained network: the fine-tuning defaults
    assert rec["augment"] == R.AUTO_AUGMENT == "auto"
    # CIFAR-10 at 500 per class: 4,500 colour 32x32 training images
    rgb = R.plan_training(rec, 4500, fine_tune=True, image_size=(32, 32), channels=3)
    assert rgb.recipe["augment"] == {"translate": 4, "flip": True}  # CIFAR's pad 4 and crop
    assert rgb.augment_rule.startswith("auto: colour")
    assert rgb.summary()["settings"]["augment"] == {"translate": 4, "flip": True}
    assert rgb.summary()["augment_rule"] == rgb.augment_rule
    # ORL's faces: 200 grey 64x64 images; the plan is the one a recipe without augmentation
    # gets (the small-data shifts, no flips), field by field
    before = R.plan_training(
        dict(rec, augment=None), 200, fine_tune=True, image_size=(64, 64), channels=1
    )
    grey = R.plan_training(rec, 200, fine_tune=True, image_size=(64, 64), channels=1)
    assert grey.recipe["augment"] == {"translate": 2} == before.recipe["augment"]
    assert {**grey.summary(), "augment_rule": None} == before.summary()
    assert grey.augment_rule == "auto: grey images, no flips"
    big_grey = R.plan_training(rec, 60_000, fine_tune=True, image_size=(28, 28), channels=1)
    assert big_grey.recipe["augment"] is None  # large grey data: nothing, as before
    unknown = R.plan_training(rec, 200, fine_tune=True, image_size=(32, 32))
    assert unknown.recipe["augment"] == {"translate": 1}  # channels unknown: not flipped
    assert unknown.augment_rule == "auto: unknown images, no flips"


def test_an_explicit_augmentation_wins_over_the_auto_rule():
    for spec in ("none", "shift", {"translate": 3}):
        rec = _default("efficientnet_lite0", augment=spec)
        plan = R.plan_training(
            rec, 4500, explicit={"augment"}, fine_tune=True, image_size=(32, 32), channels=3
        )
        assert plan.recipe["augment"] == spec and plan.augment_rule is None
    # "auto" asked for on a scratch network: photos flip, grey small data gets the shifts
    auto = _default("simple_cnn", augment="auto")
    plan = R.plan_training(auto, 40, explicit={"augment"}, image_size=(64, 64), channels=3)
    assert plan.recipe["augment"] == {"translate": 8, "flip": True}
    plan = R.plan_training(auto, 40, explicit={"augment"}, image_size=(64, 64), channels=1)
    assert plan.recipe["augment"] == {"translate": 2}
    # the scratch networks' own defaults are unchanged on colour images
    simple = R.plan_training(_default("simple_cnn"), 40, image_size=(32, 32), channels=3)
    assert simple.recipe["augment"] == {"translate": 1} and simple.augment_rule is None
    res = R.plan_training(_default("resnet_small"), 40, image_size=(32, 32), channels=3)
    assert res.recipe["augment"] == "default"


def test_photo_recipe_scales_with_the_image():
    assert R.photo_recipe((32, 32)) == {"translate": 4, "flip": True}
    assert R.photo_recipe((64, 96)) == {"translate": 8, "flip": True}  # the shorter side
    assert R.photo_recipe((5, 5)) == {"translate": 1, "flip": True}  # at least a pixel
    with pytest.raises(ValueError, match="image_size must be positive"):
        R.photo_recipe((0, 32))


def test_a_large_set_trains_the_recipe_epochs():
    plan = R.plan_training(_default("simple_cnn"), 50_000)
    assert (plan.batch_size, plan.lr, plan.epochs) == (64, 3e-3, 2)
    assert plan.total_steps == 2 * (50_000 // 64)  # the last 16 images (< half a batch) are dropped
    assert not plan.small and plan.early_stopping is None
    assert plan.recipe["schedule"] == "onecycle" and plan.recipe["label_smoothing"] == 0.1


def test_explicit_settings_are_kept():
    rec = _default("simple_cnn", batch_size=32, lr=0.01)
    plan = R.plan_training(rec, 40, explicit={"batch_size", "lr"})
    assert (plan.batch_size, plan.lr) == (32, 0.01)
    assert R.plan_training(rec, 20, explicit={"batch_size"}).batch_size == 20  # at most the set
    assert R.plan_training(_default("mlp"), 40, early_stopping=0).early_stopping is None
    assert R.plan_training(_default("mlp"), 40, early_stopping=2).early_stopping == 2
    assert R.plan_training(_default("mlp", min_steps=0), 40).total_steps == 10 * 4


def test_seed_recipe_is_the_notes_recipe_exactly():
    rec = R.resolve_recipe("seed", {}, model_info("resnet_small").defaults)
    assert rec == {**R.SEED_RECIPE, "recipe": "seed"}
    assert (rec["optimizer"], rec["lr"], rec["batch_size"], rec["epochs"]) == ("adam", 1e-3, 32, 5)
    assert rec["schedule"] == "constant" and rec["label_smoothing"] == 0 and rec["augment"] is None
    plan = R.plan_training(rec, 100)
    # every batch, the last one of 4 images too, 5 epochs, no floor, no early stopping
    assert (plan.batch_size, plan.lr, plan.batches_per_pass, plan.epochs) == (32, 1e-3, 4, 5)
    assert plan.total_steps == 20 and not plan.drop_last and plan.early_stopping is None
    assert R.resolve_recipe("seed", {"epochs": 2}, {})["epochs"] == 2  # explicit still wins
    with pytest.raises(ValueError, match="unknown recipe 'fast'"):
        R.resolve_recipe("fast", {}, {})


def test_fine_tuning_plan_and_discriminative_rates():
    rec = R.resolve_recipe(None, {}, {}, pretrained=True)
    assert rec["optimizer"] == "adamw" and rec["schedule"] == "onecycle"
    plan = R.plan_training(rec, 200, fine_tune=True)
    frozen, unfrozen = plan.phases
    assert frozen.name == "frozen" and frozen.epochs == 1
    assert R.FROZEN_STEPS[0] <= frozen.steps <= R.FROZEN_STEPS[1]
    assert unfrozen.name == "unfrozen" and unfrozen.lr == pytest.approx(plan.lr / 2)
    assert plan.total_steps >= rec["min_steps"]
    big = R.plan_training(rec, 100_000, fine_tune=True)
    assert big.phases[0].steps == R.FROZEN_STEPS[1]  # part of one pass
    lrs = R.discriminative_lrs(1.0, 4, 100.0)
    assert lrs == sorted(lrs) and lrs[-1] == 1.0 and lrs[0] == pytest.approx(0.01)
    assert lrs[1] / lrs[0] == pytest.approx(lrs[2] / lrs[1])  # geometric
    assert R.discriminative_lrs(0.5, 1, 100.0) == [0.5]


def test_last_batch_rule():
    assert R.keep_last(16, 32) and not R.keep_last(15, 32) and not R.keep_last(1, 2)
    assert R.batches_per_pass(100, 32) == 3 and R.batches_per_pass(100, 32, drop_last=False) == 4
    assert R.batches_per_pass(5, 8) == 1  # fewer images than a batch: one batch of all
    with pytest.raises(ValueError, match="no training images"):
        R.plan_training(_default("mlp"), 0)


def test_multi_pass_epochs_and_dropped_last_batch():
    torch = pytest.importorskip("torch")
    from objrec.training.loader import BatchLoader

    X, y = torch.arange(9).view(9, 1, 1, 1), torch.arange(9)
    ld = BatchLoader(X, y, 4, shuffle=True, seed=2, drop_last=True)
    assert len(ld) == 2  # 4 + 4; the last image (< half a batch) is dropped
    assert [len(i) for i in ld.batch_indices()] == [4, 4]
    assert len(BatchLoader(X, y, 4, shuffle=True, drop_last=False)) == 3
    ld.steps_per_epoch = 6  # three passes of two batches
    ld.set_epoch(1)
    batches = list(ld.batch_indices())
    assert len(batches) == len(ld) == 6
    passes = [torch.cat(batches[i : i + 2]) for i in (0, 2, 4)]
    for p in passes:
        assert len(set(p.tolist())) == 8  # no image twice within a pass
    assert not all(torch.equal(passes[0], p) for p in passes[1:])  # each pass reshuffled
    plain = BatchLoader(X, y, 4, shuffle=True, seed=2, drop_last=True)
    plain.set_epoch(1)
    assert torch.equal(torch.cat(list(plain.batch_indices())), passes[0])  # pass 0 as before
    again = [b.tolist() for b in ld.batch_indices()]
    assert again == [b.tolist() for b in batches]  # seeded: same epoch, same batches
