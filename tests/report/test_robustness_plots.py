"""The accuracy-against-severity plot shows every method, even when two curves coincide."""

import numpy as np

from objrec.evaluation.robustness import RobustnessResult
from objrec.report.robustness_plots import accuracy_vs_severity_figure, identical_curves


def _result():
    acc = np.array(
        [
            [[0.9, 0.8], [0.7, 0.5]],  # eigen
            [[0.9, 0.8], [0.7, 0.5]],  # pixels-knn: the same everywhere
            [[0.95, 0.9], [0.9, 0.85]],  # cnn
        ]
    )
    return RobustnessResult(
        methods=["eigen", "pixels-knn", "cnn"],
        families=["noise", "blur"],
        severities=[1, 2],
        accuracy=acc,
        clean_accuracy=np.array([0.95, 0.95, 0.99]),
        n_images=10,
        baseline="pixels-knn",
    )


def test_identical_curves_are_found():
    r = _result()
    assert identical_curves(r) == [["eigen", "pixels-knn"]]
    r.clean_accuracy = np.array([0.95, 0.94, 0.99])  # differ at severity 0 only
    assert identical_curves(r) == []


def test_each_method_has_its_marker_and_the_legend_notes_identical_curves():
    fig = accuracy_vs_severity_figure(_result())
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3
    markers = [ln.get_marker() for ln in lines]
    assert len(set(markers)) == 3, markers
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["eigen", "pixels-knn (same curve as eigen)", "cnn"]
    hidden = lines[1]  # drawn on top of eigen's: hollow and larger, so both show
    assert hidden.get_markerfacecolor() == "none"
    assert hidden.get_markersize() > lines[0].get_markersize()
