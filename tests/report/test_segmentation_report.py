"""The segmentation report on a tiny comparison with known answers: a perfect method (its
predictions are the truth) and an empty one (everything background)."""

import base64
import re

import numpy as np
import pytest

from crafted_files import square_and_ring
from objrec.commands.segment import measure
from objrec.data.scenes import render_scenes
from objrec.errors import InputError
from objrec.evaluation.segmentation import per_image_scores
from objrec.report.segmentation import (
    SegmentationResult,
    pick_cases,
    write_segmentation_report,
)
from objrec.segmentation.overlay import CLASS_COLOURS

CLASSES = ["square", "ring"]


@pytest.fixture(scope="module")
def split():
    X = square_and_ring()
    return render_scenes(X, np.array([0, 1]), 5, seed=3, size=32, max_objects=3)


class _Fixed:
    """A 'segmenter' answering fixed masks (for :func:`measure`)."""

    def __init__(self, sem, inst):
        self.sem, self.inst = sem, inst

    def predict_panoptic(self, images):
        return self.sem, self.inst, [{} for _ in images]


def _result(name, split, sem, inst, fit=None):
    m = measure(_Fixed(sem, inst), split, len(CLASSES) + 1)
    if fit is not None:
        m["fit_seconds"] = fit
    return SegmentationResult(name, m, sem, inst)


def test_per_image_scores_hand_case():
    t = np.zeros((1, 4, 4), np.uint8)
    t[0, :2, :2] = 1  # one object, 4 of 16 pixels
    ti = t.astype(np.uint16)
    s = per_image_scores(t, ti, np.zeros_like(t), np.zeros_like(ti), 3)
    # background: IoU 12/16 > 0.5, a match; the object missed: PQ (0.75 + 0) / 2
    assert s["pq"][0] == pytest.approx(0.375) and s["miou"][0] == pytest.approx(0.375)
    s = per_image_scores(t, ti, t, ti, 3)
    assert s["pq"][0] == 1 and s["miou"][0] == 1


def test_pick_cases_right_and_wrong_never_overlap():
    scores = {"pq": np.array([0.5, 0.9, 0.1, 0.9]), "miou": np.array([0.5, 0.8, 0.1, 0.95])}
    right, wrong = pick_cases(scores, 2)
    assert right.tolist() == [3, 1] and wrong.tolist() == [2, 0]
    right, wrong = pick_cases({k: v[:3] for k, v in scores.items()}, 3)
    assert right.tolist() == [1, 0] and wrong.tolist() == [2]


def test_report_sections_images_and_numbers(split, tmp_path):
    perfect = _result("perfect", split, split.semantic, split.instances, fit=0.5)
    empty = _result("empty", split, np.zeros_like(split.semantic), np.zeros_like(split.instances))
    assert perfect.metrics["panoptic"]["pq"] == 1.0 and empty.metrics["mask_ap"]["ap"] == 0.0
    path = write_segmentation_report(tmp_path, split, CLASSES, [empty, perfect],
                                     dataset="tiny-scenes", n_cases=2)  # fmt: skip
    html = path.read_text()
    assert path.name == "report.html"
    for anchor in ("comparison", "colours", "legend", "m-perfect", "m-empty"):
        assert f'id="{anchor}"' in html
    for title in ("Quality and cost", "Per-class IoU", "Side by side", "Right cases",
                  "Wrong cases", "PQ = SQ × RQ"):  # fmt: skip
        assert title in html
    # 3 overview figures and 2 case figures per method, every one a PNG also in plots/
    srcs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(srcs) == 3 + 2 * 2
    assert all(base64.b64decode(s)[:8] == b"\x89PNG\r\n\x1a\n" for s in srcs)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 7
    # the legend: background and both classes with their documented colours
    for name, colour in zip(CLASSES, CLASS_COLOURS, strict=False):
        assert name in html and colour in html
    # the table: perfect is the best row, with PQ, mIoU and mask AP 1.000; empty has no fit time
    rows = re.findall(r"<tr( class=\"best\")?><td class=\"left\"><a href=\"#m-(\w+)\">", html)
    assert rows == [("", "empty"), (' class="best"', "perfect")]
    best_row = html.split('<tr class="best">')[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", best_row)
    assert cells[2] == "1.000" and cells[6] == "1.000" and cells[10] == "1.000"
    assert "not measured" in html and "0.5 s" in html


def test_report_refuses_mismatched_predictions(split, tmp_path):
    bad = _result("bad", split, split.semantic, split.instances)
    bad.semantic = bad.semantic[:2]
    with pytest.raises(InputError, match="do not match"):
        write_segmentation_report(tmp_path, split, CLASSES, [bad])
    with pytest.raises(InputError, match="at least one"):
        write_segmentation_report(tmp_path, split, CLASSES, [])
