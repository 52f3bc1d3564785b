"""Hand-crafted image descriptors as pure array functions.

Each function maps a batch of images ``(N, H, W[, C])`` to one vector per image
``(N, D)`` (:func:`pixels`, :func:`hog`, :func:`hog_multi`, :func:`dense_sift`
flattened) or to a set of local descriptors per image ``(N, K, D)``
(:func:`extract_patches`, :func:`dense_sift`). They hold no state: the estimators in
:mod:`objrec.methods` wrap them.
"""

from objrec.features.hog import cell_histograms, hog, hog_multi, hog_visualization
from objrec.features.patches import extract_patches, grid_positions, normalize_patches
from objrec.features.pixels import pixels, to_gray
from objrec.features.sift import dense_sift, keypoint_sift, sift_grid

__all__ = [
    "cell_histograms",
    "dense_sift",
    "extract_patches",
    "grid_positions",
    "hog",
    "hog_multi",
    "hog_visualization",
    "keypoint_sift",
    "normalize_patches",
    "pixels",
    "sift_grid",
    "to_gray",
]
