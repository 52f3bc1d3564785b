"""Report numbers: Wilson intervals, label formatting, chance level, axis from 0."""

import math

import numpy as np
import pytest

from objrec.evaluation.intervals import accuracy_interval, wilson_interval


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (0, 10, 0.0, 0.2775),  # the textbook values (e.g. Newcombe 1998, table I)
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize("k, n", [(25, 27), (1, 3), (990, 1000), (512, 1257)])
def test_wilson_matches_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-9)


def test_accuracy_interval_and_bad_counts():
    assert accuracy_interval(25 / 27, 27) == pytest.approx(_wilson_by_hand(25, 27))
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


@pytest.mark.parametrize(
    "v, text",
    [
        (1257, "1,257"),
        (20700.0, "20,700"),
        (123456.7, "123,457"),
        (12.34, "12.3"),
        (0.0456, "0.0456"),
        (1.5, "1.5"),
        (0, "0"),
    ],
)
def test_labels_are_plain_numbers(v, text):
    from objrec.report.plots import format_number

    assert format_number(v) == text


ROWS = [
    {"method": "a", "test_accuracy": 0.96, "fit_seconds": 0.5, "images_per_second": 20_700.0},
    {"method": "b", "test_accuracy": 0.90, "fit_seconds": 12.0, "images_per_second": 1_257.0},
]


def _texts(ax):
    return [t.get_text().strip() for t in ax.texts]


def test_accuracy_axis_from_zero_with_chance_line_and_intervals():
    from objrec.report.plots import comparison_bars

    fig = comparison_bars(ROWS, n_test=27, chance=0.1)
    acc, fit, speed = fig.axes[:3]
    assert acc.get_xlim()[0] == 0
    chance = [ln for ln in acc.get_lines() if "chance" in str(ln.get_label())]
    assert len(chance) == 1 and np.allclose(chance[0].get_xdata(), 10)
    # error bars: the 95% Wilson interval of 26/27 right, in percent
    lo, hi = wilson_interval(round(0.96 * 27), 27)
    segs = [c for c in acc.containers if hasattr(c, "lines") and c.lines]
    assert segs, "no error bars"
    xs = np.concatenate([s.get_segments()[0][:, 0] for s in segs[0].lines[2]])
    assert xs.min() == pytest.approx(100 * lo, abs=1e-6) and xs.max() == pytest.approx(100 * hi)
    assert "20,700" in _texts(speed) and "1,257" in _texts(speed)
    fig.canvas.draw()
    ticks = [t.get_text() for t in speed.get_xticklabels() + fit.get_xticklabels()]
    assert ticks and not any("e+" in t or "$" in t for t in ticks), ticks


def test_no_intervals_on_a_large_test_set():
    from objrec.report.plots import comparison_bars

    acc = comparison_bars(ROWS, n_test=10_000, chance=0.5).axes[0]
    assert not [c for c in acc.containers if hasattr(c, "has_xerr") and c.has_xerr]
    assert acc.get_xlim()[0] == 0
