"""What each approach learned, as pictures.

:func:`learned_figures` dispatches on the method's approach and returns a list of
:class:`Figure` entries (title, caption, matplotlib figure):

- features: HOG of sample images at each cell size the method uses;
- bovw: the codebook's words as montages of their nearest patches, and one image's
  word histogram;
- eigen: the mean image, the leading components, reconstructions with growing k, the
  explained variance;
- cnn: first-layer filters, the feature maps of one image layer by layer (spatial size
  shrinking as depth grows) and Grad-CAM heat maps on right and wrong predictions
  (the learning curves are drawn by :mod:`objrec.report.plots`).

The pictures are drawn from the fitted estimator's attributes and the helpers of the
method modules; nothing here changes an estimator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from objrec.report.mosaic import Placement, tile_figure, to_rgb
from objrec.report.plots import image_grid, new_figure, show_image

log = logging.getLogger(__name__)


@dataclass
class FigureEntry:
    """One picture of the report: a title, a sentence saying what it shows, the figure."""

    title: str
    caption: str
    figure: Figure
    wide: bool = False


def _pick(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` samples, one per class first (in class order), deterministic."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out.append(int(rng.choice(idx)))
        if len(out) == n:
            break
    rest = np.setdiff1d(np.arange(len(y)), out)
    if len(out) < n and len(rest):
        out.extend(rng.choice(rest, size=min(n - len(out), len(rest)), replace=False).tolist())
    return np.asarray(out[:n], dtype=np.int64)


def _gray(images: np.ndarray) -> np.ndarray:
    """(N, H, W) float of (N, H, W[, C]) uint8 images (luminance for colour)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x[..., :3].mean(axis=-1) if x.shape[-1] >= 3 else x[..., 0]
    return x


# -- features + classifier ----------------------------------------------------------------
def hog_segments(hist: np.ndarray, cell: tuple[int, int], place: Placement) -> tuple[list, list]:
    """Line glyphs of cell histograms (R, C, O), in mosaic coordinates.

    For each cell and orientation bin, a line through the cell centre perpendicular to
    the bin's mid-angle (the edge direction), as long as the cell, its opacity the bin's
    value over the image's largest one: scikit-image's ``hog(visualize=True)`` drawn
    with vector lines, so that it stays readable on 8x8 images.
    """
    ch, cw = cell
    nr, nc, no = hist.shape
    theta = np.pi * (np.arange(no) + 0.5) / no  # mid-angle of each gradient bin
    r = 0.45 * min(ch, cw)
    vmax = hist.max() or 1.0
    segs, colors = [], []
    for i in range(nr):
        for j in range(nc):
            cy, cx = i * ch + ch / 2, j * cw + cw / 2  # source pixel units, edges at integers
            for o in range(no):
                v = hist[i, j, o] / vmax
                if v < 0.02:
                    continue
                dx, dy = r * np.sin(theta[o]), r * np.cos(theta[o])
                pts = [(cx + dx, cy - dy), (cx - dx, cy + dy)]
                segs.append(
                    [(place.x0 + x * place.sx - 0.5, place.y0 + y * place.sy - 0.5) for x, y in pts]
                )
                colors.append((1.0, 0.75, 0.1, float(v)))
    return segs, colors


