"""Per-class accuracy: a class is weak by a rule (well below the mean, beyond chance),
not for being among the lowest fifth; equal classes are marked alike."""

import numpy as np

from objrec.report.plots import BAD, per_class_accuracy_figure, weak_classes


def rows(recalls, support=100):
    return [{"class": str(i), "recall": r, "support": support} for i, r in enumerate(recalls)]


def test_all_perfect_marks_none():
    assert weak_classes(rows([1.0] * 10)) == [False] * 10


def test_close_accuracies_mark_none():
    # within a few points of each other: none is "weak", whatever the ranking
    assert not any(weak_classes(rows([0.97, 0.95, 0.99, 0.96, 0.98])))


def test_tied_classes_are_marked_alike():
    marks = weak_classes(rows([0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 0.70, 0.70]))
    assert marks == [False] * 8 + [True, True]
    # and a tie among the best is never split either
    marks = weak_classes(rows([1.0, 1.0, 0.5, 1.0]))
    assert marks == [False, False, True, False]


def test_a_small_class_is_not_weak_for_one_miss():
    # 3 of 4 right is 14 points below a mean of ~89%, but the 95% Wilson interval of 3/4
    # (0.30..0.95) holds the mean: four images are no evidence of a weak class
    per_class = [*rows([0.9] * 9), {"class": "9", "recall": 0.75, "support": 4}]
    assert weak_classes(per_class) == [False] * 10
    per_class[-1] = {"class": "9", "recall": 0.75, "support": 200}  # 150 of 200: weak
    assert weak_classes(per_class) == [False] * 9 + [True]


def test_the_figure_colours_exactly_the_weak_classes():
    from matplotlib.colors import to_hex

    per_class = rows([0.98, 0.98, 0.70, 0.70, 0.99])
    fig = per_class_accuracy_figure(per_class)
    bars = fig.axes[0].patches
    red = [to_hex(b.get_facecolor()) == BAD for b in bars]
    assert red == weak_classes(per_class) == [False, False, True, True, False]
    perfect = per_class_accuracy_figure(rows([1.0] * 5))
    assert not any(to_hex(b.get_facecolor()) == BAD for b in perfect.axes[0].patches)
    assert np.isclose(
        fig.axes[0].lines[0].get_ydata()[0], 100 * np.mean([0.98, 0.98, 0.7, 0.7, 0.99])
    )
