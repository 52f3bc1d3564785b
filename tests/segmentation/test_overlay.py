"""The segmentation colours and overlays on hand-built masks: two objects of one class
share the semantic colour and differ in the instance and panoptic views."""

import numpy as np
import pytest

from objrec.data.scenes import draw_scenes, palette
from objrec.errors import InputError
from objrec.segmentation import overlay as O

GREY = 100  # a flat image: an overlay pixel then depends on its mask only


def _hex(h):
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)], float)


LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as the overlays


def _blend(colour, pixel=(GREY, GREY, GREY)):
    lum = np.asarray(pixel, float) @ LUMA
    return np.round(np.asarray(colour, float) * (O.ALPHA + (1 - O.ALPHA) * lum / 255))


@pytest.fixture
def scene():
    """12x20: two 3s (label 4, ids 1 and 2) and one 7 (label 8, id 3) on a flat grey image."""
    img = np.full((12, 20, 3), GREY, np.uint8)
    sem = np.zeros((12, 20), np.uint8)
    inst = np.zeros((12, 20), np.uint16)
    for k, (x0, lab) in enumerate(((1, 4), (7, 4), (13, 8)), start=1):
        sem[2:9, x0 : x0 + 5] = lab
        inst[2:9, x0 : x0 + 5] = k
    return img, sem, inst


def test_same_class_same_semantic_colour_different_instance_colour(scene):
    img, sem, inst = scene
    s = O.semantic_overlay(img, sem, 11)
    a, b, c = s[5, 3], s[5, 9], s[5, 15]  # centres of the objects 1, 2, 3
    assert (a == b).all() and (a != c).any()
    assert (a == _blend(_hex(O.CLASS_COLOURS[3]))).all()  # label 4 -> the 4th colour
    assert (c == _blend(_hex(O.CLASS_COLOURS[7]))).all()
    assert (s[0, 0] == round(O.DIM * GREY)).all()  # background: dimmed grey photo
    i = O.instance_overlay(img, inst)
    ia, ib, ic = i[5, 3], i[5, 9], i[5, 15]
    assert len({tuple(ia), tuple(ib), tuple(ic)}) == 3
    assert (ia == _blend(O.instance_palette(4)[1])).all()
    assert (i[2, 1] == ia).all()  # no line against the background
    p = O.panoptic_overlay(img, sem, inst, 11)
    pa, pb = p[5, 3], p[5, 9]
    assert (pa != pb).any()  # two 3s: one hue, two shades
    base = _hex(O.CLASS_COLOURS[3])
    assert (pa == _blend(base)).all()  # id 1: the class colour as is
    assert (pb == _blend(np.round(base * (1 + O.SHADES[1])))).all()  # id 2: darker
    assert (p[0, 0] == s[0, 0]).all()


def test_white_lines_where_objects_touch(scene):
    img, sem, inst = scene
    inst = inst.copy()
    inst[2:9, 6] = 2  # object 2 now touches object 1 (columns 5 | 6)
    sem[2:9, 6] = 4
    lines = O.outlines(inst)
    assert lines[2:9, 5].all() and lines[2:9, 6].all()
    assert lines.sum() == 14  # only there: not around objects against the background
    i = O.instance_overlay(img, inst)
    assert (i[5, 5] == O.OUTLINE).all() and (i[5, 6] == O.OUTLINE).all()
    assert (i[5, 4] != O.OUTLINE).any()
    p = O.panoptic_overlay(img, sem, inst, 11)
    assert (p[5, 5] == O.OUTLINE).all() and (p[5, 15] != O.OUTLINE).any()
    s = O.semantic_overlay(img, sem, 11)
    assert (s[5, 5] == s[5, 6]).all()  # the semantic view draws no lines: the two 3s merge


def test_semantic_colour_keeps_its_hue_over_any_object_colour(scene):
    img, sem, _ = scene
    img = img.copy()
    img[sem == 4] = (255, 0, 0)  # both 3s red ...
    img[2:9, 7:12] = (0, 255, 0)  # ... but the second green
    s = O.semantic_overlay(img, sem, 11)
    colour = _hex(O.CLASS_COLOURS[3])
    assert (s[5, 3] == _blend(colour, (255, 0, 0))).all()
    assert (s[5, 9] == _blend(colour, (0, 255, 0))).all()
    unit = [v / np.linalg.norm(v) for v in (s[5, 3].astype(float), s[5, 9].astype(float))]
    assert np.allclose(unit[0], unit[1], atol=0.02)  # one hue, two brightnesses