def hog_figures(est, X: np.ndarray, y: np.ndarray) -> list[FigureEntry]:
    """HOG of one sample per class (up to 6), at each cell size the method uses."""
    if getattr(est, "features", None) != "hog" or not hasattr(est, "feature_params_"):
        return []
    from matplotlib.collections import LineCollection

    from objrec.features.hog import cell_histograms

    cells = est.feature_params_["cells"]
    idx = _pick(y, 6)
    # the samples at the size the descriptor sees them (the method's working size)
    S = est.to_working_size(X[idx]) if hasattr(est, "to_working_size") else X[idx]
    tiles = [to_rgb(im) for im in S]
    for _ in cells:  # the image dimmed under the glyphs
        tiles += [to_rgb(im) * 0.4 for im in S]
    labels = ["image"] + [f"{ppc}px cells, {cpb}x{cpb} blocks" for ppc, cpb in cells]
    fig, ax, places = tile_figure(
        tiles, cols=len(idx), row_labels=labels, cell=1.5, label_width=1.3
    )
    segs, colors = [], []
    for r, (ppc, _) in enumerate(cells, start=1):
        hist = cell_histograms(
            S,
            orientations=est.orientations,
            pixels_per_cell=ppc,
            transform_sqrt=getattr(est, "transform_sqrt", False),
        )
        for c in range(len(idx)):
            sg, co = hog_segments(hist[c], (ppc, ppc), places[r * len(idx) + c])
            segs += sg
            colors += co
    ax.add_collection(LineCollection(segs, colors=colors, linewidths=1.5))
    return [
        FigureEntry(
            "HOG of sample images",
            "Each cell's histogram of gradient orientations, drawn as lines along the edges it "
            "found (more opaque = stronger): this, after block normalisation, is what the "
            f"classifier sees instead of the pixels ({est.n_features_:,} numbers per image, "
            f"{len(cells)} cell size(s)).",
            fig,
            wide=True,
        )
    ]


# -- bag of visual words --------------------------------------------------------------------
def bovw_figures(
    est, X: np.ndarray, y: np.ndarray, class_names: list[str] | None = None
) -> list[FigureEntry]:
    """Codebook words as patch montages and one image's word histogram
    (:func:`objrec.methods.bovw.word_montages`, :func:`~objrec.methods.bovw.word_histogram`).
    ``y``: class indices of ``X``; ``class_names``: their names, to label each word with
    the class that uses it most."""
    from objrec.methods import bovw as B

    codebook = getattr(est, "codebook_", None)
    if codebook is None:
        return []
    k = len(codebook)
    sample = X[: min(len(X), 300)]
    words, top = class_specific_words(est, sample[:200], np.asarray(y)[: min(len(y), 200)])
    mont = B.word_montages(est, sample, n_patches=10, words=words)
    centres = B.word_images(est)[words] if getattr(est, "descriptor", "") == "patch" else None
    labels = [f"word {w}" for w in words]
    if class_names is not None:
        labels = [f"{w} ({class_names[int(c)]})" for w, c in zip(labels, top, strict=True)]
    out = [_montage_entry(mont, k, labels, centres)]
    i = int(_pick(y, 1)[0])
    out.append(_histogram_entry(X[i], B.word_histogram(est, X[i]), k))
    return out


