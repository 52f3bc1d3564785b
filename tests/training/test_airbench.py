"""The airbench network and recipe: shapes, the frozen whitening layer, TTA, the loop."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from objrec.errors import InputError  # noqa: E402
from objrec.methods.cnn import CNNClassifier  # noqa: E402
from objrec.nets import create_model  # noqa: E402
from objrec.nets.airbench import patches  # noqa: E402
from objrec.training import airbench  # noqa: E402


def _net(**kw):
    torch.manual_seed(0)
    return create_model("airbench", 3, 10, (32, 32), widths=(8, 16, 16), **kw)


def test_shapes_train_and_eval():
    net = _net()
    x = torch.randn(5, 3, 32, 32)
    assert net.train()(x).shape == (5, 10)
    assert net.eval()(x).shape == (5, 10)
    small = create_model("airbench", 3, 4, (16, 16), widths=(8, 16, 16))
    assert small.eval()(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_whitening_layer_whitens_its_patches_and_is_frozen():
    g = torch.Generator().manual_seed(1)
    # correlated channels and neighbouring pixels: a smoothed, mixed random image
    base = torch.randn(200, 3, 17, 17, generator=g)
    base = 0.5 * (base[..., 1:, :] + base[..., :-1, :])
    mix = torch.tensor([[1.0, 0.8, 0.2], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]])
    x = torch.einsum("dc,nchw->ndhw", mix, base) * 0.7
    net = _net()
    net.init_whitening(x)
    w = net.whiten.weight
    assert not w.requires_grad
    p = patches(x, 2).double()
    cov_in = p.T @ p / len(p)
    assert torch.linalg.eigvalsh(cov_in).min() > 0.05  # eps = 5e-4 is then negligible
    with torch.no_grad():
        out = torch.nn.functional.conv2d(x, w)  # bias-free responses, (N, 24, H-1, W-1)
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = half.T @ half / len(half)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.02)
    assert torch.equal(out[:, 12:], -out[:, :12])  # the negated copies


def _reflect_shift(x, dy, dx):
    """x shifted so output (i, j) reads input (i + dy, j + dx), reflect padding (numpy)."""
    a = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    h, w = x.shape[-2:]
    return torch.from_numpy(a[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w].copy())


@pytest.mark.parametrize("level", [0, 1, 2])
def test_tta_averages_the_views(level):
    net = _net(tta=level).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = net(x)

        def pair(v):
            return [net.logits(v), net.logits(torch.flip(v, dims=[3]))]

        if level == 0:
            want = net.logits(x)
        elif level == 1:
            want = sum(pair(x)) / 2
        else:
            views = pair(x)
            shifted = pair(_reflect_shift(x, -1, -1)) + pair(_reflect_shift(x, 1, 1))
            want = sum(views) / 4 + sum(shifted) / 8
    assert torch.allclose(got, want, atol=1e-5)


def test_flips_alternate_between_epochs():
    X = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(20)  # label = index: identifies each image in a batch
    b = airbench.AugmentedBatches(X, y, 8, [0, 0, 0], [1 / 255] * 3, translate=0, flip=True)
    flipped = []
    for e in range(3):
        seen = {}
        for xb, yb in b.epoch(e):
            for img, i in zip(xb, yb.tolist(), strict=True):
                img, orig = img.round(), X[i].float()  # x / 255 * 255: float rounding
                assert torch.equal(img, orig) or torch.equal(img, orig.flip(-1))
                seen[i] = not torch.equal(img, orig)
        assert sorted(seen) == list(range(20))
        flipped.append([seen[i] for i in range(20)])
    assert 0 < sum(flipped[0]) < 20
    assert all(a != b for a, b in zip(flipped[0], flipped[1], strict=True))
    assert flipped[0] == flipped[2]


def test_translate_stays_within_the_shift():
    X = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    b = airbench.AugmentedBatches(X, torch.arange(6), 6, [0], [1 / 255], translate=2, flip=False)
    xb, yb = next(b.epoch(0))
    padded = np.pad(X.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    for img, i in zip(xb, yb.tolist(), strict=True):
        crops = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(img.round().numpy(), c) for c in crops)


def test_lr_schedule_is_triangular():
    total = 100
    f = [airbench.lr_factor(s, total) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.2)
    assert max(f) == pytest.approx(1.0) and f.index(max(f)) == 23
    assert f[-1] == pytest.approx(0.07)


def test_fit_with_the_recipe_few_steps():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 24)
    X = rng.integers(0, 120, (48, 16, 16, 3), dtype=np.uint8)
    X[y == 1] += 120  # the bright class
    clf = CNNClassifier(
        "airbench", epochs=8, batch_size=16, lr=30.0, model_args={"widths": [8, 16, 16]}, verbose=0
    )
    assert clf.resolved_recipe()["recipe"] == "airbench"
    clf.fit(X, y, X, y)
    assert clf.recipe_["recipe"] == "airbench" and len(clf.history_) == 8
    w0 = clf.model_.whiten.weight.clone()
    assert not clf.model_.whiten.weight.requires_grad
    assert clf.predict_proba(X).shape == (48, 2)
    assert clf.score(X, y) > 0.9  # brightness separates the classes
    assert torch.equal(clf.model_.whiten.weight, w0)


def test_recipe_rejects_what_its_loop_cannot_do():
    X = np.zeros((8, 16, 16, 3), np.uint8)
    y = np.repeat([0, 1], 4)
    with pytest.raises(InputError, match="optimizer/schedule"):
        CNNClassifier("airbench", optimizer="adam", verbose=0).fit(X, y)
    with pytest.raises(InputError, match="airbench network only"):
        CNNClassifier("simple_cnn", recipe="airbench", verbose=0).fit(X, y)


def test_whitening_computes_in_float32_under_autocast():
    net = _net().train()
    x = torch.randn(4, 3, 32, 32)
    net.init_whitening(x)
    with torch.no_grad():
        net.whiten.bias.uniform_(-0.5, 0.5)
    seen = []
    net.whiten.register_forward_hook(lambda m, i, out: seen.append(out))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)
    want = torch.nn.functional.conv2d(x, net.whiten.weight, net.whiten.bias)
    assert seen[0].dtype == torch.float32
    assert torch.allclose(seen[0], want, atol=1e-5)


def test_lookahead_update_is_the_hand_computed_average():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    look = airbench.Lookahead(net)
    a = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    b = {k: v.clone() for k, v in net.state_dict().items()}
    look.update(net, 0.3)
    for k, v in net.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.3 * a[k] + 0.7 * b[k])
            assert torch.equal(look.avg[k], v)
        else:  # the batch counter is not averaged
            assert int(v) == 7
    assert airbench.lookahead_decay(10, 20) == pytest.approx(0.95**5 / 8)


def test_lookahead_starts_in_the_fourth_epoch(monkeypatch):
    made, decays = [], []

    class Recording(airbench.Lookahead):
        def __init__(self, net):
            super().__init__(net)
            made.append(1)

        def update(self, net, decay):
            decays.append(decay)
            super().update(net, decay)

    monkeypatch.setattr(airbench, "Lookahead", Recording)
    X = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    y = torch.arange(32) % 2
    rec = {"epochs": 5, "batch_size": 8, "lr": 1.0, "weight_decay": 0.0, "label_smoothing": 0.2}
    airbench.train(_net(), X, y, [0.5] * 3, [0.25] * 3, rec, amp=False)
    # 4 steps an epoch, 20 in all: the average is made at step 15 (epoch 4), updated at
    # step 20, and the weights reset to it at the end of epochs 4 and 5
    assert made == [1]
    assert decays == pytest.approx([1.0, 0.95**5, 1.0])


def test_schedule_step_follows_the_time_budget():
    assert airbench.schedule_step(10, 100, 30.0, None) == 10
    assert airbench.schedule_step(10, 100, 30.0, 60.0) == 50  # half the budget spent
    assert airbench.schedule_step(70, 100, 30.0, 60.0) == 70  # the steps are further along
    assert airbench.schedule_step(10, 100, 90.0, 60.0) == 100  # never past the end
    with pytest.raises(ValueError, match="max_time"):
        airbench.schedule_step(0, 100, 1.0, 0.0)


def test_a_spent_time_budget_trains_at_the_final_rate():
    X = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    y = torch.arange(32) % 2
    rec = {"epochs": 5, "batch_size": 8, "lr": 1.0, "weight_decay": 0.0, "label_smoothing": 0.2}
    hist = airbench.train(_net(), X, y, [0.5] * 3, [0.25] * 3, rec, amp=False, max_time=1e-9)
    assert len(hist) == 1 and hist[0]["step"] == 1  # stopped after one step
    base = 1.0 / (1024 * (1 + 1 / (1 - airbench.MOMENTUM)))
    assert hist[0]["lr"] == pytest.approx(base * airbench.LR_END)  # annealed, not 0.2 x base
