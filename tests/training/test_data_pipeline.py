"""Batch loader, batch augmentation and learning-rate schedules."""

import pytest

torch = pytest.importorskip("torch")

from objrec.training.augment import augment_batch, cutout, random_flip, resolve_recipe  # noqa: E402
from objrec.training.loader import BatchLoader  # noqa: E402
from objrec.training.schedules import lr_multiplier, make_scheduler  # noqa: E402


def test_loader_covers_every_image_once_per_epoch_in_a_seeded_order():
    X = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    ld = BatchLoader(X, y, 4, shuffle=True, seed=3)
    ld.set_epoch(0)
    first = torch.cat([b for _, b in ld])
    assert sorted(first.tolist()) == list(range(10)) and len(ld) == 3
    ld.set_epoch(1)
    second = torch.cat([b for _, b in ld])
    assert first.tolist() != second.tolist()
    ld.set_epoch(0)
    assert torch.cat([b for _, b in ld]).tolist() == first.tolist()
    for xb, yb in ld:
        assert torch.equal(xb.view(-1).long(), yb)


def test_loader_ranks_split_each_global_batch():
    X, y = torch.zeros(11, 1, 1, 1, dtype=torch.uint8), torch.arange(11)
    single = BatchLoader(X, y, 4, shuffle=True, seed=1)
    ranks = [BatchLoader(X, y, 4, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for ld in (single, *ranks):
        ld.set_epoch(2)
    for (_, full), (_, a), (_, b) in zip(single, *ranks, strict=False):
        assert sorted(torch.cat([a, b]).tolist()) == sorted(full[: len(full) // 2 * 2].tolist())
    assert len(ranks[0]) == 3  # batches of 4, 4 and the last 3 trimmed to 2


def test_augmentation_is_seeded_and_zero_amounts_are_identity():
    x = torch.rand(6, 1, 12, 12)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(augment_batch(x, {"translate": 0, "rotate": 0, "scale": 0}, g), x)
    a = augment_batch(x, resolve_recipe("default"), torch.Generator().manual_seed(5))
    b = augment_batch(x, resolve_recipe("default"), torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.allclose(a, x)


def test_integer_translation_moves_pixels():
    x = torch.zeros(200, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    out = augment_batch(x, {"translate": 2}, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    mass = out.sum(dim=(1, 2, 3))
    cy = (out[:, 0] * ys).sum(dim=(1, 2)) / mass
    cx = (out[:, 0] * xs).sum(dim=(1, 2)) / mass
    torch.testing.assert_close(mass, torch.ones(200))  # nothing leaves the image
    assert (cy - 4).abs().max() <= 2 + 1e-5 and (cx - 4).abs().max() <= 2 + 1e-5
    assert (cx - 4).abs().max() > 1.0  # it does move


def test_flip_and_cutout():
    x = torch.rand(64, 2, 8, 8)
    out = random_flip(x, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
    ones = torch.ones(50, 1, 16, 16)
    cut = cutout(ones, torch.Generator().manual_seed(0), 4)
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # 4x4, clipped at the border


def test_recipe_parsing():
    assert resolve_recipe("translate=2,flip") == {"translate": 2.0, "flip": True}
    assert resolve_recipe(None) == {} and resolve_recipe("flip")["flip"] is True
    with pytest.raises(ValueError, match="unknown augmentation"):
        resolve_recipe("wobble=3")


def test_schedules():
    assert lr_multiplier("onecycle", 24, 100, 25) == 1.0
    assert lr_multiplier("onecycle", 0, 100, 25) == pytest.approx(1 / 25)
    assert lr_multiplier("onecycle", 100, 100, 25) == 0.0
    assert lr_multiplier("cosine", 50, 100, 0) == pytest.approx(0.5)
    assert lr_multiplier("constant", 99, 100, 0) == 1.0
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make_scheduler(opt, "onecycle", total_steps=8)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1) and lrs[0] < lrs[1] and lrs[-1] < lrs[3]
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier("step", 0, 1, 0)