def class_specific_words(
    est, X: np.ndarray, y: np.ndarray, n: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` visual words whose use differs most between the classes of ``y``, most
    class-specific first: among the more frequent half of the words on images ``X`` (N, H,
    W[, C]) uint8, ranked by the largest share of a word in one class's descriptors over
    its mean share across classes. On natural images the most frequent words are flat
    patches (sky, walls) that every class uses alike; these are the ones the classifier can
    tell classes by. Returns (n,) word indices (fewer when the codebook is smaller), and
    (n,) the class of ``y`` that uses each most."""
    from objrec.methods import bovw as B

    classes = np.unique(y)
    share = np.stack([B.word_counts(est, X[y == c]).astype(np.float64) for c in classes])
    total = share.sum(axis=0)
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1)  # (classes, words)
    frequent = total >= np.median(total)
    ratio = share.max(axis=0) / np.maximum(share.mean(axis=0), 1e-12)
    ratio[~frequent] = -1.0
    words = np.argsort(-ratio, kind="stable")[: min(n, int(frequent.sum()))]
    return words, classes[share[:, words].argmax(axis=0)]


def _montage_entry(mont, k: int, labels: list[str], centres=None) -> FigureEntry:
    """``mont``: (n_words, n_patches, s, s[, C]) patches nearest to each word's centre;
    ``labels``: a row label per word; ``centres``: (n_words, s, s[, C]) uint8 pictures of
    the words themselves, or None."""
    mont = np.asarray(mont)
    n_words, n_patches = mont.shape[:2]
    tiles = []
    for w in range(n_words):
        if centres is not None:
            tiles += [to_rgb(np.asarray(centres[w])), None]  # the word, a gap, its patches
        tiles += [to_rgb(mont[w, p]) for p in range(n_patches)]
    first = (
        "each row starts with the word itself (its k-means centre de-whitened back to "
        "pixels and contrast-stretched around grey, so hues look stronger), then shows "
        if centres is not None
        else "each row shows "
    )
    fig, _, _ = tile_figure(
        tiles,
        cols=n_patches + (2 if centres is not None else 0),
        row_labels=labels,
        cell=0.5,
        label_width=max(0.8, 0.07 * max(len(t) for t in labels)),
        min_side=24,
    )
    return FigureEntry(
        "Codebook: visual words",
        f"The {n_words} of the {k} visual words (k-means centres of local patch "
        "descriptors) whose use differs most between classes (the largest share in one "
        "class's patches over the mean share, among the more frequent half of the words); "
        f"{first}the {n_patches} test-image patches closest to one word.",
        fig,
    )


def _histogram_entry(image: np.ndarray, h: np.ndarray, k: int) -> FigureEntry:
    fig = new_figure(9, 2.4)
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1, 6])
    show_image(ax0, image)
    ax1.bar(np.arange(len(h)), h, width=1.0, color="#2563eb")
    ax1.set_xlim(-0.5, len(h) - 0.5)
    ax1.set_xlabel("visual word")
    ax1.set_ylabel("count")
    return FigureEntry(
        "One image as a bag of words",
        "The image described by how often each visual word occurs in it (hard assignment, "
        "whole image): patch positions are forgotten. The classifier itself uses the method's "
        "encoding (e.g. soft assignment, spatial pyramid) of the same words.",
        fig,
        wide=True,
    )


# -- eigenfaces ---------------------------------------------------------------------------------
def eigen_figures(est, X: np.ndarray, y: np.ndarray) -> list[FigureEntry]:
    """Mean image, leading components (and Fisherfaces), reconstructions with growing k,
    explained variance, drawn with the helpers of :mod:`objrec.methods.eigen`."""
    from objrec.methods import eigen as E

    if getattr(est, "pca_", None) is None:
        return []
    out = []
    evr = E.explained_variance(est)
    n_show = min(15, len(evr))
    imgs = [E.mean_image(est), *E.component_images(est, n_show)]
    titles = ["mean"] + [f"PC{i + 1} {evr[i]:.1%}" for i in range(n_show)]
    out.append(
        FigureEntry(
            "Mean image and leading components",
            "Every image is approximated as the mean plus a weighted sum of these components "
            "(eigenimages; red positive, blue negative, with the share of variance each explains); "
            "the method classifies images by their weights.",
            _signed_grid(imgs, titles, first_plain=True),
            wide=True,
        )
    )
    if getattr(est, "lda_", None) is not None:
        fis = E.fisher_images(est, 15)
        out.append(
            FigureEntry(
                "Fisherfaces",
                "The discriminant axes (LDA on the PCA weights) mapped back to pixels: the pixel "
                "patterns that best separate the classes.",
                _signed_grid(list(fis), [f"LD{i + 1}" for i in range(len(fis))]),
                wide=True,
            )
        )
    idx = _pick(y, 4)
    n_comp = len(evr)
    ks = [k for k in (1, 2, 5, 10, 20, 40, 80, 160) if k < n_comp] + [n_comp]
    recs = [E.reconstruct(est, X[idx], k) for k in ks]  # each (n, H, W[, C]) in 0..1
    tiles, titles = [], []
    for r in range(len(idx)):
        tiles.append(to_rgb(X[idx[r]]))
        titles.append("image" if r == 0 else "")
        for c, k in enumerate(ks):
            tiles.append(to_rgb(_unit_to_uint8(recs[c][r])))
            titles.append(f"k={k}" if r == 0 else "")
    fig, _, _ = tile_figure(tiles, cols=len(ks) + 1, titles=titles, cell=1.05)
    out.append(
        FigureEntry(
            "Reconstruction from the first k components",
            "Mean plus the first k weighted components: a few give a blurred prototype, more add "
            "the details of the individual image.",
            fig,
            wide=True,
        )
    )
    fig = new_figure(5.5, 3.0)
    ax = fig.subplots()
    ks_ = np.arange(1, len(evr) + 1)
    ax.bar(ks_, evr * 100, color="#93c5fd", width=1.0)
    ax2 = ax.twinx()
    ax2.plot(ks_, np.cumsum(evr) * 100, color="#f97316")
    ax2.set_ylim(0, 100)
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance (%)", color="#2563eb")
    ax2.set_ylabel("cumulative (%)", color="#f97316")
    ax.set_title(f"{len(evr)} components keep {evr.sum():.1%} of the variance", fontsize=10)
    out.append(
        FigureEntry(
            "Explained variance",
            "Share of the training images' pixel variance each component explains (bars) and "
            "the running total (line).",
            fig,
        )
    )
    return out


def _signed_grid(imgs: list[np.ndarray], titles: list[str], first_plain: bool = False) -> Figure:
    """Images of both signs in a diverging colour map (the first, optionally, in grey)."""
    tiles = []
    for i, im in enumerate(imgs):
        im = np.asarray(im, dtype=np.float64)
        if i == 0 and first_plain:
            tiles.append(to_rgb(_unit_to_uint8(im)))
            continue
        im = im.mean(axis=-1) if im.ndim == 3 else im
        v = float(np.abs(im).max()) or 1.0
        tiles.append(to_rgb(im, "RdBu_r", -v, v))
    fig, _, _ = tile_figure(tiles, cols=min(8, len(tiles)), titles=titles, cell=1.2)
    return fig


def _unit_to_uint8(img: np.ndarray) -> np.ndarray:
    """A float image in 0..1 units as uint8 0..255 (clipped)."""
    return np.clip(np.round(np.asarray(img) * 255), 0, 255).astype(np.uint8)


# -- CNNs -------------------------------------------------------------------------------------
def _module_name(m) -> str:
    return type(m).__name__


def first_layer_filters(model) -> Figure | None:
    """The first convolution's filters (out, in, kh, kw) as small images."""
    from torch import nn

    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    w = conv.weight.detach().cpu().numpy()  # (out, in, kh, kw)
    tiles = []
    for f in w[:64]:
        if f.shape[0] == 3:  # RGB filter: min..max per filter
            tiles.append(to_rgb(np.transpose(f, (1, 2, 0))))
        else:
            f = f.mean(axis=0)
            v = float(np.abs(f).max()) or 1.0
            tiles.append(to_rgb(f, "RdBu_r", -v, v))
    fig, _, _ = tile_figure(tiles, cols=min(16, len(tiles)), cell=0.55, min_side=30)
    return fig


def first_dense_weights(model, input_shape) -> Figure | None:
    """The first ``nn.Linear`` layer's weights, one image per unit, when it reads the
    flattened input of shape ``input_shape`` (C, H, W)."""
    from torch import nn

    lin = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    c, h, w = (int(v) for v in input_shape)
    if lin is None or lin.in_features != c * h * w:
        return None
    W = lin.weight.detach().cpu().numpy()[:32].reshape(-1, c, h, w).mean(axis=1)
    tiles = [
        to_rgb(u, "RdBu_r", -(float(np.abs(u).max()) or 1.0), float(np.abs(u).max()) or 1.0)
        for u in W
    ]
    fig, _, _ = tile_figure(tiles, cols=min(16, len(tiles)), cell=0.6, min_side=28)
    return fig


def feature_map_stages(model, x) -> list[tuple[str, Any]]:
    """Feature maps of ``x`` (1, C, H, W) after each stage of ``model.features``.

    Stages are the direct children of ``model.features`` whose output is (1, C, H, W);
    consecutive children with the same output shape are merged (Conv then ReLU shows the
    ReLU output, labelled "Conv2d+ReLU"). Returns [(label, tensor (C, H, W)), ...].
    """
    import torch
    from torch import nn

    feats = getattr(model, "features", None)
    children = list(feats.children()) if isinstance(feats, nn.Sequential) else []
    if not children:
        children = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    records: list[tuple[str, Any]] = []
    hooks = []
    for m in children:

        def hook(mod, inp, out, _m=m):
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                records.append((_module_name(_m), out.detach()[0].clone()))

        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    stages: list[tuple[str, Any]] = []
    for name, t in records:
        if stages and stages[-1][1].shape == t.shape:
            stages[-1] = (stages[-1][0] + "+" + name, t)
        else:
            stages.append((name, t))
    return stages


def feature_maps_figure(model, x, image: np.ndarray, n_channels: int = 8) -> Figure | None:
    """One image's feature maps, one row per stage: spatial size shrinks, channels grow."""
    stages = feature_map_stages(model, x)
    if not stages:
        return None
    tiles: list = [to_rgb(image)] + [None] * (n_channels - 1)
    labels = [f"input {'x'.join(map(str, image.shape[:2]))}"]
    for name, t in stages:
        a = t.cpu().numpy()  # (C, H, W)
        # the most active channels of this stage, each scaled to its own range
        order = np.argsort(-a.reshape(len(a), -1).mean(axis=1))[:n_channels]
        row = [to_rgb(a[o], "viridis") for o in order]
        tiles += row + [None] * (n_channels - len(row))
        labels.append(f"{name}\n{a.shape[0]} x {a.shape[1]} x {a.shape[2]}")
    fig, _, _ = tile_figure(tiles, cols=n_channels, row_labels=labels, cell=1.0, label_width=1.6)
    return fig


#: Grad-CAM uses the deepest convolution whose output is at least this many pixels on
#: its shorter side: on small inputs (8x8 digits) the last convolution of a network is
#: 2x2 or 1x1, and a map upsampled from it is a flat blob.
CAM_MIN_SIDE = 4


def conv_output_sizes(model, x) -> list[tuple[int, int]]:
    """(h, w) of every ``nn.Conv2d`` output of ``model`` for input ``x`` (N, C, H, W), in
    module order."""
    import torch
    from torch import nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    sizes: dict[int, tuple[int, int]] = {}
    hooks = [
        c.register_forward_hook(
            lambda mod, inp, out, i=i: sizes.__setitem__(i, tuple(out.shape[-2:]))
        )
        for i, c in enumerate(convs)
    ]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(x[:1])
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return [sizes[i] for i in range(len(convs)) if i in sizes]


def cam_layer(model, x, min_side: int = CAM_MIN_SIDE) -> tuple[int, tuple[int, int]]:
    """The convolution Grad-CAM should use: index among the model's ``nn.Conv2d`` modules
    and its output size (h, w). The deepest one whose shorter side is at least
    ``min_side`` (or the input's, if smaller); when none is, the one of most pixels."""
    sizes = conv_output_sizes(model, x)
    if not sizes:
        raise ValueError("Grad-CAM needs a model with at least one Conv2d layer")
    need = min(min_side, *x.shape[-2:])
    ok = [i for i, (h, w) in enumerate(sizes) if min(h, w) >= need]
    i = ok[-1] if ok else max(range(len(sizes)), key=lambda j: sizes[j][0] * sizes[j][1])
    return i, sizes[i]


def grad_cam(model, x, target: np.ndarray | None = None, layer: int | None = None):
    """Grad-CAM heat maps (N, H, W) float in 0..1 for inputs ``x`` (N, C, H, W).

    Hooks convolution number ``layer`` of ``model`` (index among its ``nn.Conv2d``
    modules; default :func:`cam_layer`'s choice, the last one on inputs large enough):
    its activations A (N, K, h, w) and the gradient G of the target class's logit with
    respect to them. The map is ReLU(sum_k mean_{h,w}(G_k) * A_k), upsampled bilinearly
    to the input size and scaled to 0..1 per image (Selvaraju et al., 2017). ``target``:
    (N,) class indices (default: the predicted class). Returns (cams, logits (N, K)).
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    model = copy.deepcopy(model).eval()
    for m in model.modules():  # in-place activations would overwrite the hooked tensor
        if hasattr(m, "inplace"):
            m.inplace = False
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a model with at least one Conv2d layer")
    store: dict[str, Any] = {}

    def fwd(mod, inp, out):
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    if layer is None:
        layer = cam_layer(model, x)[0]
    h = convs[layer].register_forward_hook(fwd)
    try:
        with torch.enable_grad():
            xin = x.clone().requires_grad_(True)
            logits = model(xin)
            tgt = logits.argmax(1) if target is None else torch.as_tensor(target, dtype=torch.long)
            logits.gather(1, tgt[:, None]).sum().backward()
    finally:
        h.remove()
    act, grad = store["act"].detach(), store["grad"].detach()
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    cam = torch.relu((weights * act).sum(dim=1, keepdim=True))  # (N, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = cam.reshape(len(cam), -1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    cam = (cam - lo) / (hi - lo).clamp_min(1e-12)
    return cam.numpy(), logits.detach().numpy()


def grad_cam_figure(
    images: np.ndarray,
    cams_pred: np.ndarray,
    cams_true: np.ndarray | None,
    titles: list[str],
) -> Figure:
    """Rows: image, Grad-CAM for the predicted class, (for wrong ones) for the true class."""
    from matplotlib import colormaps

    def overlay(img, cam):  # heat map over the image, opaque where the evidence is strong
        a = 0.65 * np.clip(cam, 0, 1)[..., None]
        return (1 - a) * to_rgb(img) + a * colormaps["jet"](np.clip(cam, 0, 1))[..., :3]

    n = len(images)
    tiles = [to_rgb(im) for im in images]
    tiles += [overlay(images[i], cams_pred[i]) for i in range(n)]
    labels = ["image", "predicted class"]
    if cams_true is not None:
        tiles += [overlay(images[i], cams_true[i]) for i in range(n)]
        labels.append("true class")
    all_titles = list(titles) + [""] * (len(tiles) - n)
    fig, _, _ = tile_figure(
        tiles, cols=n, titles=all_titles, row_labels=labels, cell=1.15, label_width=1.1
    )
    return fig


def cnn_figures(
    est, X: np.ndarray, y_idx: np.ndarray, pred_idx: np.ndarray, class_names: list[str]
) -> list[FigureEntry]:
    """Filters, feature maps and Grad-CAM of a fitted CNN estimator (``model_``, ``to_tensor``)."""
    model = getattr(est, "model_", None)
    if model is None or not hasattr(est, "to_tensor"):
        return []
    import torch

    model.eval()
    out = []
    fig = first_layer_filters(model)
    if fig is not None:
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        kh, kw = conv.kernel_size
        colour = (
            "each filter's RGB weights scaled to its own range"
            if conv.in_channels == 3
            else "red positive, blue negative weights"
        )
        out.append(
            FigureEntry(
                "First-layer filters",
                f"The {conv.out_channels} kernels ({kh}x{kw}) of the first convolution, learned "
                f"from the data ({colour}): edge, colour and blob detectors, each shared across "
                "every image position.",
                fig,
                wide=True,
            )
        )
    i = int(_pick(y_idx, 1)[0])
    with torch.no_grad():
        x = est.to_tensor(X[i : i + 1])
    fig = feature_maps_figure(model, x, X[i])
    if fig is not None:
        out.append(
            FigureEntry(
                "Feature maps, layer by layer",
                "One test image through the network's feature extractor (the 8 most active "
                "channels per stage): the spatial size shrinks with pooling as the number of "
                "channels grows, from local edges to class-specific parts.",
                fig,
                wide=True,
            )
        )
    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        # a perceptron: no filters, feature maps or Grad-CAM; its first layer's weights are images
        fig = first_dense_weights(model, x.shape[1:])
        if fig is not None:
            out.append(
                FigureEntry(
                    "First-layer weights",
                    "Each unit of the first dense layer has one weight per input pixel, shown "
                    "here as an image (red positive, blue negative): no sharing across "
                    "positions, so a pattern learned in one place is not recognised in another.",
                    fig,
                    wide=True,
                )
            )
        return out
    right = np.flatnonzero(pred_idx == y_idx)
    wrong = np.flatnonzero(pred_idx != y_idx)
    rng = np.random.default_rng(0)
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    layer, (lh, lw) = cam_layer(model, x)
    where = (
        "the last convolution"
        if layer == n_convs - 1
        else f"convolution {layer + 1} of {n_convs} (the deepest one still {lh}x{lw} or more "
        "on these small images: the later ones are too coarse for a map)"
    )
    where += f", a {lh}x{lw} map upsampled to the image"
    if min(lh, lw) < CAM_MIN_SIDE:
        where += "; that coarse a map can only say roughly which part of the image counted"
    for kind, pool, n in (("right", right, 8), ("wrong", wrong, 8)):
        if not len(pool):
            continue
        sel = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))
        xt = est.to_tensor(X[sel])
        cam_p, logits = grad_cam(model, xt, pred_idx[sel], layer=layer)
        cam_t = grad_cam(model, xt, y_idx[sel], layer=layer)[0] if kind == "wrong" else None
        prob = torch.softmax(torch.as_tensor(logits), 1).numpy()
        titles = [
            f"{class_names[pred_idx[s]]} {prob[j, pred_idx[s]]:.0%}"
            + ("" if kind == "right" else f"\n(true {class_names[y_idx[s]]})")
            for j, s in enumerate(sel)
        ]
        out.append(
            FigureEntry(
                f"Grad-CAM on {kind} predictions",
                "Where the evidence for a class lies (red = most), for the "
                + (
                    "predicted class of correctly classified test images"
                    if kind == "right"
                    else "predicted class (middle row) and the true class (bottom row) of "
                    "misclassified test images"
                )
                + f". Taken at {where}.",
                grad_cam_figure(X[sel], cam_p, cam_t, titles),
                wide=True,
            )
        )
    return out


def learned_figures(
    result, X: np.ndarray, y_idx: np.ndarray, class_names: list[str]
) -> list[FigureEntry]:
    """The pictures of what method ``result`` (a :class:`~objrec.evaluation.compare.MethodResult`)
    learned, drawn on test images ``X`` with class indices ``y_idx``. Never raises: a
    picture that cannot be drawn is logged and left out."""
    est = result.estimator
    try:
        if result.approach == "features":
            return hog_figures(est, X, y_idx)
        if result.approach == "bovw":
            return bovw_figures(est, X, y_idx, class_names)
        if result.approach == "eigen":
            return eigen_figures(est, X, y_idx)
        if result.approach == "cnn":
            return cnn_figures(est, X, y_idx, result.test_pred, class_names)
    except Exception as e:  # a picture must never sink the report
        log.warning("%s: could not draw what it learned: %s", result.name, e, exc_info=True)
    return []


def sample_images_figure(
    X: np.ndarray, y: np.ndarray, class_names: list[str], per_class: int = 1
) -> Figure:
    """One sample image per class (up to 20 classes)."""
    idx = _pick(y, min(20, len(np.unique(y))))
    return image_grid(X[idx], [class_names[int(y[i])] for i in idx], cols=10, cell=1.0)
