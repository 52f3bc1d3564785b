"""Ignored mask pixels (255) in training: the U-Net's loss and the forest's samples."""

import numpy as np
import pytest

from objrec.segmentation import make_segmenter
from objrec.segmentation.base import IGNORE


def test_unet_loss_does_not_see_ignored_pixels():
    torch = pytest.importorskip("torch")
    from objrec.segmentation.unet import dice_ce_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 6, 8), generator=g)
    target[..., 5:] = IGNORE
    loss = dice_ce_loss(logits, target, 3)
    # the same loss as on the crop without the ignored columns
    crop = dice_ce_loss(logits[..., :5], target[..., :5], 3)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(crop.item(), rel=1e-6)
    loss.backward()
    assert (logits.grad[..., 5:] == 0).all() and (logits.grad[..., :5] != 0).any()
    everything = torch.full((1, 4, 4), IGNORE)
    assert dice_ce_loss(torch.zeros(1, 3, 4, 4), everything, 3).item() == 0.0


def test_forest_trains_around_ignored_pixels():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (4, 16, 16, 3), np.uint8)
    Y = np.zeros((4, 16, 16), np.uint8)
    Y[:, 4:10, 4:10] = 2
    Y[:, :, 12:] = IGNORE
    seg = make_segmenter("forest", n_estimators=3, pixels_per_image=100, scales=(1.0,))
    seg.fit(X, Y)
    assert seg.n_labels_ == 3 and set(seg.forest_.classes_.tolist()) <= {0, 2}
    assert len(seg.prior_ratio_) == 3 and seg.predict_proba(X).shape == (4, 3, 16, 16)
