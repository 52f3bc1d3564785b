"""Prediction in chunks: ``predict`` and ``predict_panoptic`` hold the probabilities of
:data:`objrec.segmentation.base.CHUNK` images at a time and give what the whole batch at
once gives."""

import numpy as np
import pytest

import objrec.segmentation.base as base
from crafted_files import square_and_ring
from objrec.data.scenes import render_scenes
from objrec.segmentation import make_segmenter
from objrec.segmentation.centers import panoptic_centers_batch
from objrec.segmentation.postprocess import panoptic_batch


@pytest.fixture(scope="module")
def scenes():
    """32x32 scenes of 8x8 objects (label 1 a square, 2 a ring): 24 to train, 7 to predict."""
    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 24, seed=0, size=32, max_objects=4)
    te = render_scenes(X, np.array([0, 1]), 7, seed=1, size=32, max_objects=4)
    return tr, te


def _spy(seg, name, monkeypatch) -> list[int]:
    """Record how many images each call of ``seg.<name>`` gets."""
    calls: list[int] = []
    inner = getattr(seg, name)

    def spy(images, **kw):
        calls.append(len(images))
        return inner(images, **kw)

    monkeypatch.setattr(seg, name, spy)
    return calls


def _same_panoptic(a, b) -> None:
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert a[0].dtype == np.uint8 and a[1].dtype == np.uint16
    assert a[2] == b[2]


def _fitted(method, tr):
    if method == "forest":
        seg = make_segmenter("forest", n_estimators=5, pixels_per_image=100, scales=(1.0,))
        return seg.fit(tr.images, tr.semantic)
    pytest.importorskip("torch")
    grouping = method.split("-")[1]
    seg = make_segmenter("unet", width=4, depth=2, epochs=1, batch_size=8, lr=1e-2,
                         grouping=grouping, center_sigma=2.0)  # fmt: skip
    return seg.fit(tr.images, tr.semantic, instances=tr.instances)


@pytest.mark.parametrize("method", ["forest", "unet-watershed", "unet-centers"])
def test_chunked_prediction_equals_the_whole_batch(scenes, method, monkeypatch):
    tr, te = scenes
    seg = _fitted(method, tr)
    P = seg.predict_proba(te.images)  # the oracle: every image's probabilities at once
    if method == "unet-centers":
        whole = panoptic_centers_batch(*seg.predict_heads(te.images))
        calls = _spy(seg, "predict_heads", monkeypatch)
    else:
        whole = panoptic_batch(P)
        calls = _spy(seg, "predict_proba", monkeypatch)
    monkeypatch.setattr(base, "CHUNK", 3)
    _same_panoptic(seg.predict_panoptic(te.images), whole)
    assert calls == [3, 3, 1]
    if method != "unet-centers":
        calls.clear()
        assert (seg.predict(te.images) == P.argmax(1)).all()
        assert calls == [3, 3, 1]
    empty = seg.predict_panoptic(te.images[:0])
    assert empty[0].shape == (0, 32, 32) and empty[1].shape == (0, 32, 32) and empty[2] == []
    assert seg.predict(te.images[:0]).shape == (0, 32, 32)


def test_unet_probabilities_are_the_softmax_of_its_logits(scenes):
    """The probabilities written batch by batch are torch's softmax of the network's
    logits on the whole input (float32, centre channels passed through unchanged)."""
    torch = pytest.importorskip("torch")
    tr, te = scenes
    seg = _fitted("unet-centers", tr)
    with torch.inference_mode():
        x = torch.from_numpy(te.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        out = seg.net_(x).float()
    P, heat, off = seg.predict_heads(te.images, batch=2)
    assert P.dtype == np.float32 and P.shape == (7, 3, 32, 32)
    np.testing.assert_allclose(P, out[:, :3].softmax(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(heat, out[:, 3].numpy(), atol=1e-5)
    np.testing.assert_allclose(off, out[:, 4:6].numpy(), atol=1e-4)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
