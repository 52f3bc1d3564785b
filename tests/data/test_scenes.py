"""Scene rendering: deterministic, masks consistent with each other and with the pasted pixels."""

import numpy as np
import pytest

from objrec.data.scenes import draw_scenes, load_scene_set, palette, render_scenes
from objrec.errors import DatasetError


def _objects():
    """Ten 28x28 objects: class c is a filled square of side 8 + c (sharp, full intensity)."""
    X = np.zeros((10, 28, 28), np.uint8)
    for c in range(10):
        X[c, 4 : 12 + c, 4 : 12 + c] = 255
    return X, np.arange(10)


def test_render_is_deterministic_and_masks_agree():
    X, y = _objects()
    a = render_scenes(X, y, 12, seed=3, size=64)
    b = render_scenes(X, y, 12, seed=3, size=64)
    c = render_scenes(X, y, 12, seed=4, size=64)
    assert (a.images == b.images).all() and (a.instances == b.instances).all()
    assert not (a.images == c.images).all()
    assert a.images.dtype == np.uint8 and a.images.shape == (12, 64, 64, 3)
    assert a.semantic.dtype == np.uint8 and a.instances.dtype == np.uint16
    # an object pixel has an instance and vice versa
    assert ((a.semantic > 0) == (a.instances > 0)).all()
    for i in range(12):
        ids = np.unique(a.instances[i])
        ids = ids[ids > 0]
        assert 1 <= len(ids) <= 6
        assert (ids == np.arange(1, len(ids) + 1)).all()  # consecutive
        for k in ids:  # one class per instance
            assert len(np.unique(a.semantic[i][a.instances[i] == k])) == 1


def test_first_scenes_do_not_depend_on_the_count():
    X, y = _objects()
    a = render_scenes(X, y, 3, seed=1, size=64)
    b = render_scenes(X, y, 6, seed=1, size=64)
    assert (a.instances == b.instances[:3]).all()


def test_square_sizes_give_the_class():
    """Scale and rotation keep area roughly: an unoccluded square's class matches its area."""
    X, y = _objects()
    s = render_scenes(X, y, 20, seed=0, size=96, max_objects=1)
    for i in range(20):
        area = int((s.instances[i] == 1).sum())
        c = int(s.semantic[i].max()) - 1
        side = 8 + c
        assert 0.81 * side**2 * 0.8 <= area <= 1.8**2 * side**2 * 1.2


@pytest.mark.parametrize(
    "kw",
    [dict(min_objects=0), dict(min_objects=3, max_objects=2), dict(size=40)],
)
def test_bad_options(kw):
    X, y = _objects()
    with pytest.raises(DatasetError):
        render_scenes(X, y, 2, **kw)


def test_bad_objects():
    X, y = _objects()
    with pytest.raises(DatasetError, match="uint8"):
        render_scenes(X.astype(np.float32), y, 2)
    with pytest.raises(DatasetError, match="labels"):
        render_scenes(X, y[:3], 2)
    with pytest.raises(DatasetError, match="unknown scene set"):
        load_scene_set("pascal-voc")


def test_mnist_scenes(shared_data):
    s = load_scene_set("mnist-scenes", data_dir=shared_data / "mnist", sizes=(8, 2, 2))
    assert s.classes == [str(i) for i in range(10)] and s.n_labels == 11
    assert s.train.images.shape == (8, 96, 96, 3) and len(s.test) == 2
    assert 1 <= s.train.semantic.max() <= 10
    again = load_scene_set("mnist-scenes", data_dir=shared_data / "mnist", sizes=(4, 1, 1))
    assert (again.train.images == s.train.images[:4]).all()


def test_draw_scenes_colours():
    X, y = _objects()
    s = render_scenes(X, y, 2, seed=0, size=64)
    pic = draw_scenes(s.images, s.semantic, s.instances)
    assert pic.shape == (128, 192, 3)
    colours = palette(11)
    assert (colours[0] == 0).all() and len({tuple(c) for c in colours}) == 11
    sem_part = pic[:64, 64:128]
    assert (sem_part[s.semantic[0] == 0] == 0).all()
    k = s.instances[0] == 1
    assert (sem_part[k] == colours[s.semantic[0][k][0]]).all()
    with pytest.raises(DatasetError, match="expected"):
        draw_scenes(s.images, s.semantic[:1], s.instances)
