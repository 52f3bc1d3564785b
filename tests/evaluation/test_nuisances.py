"""Nuisances: shape and dtype kept, seeded, identity at severity 0, distance from the
original growing with severity; families spread their members evenly."""

import itertools

import numpy as np
import pytest

from objrec.errors import InputError
from objrec.evaluation import nuisances as nz

NAMES = list(nz.NUISANCES)


@pytest.fixture(scope="module")
def grey(digits_small):
    """48 digits enlarged to 16x16 uint8 (object on a dark background)."""
    X = digits_small[0][:48]
    return np.kron(X, np.ones((1, 2, 2), np.uint8))


@pytest.fixture(scope="module")
def rgb(grey):
    return np.stack([grey, grey // 2, 255 - grey], axis=-1)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_seed(name, grey, rgb):
    f = nz.NUISANCES[name].func
    for X in (grey, rgb, grey[:1]):
        out = f(X, 3, 11)
        assert out.shape == X.shape
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, f(X, 3, 11))
        np.testing.assert_array_equal(out, f(X, 3, np.random.default_rng(11)))
    assert not np.array_equal(f(grey, 5, 0), grey)


@pytest.mark.parametrize("name", NAMES)
def test_identity_at_zero_and_input_untouched(name, grey):
    before = grey.copy()
    out = nz.NUISANCES[name].func(grey, 0, 3)
    np.testing.assert_array_equal(out, grey)
    assert out is not grey
    nz.NUISANCES[name].func(grey, 5, 3)
    np.testing.assert_array_equal(grey, before)


@pytest.mark.parametrize("name", NAMES)
def test_distance_grows_with_severity(name, grey, rgb):
    for X in (grey, rgb):
        d = [np.abs(nz.NUISANCES[name].func(X, s, 5).astype(float) - X).mean() for s in range(6)]
        assert d[0] == 0
        assert all(b >= a for a, b in itertools.pairwise(d)), d
        assert d[5] > d[1] > 0, d


def test_random_draws_depend_on_seed(grey):
    for name in (
        "rotate",
        "translate",
        "elastic",
        "occlude_rectangle",
        "gaussian_noise",
        "motion_blur",
    ):
        f = nz.NUISANCES[name].func
        assert not np.array_equal(f(grey, 3, 1), f(grey, 3, 2)), name


def test_known_values():
    # Hand-checkable cases: a flat grey image under contrast stays the same; brightness
    # adds +-0.5*255 at severity 5; salt and pepper only writes 0 or 255.
    flat = np.full((4, 8, 8), 100, np.uint8)
    np.testing.assert_array_equal(nz.contrast(flat, 5, 0), flat)
    out = nz.brightness(flat, 5, 0)
    assert set(np.unique(out)) <= {0, 228}  # 100 - 127.5 clipped to 0, 100 + 127.5 -> 228
    sp = nz.salt_and_pepper(flat, 5, 0)
    changed = sp != flat
    assert set(np.unique(sp[changed])) <= {0, 255}
    assert 0.15 < changed.mean() < 0.40  # 27% of the pixels at severity 5
    # Translation by 30% of a 20-pixel side moves a single bright dot by 6 pixels.
    dot = np.zeros((1, 20, 20), np.uint8)
    dot[0, 10, 10] = 255
    moved = nz.translate(dot, 5, 0)
    r, c = np.unravel_index(np.argmax(moved[0]), moved[0].shape)
    assert abs(np.hypot(r - 10, c - 10) - 6) <= 1


def test_foreground_mask_dark_background(grey):
    m = nz.foreground_mask(grey)
    assert m.shape == grey.shape and m.dtype == np.float32
    np.testing.assert_array_equal(m == 0, grey == 0)  # nonzero pixels are the object
    np.testing.assert_array_equal(nz.border_colour(grey), np.zeros((len(grey), 1)))


def test_background_keeps_the_object(grey):
    out = nz.background_strokes(grey, 5, 0)
    solid = grey >= 96  # fully foreground pixels are kept as they are
    np.testing.assert_array_equal(out[solid], grey[solid])
    assert (out[grey == 0] > 0).any()  # and clutter appears behind it


def test_families_cover_every_nuisance_and_spread_members(grey):
    assert sorted(n for ms in nz.FAMILIES.values() for n in ms) == sorted(nz.NUISANCES)
    assert set(nz.FAMILIES) >= {
        "pose",
        "illumination",
        "deformation",
        "occlusion",
        "background",
        "noise",
        "blur",
    }
    out, member = nz.corrupt(grey, "pose", 4, 9, return_members=True)
    counts = np.bincount(member, minlength=4)
    assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(out, nz.corrupt(grey, "pose", 4, 9))
    # Same assignment at every severity for a seed; severity 0 is the identity.
    _, member2 = nz.corrupt(grey, "pose", 2, 9, return_members=True)
    np.testing.assert_array_equal(member, member2)
    np.testing.assert_array_equal(nz.corrupt(grey, "pose", 0, 9), grey)
    # A single nuisance by name.
    np.testing.assert_array_equal(nz.corrupt(grey, "elastic", 2, 1), nz.elastic(grey, 2, 1))


def test_bad_input():
    X = np.zeros((2, 8, 8), np.uint8)
    for bad in (6, -1, 2.5, "3", True):
        with pytest.raises(InputError, match="severity"):
            nz.rotate(X, bad, 0)
    with pytest.raises(InputError, match="unknown nuisance family 'posee'"):
        nz.corrupt(X, "posee", 1)
    with pytest.raises(InputError, match=r"\(N, H, W\)"):
        nz.rotate(np.zeros((8, 8), np.uint8), 1, 0)
    with pytest.raises(InputError, match="uint8"):
        nz.gaussian_noise(np.full((2, 8, 8), 0.5), 1, 0)
