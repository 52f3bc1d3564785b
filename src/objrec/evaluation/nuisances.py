"""Nuisances: graded changes of pose, illumination, shape, visibility, background and image
quality that a recogniser should be invariant to, as pure array functions.

Every nuisance has the signature ``f(images, severity, rng) -> images``:

- ``images``: uint8 ``(N, H, W)`` or ``(N, H, W, C)``; the result has the same shape and dtype.
- ``severity``: int 0..5. 0 is the identity (a copy), 1 mild, 5 hard but still
  recognisable by a person. Amounts are relative to the image side, so 28x28 digits and
  larger images get the same visual strength.
- ``rng``: a seed or ``numpy.random.Generator``; the same seed gives the same output. The
  random draws do not depend on the severity (same direction, position, noise pattern at
  every level; only the amount grows), so the distance from the original grows with the
  severity.

Nuisances are grouped into *families* (:data:`FAMILIES`): ``pose``, ``illumination``,
``deformation``, ``occlusion``, ``background``, ``noise``, ``blur``. :func:`corrupt`
applies a family (each image gets one of its members, spread evenly over the batch) or a
single nuisance by name.

Background and foreground: the fill colour for pixels that pose changes bring in, and the
object's foreground mask used by ``background_*`` and ``occlusion``, come from the image
border (:func:`border_colour`, :func:`foreground_mask`). For dark-background sets such as
MNIST and Fashion-MNIST the border is black and the mask is the object's nonzero pixels
(dark parts inside an object, such as a black print on a shirt, count as background and
let the clutter show through). For photographs whose object does not stand out from a uniform border the mask is only a
rough guess (pixels far from the border's median colour), so the ``background`` family is
meaningful mainly for object-on-plain-background data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from objrec.errors import InputError
from objrec.validation import check_images

MAX_SEVERITY = 5
SEVERITIES = tuple(range(1, MAX_SEVERITY + 1))

# Amount per severity 0..5 (index = severity). Units written beside each table.
ROTATION_DEG = (0, 12, 24, 36, 48, 60)  # degrees, random sign
TRANSLATION_FRAC = (0, 0.06, 0.12, 0.18, 0.24, 0.30)  # of the image side, random direction
SHRINK = (1, 0.9, 0.8, 0.7, 0.6, 0.5)  # scale factor when shrinking
ENLARGE = (1, 1.08, 1.16, 1.24, 1.32, 1.40)  # scale factor when enlarging
SHEAR = (0, 0.12, 0.24, 0.36, 0.48, 0.60)  # shear factor (tan of the angle), random sign/axis
BRIGHTNESS = (0, 0.1, 0.2, 0.3, 0.4, 0.5)  # added to 0..1 intensities, random sign
CONTRAST = (1, 0.8, 0.64, 0.48, 0.34, 0.22)  # factor around the image mean
GAMMA_LOG = (0, 0.3, 0.6, 0.9, 1.2, 1.5)  # |log gamma|, random sign
GRADIENT = (0, 0.16, 0.32, 0.48, 0.64, 0.8)  # darkening at the shadowed side, 0..1
ELASTIC_RMS = (0, 0.016, 0.032, 0.048, 0.064, 0.08)  # RMS displacement, fraction of the side
ELASTIC_SIGMA = 0.18  # smoothness of the displacement field, fraction of the side
OCCLUDED_AREA = (0, 0.1, 0.2, 0.3, 0.4, 0.5)  # fraction of the object's bounding box
STRIPE_COVER = (0, 0.1, 0.2, 0.3, 0.4, 0.5)  # fraction of the image under stripes
STROKES = (0, 2, 3, 5, 6, 8)  # number of clutter strokes
CLUTTER_LEVEL = (0, 0.25, 0.35, 0.45, 0.55, 0.65)  # brightness of clutter, 0..1 of full contrast
NOISE_STD = (0, 0.06, 0.12, 0.18, 0.26, 0.36)  # Gaussian noise std, 0..1 intensity units
SALT_PEPPER = (0, 0.03, 0.06, 0.09, 0.17, 0.27)  # fraction of pixels set to 0 or 255
BLUR_SIGMA = (0, 0.02, 0.035, 0.05, 0.065, 0.08)  # Gaussian sigma, fraction of the side
MOTION_LENGTH = (0, 0.08, 0.14, 0.2, 0.26, 0.32)  # motion blur length, fraction of the side

Rng = int | np.random.Generator | None


def _generator(rng: Rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_severity(severity) -> int:
    """``severity`` as an int in 0..5, or an :class:`~objrec.errors.InputError`."""
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
        raise InputError(f"severity must be an integer 0..{MAX_SEVERITY}, got {severity!r}")
    if not 0 <= severity <= MAX_SEVERITY:
        raise InputError(
            f"severity must be in 0..{MAX_SEVERITY} (0 = unchanged, 5 = hardest), got {severity}"
        )
    return int(severity)


def _as_nhwc(images) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> float32 (N, H, W, C) in 0..255."""
    x = check_images(images, what="images")
    x = x.astype(np.float32)
    return x[..., None] if x.ndim == 3 else x