def test_palettes_distinct_and_documented():
    pal = O.class_palette(40)
    assert (pal[0] == 0).all() and len({tuple(c) for c in pal}) == 40
    assert ["#{:02x}{:02x}{:02x}".format(*c) for c in pal[1:11]] == list(O.CLASS_COLOURS)
    ip = O.instance_palette(64)
    assert (ip[0] == 0).all() and len({tuple(c) for c in ip}) == 64
    leg = O.legend(["zero", "one"])
    assert [e["name"] for e in leg] == ["background", "zero", "one"]
    assert leg[2]["colour"] == O.CLASS_COLOURS[1] and leg[0]["colour"] == "#000000"
    assert (palette(11) == O.class_palette(11)).all()  # the scenes' drawing: the same owner


def test_draw_scenes_uses_the_same_colours(scene):
    img, sem, inst = scene
    pic = draw_scenes(img[None], sem[None], inst[None])
    assert (pic[5, 20 + 3] == O.class_palette(11)[4]).all()
    assert (pic[5, 40 + 9] == O.instance_palette(3)[2]).all()


def test_align_instances_matches_by_iou(scene):
    _, _, inst = scene
    pred = np.zeros_like(inst)
    pred[2:9, 7:12] = 5  # the true object 2 exactly
    pred[2:9, 1:3] = 6  # a sliver of object 1 (IoU 2/5): no match
    pred[10:12, 0:4] = 7  # an object where there is none
    out = O.align_instances(inst, pred)
    assert (out[2:9, 7:12] == 2).all()
    assert set(np.unique(out[2:9, 1:3])) == {4} and set(np.unique(out[10:12, 0:4])) == {5}
    assert (out[pred == 0] == 0).all()
    with pytest.raises(InputError, match="differ"):
        O.align_instances(inst, pred[:4])


def test_scene_picture_layout_and_errors(scene):
    img, sem, inst = scene
    two = np.stack([img, img]), np.stack([sem, sem]), np.stack([inst, inst])
    pic = O.scene_picture(*two, 11)
    assert pic.shape == (24, 80, 3)
    assert (pic[:12, 20:40] == O.semantic_overlay(img, sem, 11)).all()
    assert (pic[12:, 60:80] == O.panoptic_overlay(img, sem, inst, 11)).all()
    both = O.scene_picture(*two, 11, two[1], two[2])
    assert both.shape == (24, 140, 3) and (both[:, 80:] == pic[:, 20:]).all()  # perfect
    with pytest.raises(InputError, match="both"):
        O.scene_picture(*two, 11, two[1])
    with pytest.raises(InputError, match="expected"):
        O.scene_picture(two[0], two[1][:1], two[2], 11)
    with pytest.raises(InputError, match="n_labels"):
        O.semantic_overlay(img, sem, 5)
    with pytest.raises(InputError, match="uint8"):
        O.semantic_overlay(img.astype(float), sem, 11)


def test_ignored_pixels_are_drawn_as_background(scene):
    img, sem, inst = scene
    ign = sem.copy()
    ign[0, :] = 255  # a row nobody labelled (Pascal VOC's 255)
    ign[2:9, 1:6] = 255  # and the first 3
    plain = sem.copy()
    plain[2:9, 1:6] = 0
    bare = inst.copy()
    bare[2:9, 1:6] = 0
    dim = np.round(O.DIM * (np.full(3, GREY, float) @ LUMA))
    s = O.semantic_overlay(img, ign, 11)
    assert (s == O.semantic_overlay(img, plain, 11)).all()
    assert (s[0] == dim).all() and (s[5, 3] == dim).all()
    p = O.panoptic_overlay(img, ign, bare, 11)
    assert (p == O.panoptic_overlay(img, plain, bare, 11)).all()
    with pytest.raises(InputError, match="n_labels"):
        O.semantic_overlay(img, np.full_like(sem, 254), 11)