def _to_uint8(x: np.ndarray, like_ndim: int) -> np.ndarray:
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out[..., 0] if like_ndim == 3 else out


def _cv(img: np.ndarray) -> np.ndarray:
    """(H, W, C) -> what OpenCV expects: (H, W) for one channel."""
    return img[..., 0] if img.shape[-1] == 1 else img


def _from_cv(img: np.ndarray, c: int) -> np.ndarray:
    return img[..., None] if img.ndim == 2 else img.reshape(*img.shape[:2], c)


def border_colour(images) -> np.ndarray:
    """Median colour of each image's one-pixel border: float32 (N, C), 0..255.

    The background estimate used to fill pixels uncovered by pose changes and to find
    the foreground (0 for MNIST-like data).
    """
    x = _as_nhwc(images)
    border = np.concatenate(
        [x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1
    )  # (N, 2W + 2H - 4, C)
    return np.median(border, axis=1).astype(np.float32)


def foreground_mask(images, *, full_at: float = 96.0) -> np.ndarray:
    """Soft foreground mask: float32 (N, H, W) in 0..1.

    A pixel's weight is its distance from the border colour (largest channel difference)
    divided by ``full_at`` (0..255 units), clipped to 1: for dark-background sets the
    nonzero pixels, with anti-aliased edges kept soft. See the module docstring for
    images whose object does not stand out from a plain border.
    """
    x = _as_nhwc(images)
    bg = border_colour(images)[:, None, None, :]
    dist = np.abs(x - bg).max(axis=-1)
    return np.clip(dist / full_at, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- pose


def _warp_affine(x: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Apply 2x3 forward affine maps ``mats`` (N, 2, 3) to float (N, H, W, C), filling
    uncovered pixels with each image's border colour."""
    n, h, w, c = x.shape
    fill = border_colour(x.astype(np.uint8))
    out = np.empty_like(x)
    for i in range(n):
        out[i] = _from_cv(
            cv2.warpAffine(
                _cv(x[i]),
                mats[i].astype(np.float64),
                (w, h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=tuple(float(v) for v in fill[i]) + (0.0,) * (4 - c),
            ),
            c,
        )
    return out


def _affine_about_centre(linear: np.ndarray, shift: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, 2, 2) linear parts and (N, 2) shifts (x, y in pixels) -> (N, 2, 3) maps that act
    about the image centre."""
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    offset = centre + shift - np.einsum("nij,j->ni", linear, centre)
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def _finish(fn):
    """Wrap ``fn(x_float_nhwc, severity, rng)``: validation, identity at 0, uint8 out."""

    def wrapper(images, severity: int = 3, rng: Rng = None) -> np.ndarray:
        s = check_severity(severity)
        x = check_images(images, what="images")
        if s == 0:
            return x.copy()
        out = fn(_as_nhwc(x), s, _generator(rng))
        return _to_uint8(out, x.ndim)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


@_finish
def rotate(x, s, rng):
    """Rotation about the centre by ``ROTATION_DEG[s]`` degrees (12..60), random sign."""
    n, h, w, _ = x.shape
    sign = rng.choice([-1.0, 1.0], size=n)
    t = np.deg2rad(sign * ROTATION_DEG[s])
    lin = np.stack([np.stack([np.cos(t), np.sin(t)], 1), np.stack([-np.sin(t), np.cos(t)], 1)], 1)
    return _warp_affine(x, _affine_about_centre(lin, np.zeros((n, 2)), h, w))


@_finish
def translate(x, s, rng):
    """Shift by ``TRANSLATION_FRAC[s]`` of the side (6%..30%) in a random direction."""
    n, h, w, _ = x.shape
    theta = rng.uniform(0, 2 * np.pi, size=n)
    shift = TRANSLATION_FRAC[s] * np.stack([w * np.cos(theta), h * np.sin(theta)], 1)
    return _warp_affine(x, _affine_about_centre(np.tile(np.eye(2), (n, 1, 1)), shift, h, w))


@_finish
def scale(x, s, rng):
    """Shrink (x0.9..x0.5) or enlarge (x1.08..x1.4) about the centre, chosen at random."""
    n, h, w, _ = x.shape
    grow = rng.random(n) < 0.5
    f = np.where(grow, ENLARGE[s], SHRINK[s])
    return _warp_affine(
        x, _affine_about_centre(f[:, None, None] * np.eye(2), np.zeros((n, 2)), h, w)
    )


@_finish
def shear(x, s, rng):
    """Shear by ``SHEAR[s]`` (0.12..0.6, about 7..31 degrees), random sign and axis."""
    n, h, w, _ = x.shape
    k = rng.choice([-1.0, 1.0], size=n) * SHEAR[s]
    vertical = rng.random(n) < 0.5
    lin = np.tile(np.eye(2), (n, 1, 1))
    lin[:, 0, 1] = np.where(vertical, 0.0, k)
    lin[:, 1, 0] = np.where(vertical, k, 0.0)
    return _warp_affine(x, _affine_about_centre(lin, np.zeros((n, 2)), h, w))


# ------------------------------------------------------------------- illumination


@_finish
def brightness(x, s, rng):
    """Add ``BRIGHTNESS[s]`` (0.1..0.5 of full scale) to every pixel, random sign."""
    sign = rng.choice([-1.0, 1.0], size=len(x))
    return x + (sign * BRIGHTNESS[s] * 255)[:, None, None, None]


@_finish
def contrast(x, s, rng):
    """Scale the differences from each image's mean by ``CONTRAST[s]`` (0.8..0.22)."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * CONTRAST[s] + mean


@_finish
def gamma(x, s, rng):
    """Gamma curve ``255 (x/255)^g`` with ``|log g| = GAMMA_LOG[s]`` (g 0.22..4.5), random sign."""
    g = np.exp(rng.choice([-1.0, 1.0], size=len(x)) * GAMMA_LOG[s])
    return 255.0 * (x / 255.0) ** g[:, None, None, None]


@_finish
def lighting_gradient(x, s, rng):
    """Directional light: a linear ramp in a random direction darkens one side (gain down
    to ``1 - GRADIENT[s]``) and lights the other (adds up to ``GRADIENT[s] / 2``)."""
    n, h, w, _ = x.shape
    theta = rng.uniform(0, 2 * np.pi, size=n)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = (xx[None] - (w - 1) / 2) * np.cos(theta)[:, None, None] + (
        yy[None] - (h - 1) / 2
    ) * np.sin(theta)[:, None, None]
    half = 0.5 * np.hypot(h, w)
    t = np.clip(proj / (2 * half) + 0.5, 0, 1)[..., None]  # 0 lit side .. 1 shadowed side
    k = GRADIENT[s]
    return x * (1 - k * t) + 255.0 * (k / 2) * (1 - t)


# -------------------------------------------------------------------- deformation


@_finish
def elastic(x, s, rng):
    """Elastic distortion: a smooth random displacement field (Gaussian-filtered noise,
    sigma ``ELASTIC_SIGMA`` of the side) scaled to RMS ``ELASTIC_RMS[s]`` of the side."""
    n, h, w, c = x.shape
    side = min(h, w)
    field = rng.uniform(-1, 1, size=(2, n, h, w))
    sig = ELASTIC_SIGMA * side
    field = ndimage.gaussian_filter(field, sigma=(0, 0, sig, sig), mode="constant")
    rms = np.sqrt((field**2).mean(axis=(0, 2, 3), keepdims=True)) + 1e-12
    field = field / rms * (ELASTIC_RMS[s] * side)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fill = border_colour(x.astype(np.uint8))
    out = np.empty_like(x)
    for i in range(n):
        out[i] = _from_cv(
            cv2.remap(
                _cv(x[i]),
                (xx + field[0, i]).astype(np.float32),
                (yy + field[1, i]).astype(np.float32),
                interpolation=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=tuple(float(v) for v in fill[i]) + (0.0,) * (4 - c),
            ),
            c,
        )
    return out


# ---------------------------------------------------------------------- occlusion


def _object_boxes(x: np.ndarray) -> np.ndarray:
    """(N, 4) int boxes (top, left, bottom, right), exclusive ends, of the foreground
    (mask > 0.5); the whole image where no foreground is found."""
    n, h, w, _ = x.shape
    mask = foreground_mask(x.astype(np.uint8)) > 0.5
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    boxes = np.tile(np.array([0, 0, h, w]), (n, 1))
    for i in range(n):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(r) and len(c):
            boxes[i] = (r[0], c[0], r[-1] + 1, c[-1] + 1)
    return boxes


def _random_colour(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    if c == 1:
        return rng.uniform(0, 255, size=(n, 1)).astype(np.float32)
    return rng.uniform(0, 255, size=(n, c)).astype(np.float32)


@_finish
def occlude_rectangle(x, s, rng):
    """A rectangle of a random flat colour covering ``OCCLUDED_AREA[s]`` (10%..50%) of the
    object's bounding box, at a random place in the box, aspect ratio 1:2..2:1."""
    n, c = len(x), x.shape[-1]
    boxes = _object_boxes(x)
    centre = rng.random((n, 2))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2), size=n))
    colour = _random_colour(rng, n, c)
    out = x.copy()
    for i in range(n):
        top, left, bottom, right = boxes[i]
        bh, bw = bottom - top, right - left
        area = OCCLUDED_AREA[s] * bh * bw
        rh = min(bh, np.sqrt(area / aspect[i]))
        rw = min(bw, area / max(rh, 1e-6))
        cy = top + rh / 2 + centre[i, 0] * (bh - rh)
        cx = left + rw / 2 + centre[i, 1] * (bw - rw)
        r0, r1 = round(cy - rh / 2), round(cy + rh / 2)
        c0, c1 = round(cx - rw / 2), round(cx + rw / 2)
        out[i, max(r0, 0) : max(r1, r0 + 1), max(c0, 0) : max(c1, c0 + 1)] = colour[i]
    return out


@_finish
def occlude_stripes(x, s, rng):
    """Parallel bars of a random flat colour covering ``STRIPE_COVER[s]`` (10%..50%) of the
    image (period a sixth of the side, random angle and phase), as seen through blinds."""
    n, h, w, c = x.shape
    period = max(3.0, min(h, w) / 6)
    theta = rng.uniform(0, np.pi, size=n)
    phase = rng.uniform(0, period, size=n)
    colour = _random_colour(rng, n, c)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = xx[None] * np.cos(theta)[:, None, None] + yy[None] * np.sin(theta)[:, None, None]
    bars = np.mod(proj + phase[:, None, None], period) < STRIPE_COVER[s] * period  # (N, H, W)
    return np.where(bars[..., None], colour[:, None, None, :], x)


# --------------------------------------------------------------------- background


def _composite(x: np.ndarray, clutter: np.ndarray) -> np.ndarray:
    """Object over clutter through the soft foreground mask."""
    alpha = foreground_mask(x.astype(np.uint8))[..., None]
    return alpha * x + (1 - alpha) * clutter


@_finish
def background_strokes(x, s, rng):
    """The object (through its foreground mask) over ``STROKES[s]`` random pen strokes
    (polylines of 4 points, a fourteenth of the side thick) of brightness up to
    ``CLUTTER_LEVEL[s]`` of the way from the background to the opposite extreme."""
    n, h, w, c = x.shape
    kmax = STROKES[-1]
    pts = rng.uniform(-0.1, 1.1, size=(n, kmax, 4, 2)) * np.array([w, h])
    level = rng.uniform(0.5, 1.0, size=(n, kmax))
    tint = rng.uniform(0, 1, size=(n, kmax, c))
    thick = max(1, round(min(h, w) / 14))
    bg = border_colour(x.astype(np.uint8))  # (N, C)
    target = np.where(bg < 128, 255.0, 0.0)  # opposite extreme of the background
    clutter = np.broadcast_to(bg[:, None, None, :], x.shape).copy()
    for i in range(n):
        canvas = clutter[i].copy()
        for k in range(STROKES[s]):
            amount = CLUTTER_LEVEL[s] * level[i, k]
            col = bg[i] + amount * (target[i] - bg[i]) * (tint[i, k] if c > 1 else 1.0)
            canvas = _from_cv(
                cv2.polylines(
                    np.ascontiguousarray(_cv(canvas)),
                    [np.rint(pts[i, k]).astype(np.int32)],
                    isClosed=False,
                    color=tuple(float(v) for v in np.atleast_1d(col)),
                    thickness=thick,
                    lineType=cv2.LINE_AA,
                ),
                c,
            )
        clutter[i] = canvas
    return _composite(x, clutter)


@_finish
def background_texture(x, s, rng):
    """The object (through its foreground mask) over a texture cut from another image of
    the batch: a random half-size crop, enlarged x2, flipped/rotated at random, at
    ``CLUTTER_LEVEL[s]`` of its contrast against the background."""
    n, h, w, c = x.shape
    other = (np.arange(n) + 1 + rng.integers(0, max(n - 1, 1))) % n if n > 1 else np.zeros(1, int)
    corner = rng.random((n, 2))
    turns = rng.integers(0, 4, size=n)
    flip = rng.random(n) < 0.5
    bg = border_colour(x.astype(np.uint8))
    ch, cw = max(2, h // 2), max(2, w // 2)
    clutter = np.empty_like(x)
    for i in range(n):
        r0 = int(corner[i, 0] * (h - ch))
        c0 = int(corner[i, 1] * (w - cw))
        crop = x[other[i], r0 : r0 + ch, c0 : c0 + cw]
        crop = np.rot90(crop[:, ::-1] if flip[i] else crop, turns[i])
        tex = _from_cv(cv2.resize(_cv(np.ascontiguousarray(crop)), (w, h), cv2.INTER_LINEAR), c)
        clutter[i] = bg[i] + CLUTTER_LEVEL[s] * (tex - bg[i])
    return _composite(x, clutter)


# ------------------------------------------------------------------ noise and blur


@_finish
def gaussian_noise(x, s, rng):
    """Additive Gaussian noise of std ``NOISE_STD[s]`` (0.06..0.36 of full scale)."""
    return x + rng.standard_normal(x.shape, dtype=np.float32) * (NOISE_STD[s] * 255)


@_finish
def salt_and_pepper(x, s, rng):
    """``SALT_PEPPER[s]`` (3%..27%) of the pixels set to black or white at random."""
    n, h, w, _ = x.shape
    u = rng.random((n, h, w))
    salt = rng.random((n, h, w)) < 0.5
    hit = (u < SALT_PEPPER[s])[..., None]
    return np.where(hit, np.where(salt, 255.0, 0.0)[..., None], x)


@_finish
def gaussian_blur(x, s, rng):
    """Gaussian blur with sigma ``BLUR_SIGMA[s]`` of the side (0.56..2.2 px at 28x28)."""
    sig = BLUR_SIGMA[s] * min(x.shape[1:3])
    return ndimage.gaussian_filter(x, sigma=(0, sig, sig, 0), mode="nearest", truncate=3.0)


@_finish
def motion_blur(x, s, rng):
    """Linear motion blur over ``MOTION_LENGTH[s]`` of the side (2..9 px at 28x28) at a
    random angle."""
    n, h, w, c = x.shape
    theta = rng.uniform(0, np.pi, size=n)
    length = MOTION_LENGTH[s] * min(h, w)
    size = int(np.ceil(length)) | 1
    half = (size - 1) / 2
    out = np.empty_like(x)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - half
    for i in range(n):
        # Kernel: an anti-aliased segment of the given length through the centre (weight
        # 1 - distance to the segment, in pixels), normalised to sum 1.
        d = np.array([np.cos(theta[i]), np.sin(theta[i])], np.float32)
        along = np.clip(xx * d[0] + yy * d[1], -length / 2, length / 2)
        dist = np.hypot(xx - along * d[0], yy - along * d[1])
        kernel = np.clip(1 - dist, 0, None)
        kernel /= kernel.sum()
        out[i] = _from_cv(cv2.filter2D(_cv(x[i]), -1, kernel, borderType=cv2.BORDER_REPLICATE), c)
    return out


# ----------------------------------------------------------------------- registry

Nuisance = Callable[..., np.ndarray]


@dataclass(frozen=True)
class NuisanceSpec:
    """A registered nuisance: its name, family and function."""

    name: str
    family: str
    func: Nuisance

    @property
    def description(self) -> str:
        return (self.func.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


_BY_FAMILY: dict[str, tuple[Nuisance, ...]] = {
    "pose": (rotate, translate, scale, shear),
    "illumination": (brightness, contrast, gamma, lighting_gradient),
    "deformation": (elastic,),
    "occlusion": (occlude_rectangle, occlude_stripes),
    "background": (background_strokes, background_texture),
    "noise": (gaussian_noise, salt_and_pepper),
    "blur": (gaussian_blur, motion_blur),
}

NUISANCES: dict[str, NuisanceSpec] = {
    f.__name__: NuisanceSpec(f.__name__, fam, f) for fam, fs in _BY_FAMILY.items() for f in fs
}
"""Every nuisance by name."""

FAMILIES: dict[str, tuple[str, ...]] = {
    fam: tuple(f.__name__ for f in fs) for fam, fs in _BY_FAMILY.items()
}
"""Family name -> the names of its nuisances."""


def list_families() -> list[str]:
    """The family names, in the order tables show them."""
    return list(FAMILIES)


def resolve(name: str) -> tuple[str, ...]:
    """The nuisance names behind ``name`` (a family or a single nuisance)."""
    if name in FAMILIES:
        return FAMILIES[name]
    if name in NUISANCES:
        return (name,)
    raise InputError(
        f"unknown nuisance family {name!r}; families: {', '.join(FAMILIES)}; "
        f"single nuisances: {', '.join(NUISANCES)}"
    )


def corrupt(
    images, name: str, severity: int, rng: Rng = None, *, return_members: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Apply a family or a single nuisance at ``severity`` (0..5).

    For a family with k members the batch is split at random into k near-equal parts
    (image i gets member ``perm[i] % k``), so the result measures the family's members
    equally at the cost of one pass over the batch.

    Parameters
    ----------
    images : uint8 (N, H, W) or (N, H, W, C)
    name : a key of :data:`FAMILIES` or :data:`NUISANCES`
    severity : int 0..5
    rng : seed or Generator (same seed, same output)

    return_members : also return ``member`` (N,) int, the index into ``resolve(name)`` of
        the nuisance each image received (the same at every severity for one seed)

    Returns
    -------
    uint8 array of the same shape (and ``member`` with ``return_members``).
    """
    members = resolve(name)
    s = check_severity(severity)
    x = check_images(images, what="images")
    gen = _generator(rng)
    which = gen.permutation(len(x)) % len(members) if len(members) > 1 else np.zeros(len(x), int)
    if s == 0:
        out = x.copy()
    elif len(members) == 1:
        out = NUISANCES[members[0]].func(x, s, gen)
    else:
        out = _corrupt_members(x, members, which, s, gen)
    return (out, which) if return_members else out


def _corrupt_members(x, members, which, s, gen) -> np.ndarray:
    seeds = gen.integers(0, 2**32, size=len(members))
    out = np.empty_like(x)
    for k, m in enumerate(members):
        idx = np.flatnonzero(which == k)
        if len(idx):
            out[idx] = NUISANCES[m].func(x[idx], s, np.random.default_rng(seeds[k]))
    return out
