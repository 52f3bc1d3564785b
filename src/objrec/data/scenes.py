"""Segmentation scenes built from real images: objects cut from MNIST digits or
Fashion-MNIST items pasted over real photos, with their semantic and instance masks.

    >>> from objrec.data.scenes import load_scene_set
    >>> s = load_scene_set("mnist-scenes", data_dir="../shared/data/mnist")
    >>> s.train.images.shape, s.train.semantic.shape, s.train.instances.dtype
    ((10000, 96, 96, 3), (10000, 96, 96), dtype('uint16'))

Every scene is a canvas (default 96x96) holding 1-6 objects. Each object is a 28x28
source image scaled (0.9x-1.8x), rotated (+-30 degrees), cut through its foreground mask
(pixels brighter than ``threshold`` x 255 after the transform), tinted with a random
colour and pasted at a random position; a later object occludes the earlier ones (a new
object that would leave an earlier one less than 40 % visible is placed again or dropped).
Backgrounds are cut from real photos: CIFAR-10 images (``cifar10-jpg.tar.gz`` as in
``../shared/data``, upscaled from 32x32) and scikit-image's bundled photographs (random
crops). Training and validation scenes use CIFAR-10's training images and the source
set's training images; test scenes use both sets' official test images.

Masks: ``semantic`` uint8 (N, H, W), 0 = background, ``c + 1`` for an object of class
``c`` (index into ``classes``); ``instances`` uint16 (N, H, W), 0 = none, ids 1..k per
scene in pasting order (fully hidden objects removed, ids consecutive).

Everything is deterministic per seed: same seed, same scenes on every machine with the
same source files (``SceneSet.backgrounds`` says which photos were used).
"""

from __future__ import annotations

import functools
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from objrec.errors import DatasetError

#: scikit-image's bundled colour/grey photographs usable as backgrounds (no download)
PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "hubble_deep_field",
    "brick",
    "grass",
    "gravel",
    "camera",
    "coins",
    "moon",
    "page",
    "retina",
)
CIFAR_ARCHIVE = "cifar10-jpg.tar.gz"


@dataclass
class SceneSplit:
    """Scenes of one split: ``images`` uint8 (N, H, W, 3), ``semantic`` uint8 (N, H, W)
    (0 = background, class + 1), ``instances`` uint16 (N, H, W) (0 = none)."""

    images: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class SceneSet:
    """A named scene set: object ``classes`` (mask value ``c + 1`` is ``classes[c]``),
    three splits, where the objects and backgrounds came from, and the generator options."""

    name: str
    classes: list[str]
    train: SceneSplit
    val: SceneSplit
    test: SceneSplit
    source: str
    backgrounds: str
    options: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        """Number of semantic labels including background (``len(classes) + 1``)."""
        return len(self.classes) + 1


@dataclass(frozen=True)
class SceneSpec:
    """A named scene set: its object source (an IDX set name) and fixed split sizes."""

    name: str
    objects: str
    train: int = 10_000
    val: int = 1_000
    test: int = 1_000


SCENE_SETS: dict[str, SceneSpec] = {
    "mnist-scenes": SceneSpec("mnist-scenes", "mnist"),
    "fashion-scenes": SceneSpec("fashion-scenes", "fashion-mnist"),
}


# ----------------------------------------------------------------------------- backgrounds


@functools.lru_cache(maxsize=1)
def skimage_photos() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled photographs as uint8 RGB (H, W, 3) arrays (grey ones tripled)."""
    import skimage.data

    out = []
    for name in PHOTO_NAMES:
        try:
            im = np.asarray(getattr(skimage.data, name)())
        except Exception:  # a photo missing from this scikit-image build is skipped
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        im = im[..., :3]
        if im.dtype != np.uint8:
            im = np.clip(im * (255.0 if im.max() <= 1 else 1.0), 0, 255).astype(np.uint8)
        out.append(np.ascontiguousarray(im))
    if not out:
        raise DatasetError("scikit-image provides none of its bundled photographs")
    return tuple(out)


def find_cifar_archive(data_dir=None) -> Path | None:
    """``cifar10-jpg.tar.gz`` in ``data_dir``, its parent, ``$OBJREC_DATA_DIR``, the user
    cache or the system data folders; None when not found."""
    from objrec.data.paths import SYSTEM_DIRS, env_data_dir, user_cache_dir

    dirs = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        dirs += [d, d.parent]
    env = env_data_dir()
    dirs += [env] if env is not None else []
    dirs += [user_cache_dir(), *SYSTEM_DIRS]
    for d in dirs:
        if (d / CIFAR_ARCHIVE).is_file():
            return d / CIFAR_ARCHIVE
    return None


@functools.lru_cache(maxsize=4)
def cifar_backgrounds(archive: str, split: str, per_class: int = 100) -> np.ndarray:
    """The first ``per_class`` images (by file number) of each class of one split of
    ``cifar10-jpg.tar.gz``, uint8 (n, 32, 32, 3), in sorted (class, number) order."""
    from PIL import Image

    found: dict[tuple[str, int], np.ndarray] = {}
    prefix = f"cifar10-jpg/{split}/"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar:
                if not (m.isfile() and m.name.startswith(prefix) and m.name.endswith(".jpg")):
                    continue
                cls, stem = m.name[len(prefix) :].split("/")[0], Path(m.name).stem
                if not stem.isdigit() or int(stem) >= per_class:
                    continue
                data = tar.extractfile(m).read()
                im = Image.open(io.BytesIO(data)).convert("RGB")
                found[(cls, int(stem))] = np.asarray(im, dtype=np.uint8)
    except (OSError, tarfile.TarError) as e:
        raise DatasetError(f"{archive}: cannot read the CIFAR-10 JPEG archive ({e})") from e
    if not found:
        raise DatasetError(f"{archive}: no images under {prefix}")
    return np.stack([found[k] for k in sorted(found)])


def _background(rng: np.random.Generator, size: int, cifar: np.ndarray | None) -> np.ndarray:
    """One background canvas uint8 (size, size, 3): an upscaled CIFAR-10 image (half the
    time when given) or a random crop of a bundled photograph, maybe mirrored."""
    from PIL import Image

    if cifar is not None and rng.random() < 0.5:
        src = cifar[rng.integers(len(cifar))]
    else:
        photos = skimage_photos()
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w, size) // 2, min(h, w) + 1))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        src = photo[y0 : y0 + side, x0 : x0 + side]
    im = np.asarray(Image.fromarray(src).resize((size, size), Image.BILINEAR))
    return im[:, ::-1].copy() if rng.random() < 0.5 else im.copy()


# ----------------------------------------------------------------------------- objects


def _object(
    rng: np.random.Generator, src: np.ndarray, threshold: float, scale: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A source image (h, w) uint8 scaled and rotated: intensity float32 0..1 and its
    foreground mask (bool), both cropped to the mask's bounding box."""
    from scipy import ndimage

    s = float(rng.uniform(*scale))
    im = ndimage.zoom(src.astype(np.float32) / 255.0, s, order=1)
    im = ndimage.rotate(im, float(rng.uniform(-30, 30)), reshape=True, order=1)
    mask = im > threshold
    if not mask.any():
        return im[:0, :0], mask[:0, :0]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.clip(im[sl], 0, 1), mask[sl]


def render_scenes(
    objects: np.ndarray,
    labels: np.ndarray,
    n: int,
    *,
    seed: int | tuple[int, ...] = 0,
    size: int = 96,
    min_objects: int = 1,
    max_objects: int = 6,
    threshold: float = 0.35,
    scale: tuple[float, float] = (0.9, 1.8),
    cifar: np.ndarray | None = None,
) -> SceneSplit:
    """Render ``n`` scenes from ``objects`` uint8 (M, h, w) with class ``labels`` (M,).

    Parameters
    ----------
    n : number of scenes; seed : the random generator's seed (same seed, same scenes).
    size : canvas side in pixels. min_objects, max_objects : objects per scene (inclusive).
    threshold : foreground cut, a fraction of 255 of the transformed source image.
    scale : range of the scale factor applied to the source image.
    cifar : CIFAR-10 images uint8 (K, 32, 32, 3) used for half of the backgrounds (None:
        only scikit-image's photographs).
    """
    objects = np.asarray(objects)
    labels = np.asarray(labels)
    if objects.ndim != 3 or objects.dtype != np.uint8:
        raise DatasetError(f"objects must be uint8 (M, h, w), got {objects.dtype} {objects.shape}")
    if len(labels) != len(objects) or len(objects) == 0:
        raise DatasetError(f"{len(labels)} labels for {len(objects)} object images")
    if labels.min() < 0 or labels.max() > 254:
        raise DatasetError("object labels must lie in 0..254 (mask value = label + 1)")
    if not 1 <= min_objects <= max_objects:
        raise DatasetError(
            f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}"
        )
    if size < 2 * objects.shape[1]:
        raise DatasetError(f"canvas side {size} is too small for {objects.shape[1]}-pixel objects")
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    semantic = np.zeros((n, size, size), np.uint8)
    instances = np.zeros((n, size, size), np.uint16)
    for i in range(n):
        canvas = _background(rng, size, cifar).astype(np.float32)
        sem, inst = semantic[i], instances[i]
        areas: list[int] = []  # full area of each placed object, by id - 1
        for _ in range(int(rng.integers(min_objects, max_objects + 1))):
            j = int(rng.integers(len(objects)))
            im, mask = _object(rng, objects[j], threshold, scale)
            if mask.sum() < 8 or mask.shape[0] >= size or mask.shape[1] >= size:
                continue
            colour = rng.uniform(0.35, 1.0, 3).astype(np.float32) * 255
            if rng.random() < 0.3:  # some dark objects, so brightness alone does not tell
                colour *= 0.35
            for _attempt in range(5):
                y0 = int(rng.integers(0, size - mask.shape[0] + 1))
                x0 = int(rng.integers(0, size - mask.shape[1] + 1))
                sl = (slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
                covered = inst[sl][mask]
                ok = True
                if covered.any():
                    hidden = np.bincount(covered, minlength=len(areas) + 1)
                    visible = np.bincount(inst.ravel(), minlength=len(areas) + 1)
                    for k in np.flatnonzero(hidden[1:]) + 1:
                        if visible[k] - hidden[k] < 0.4 * areas[k - 1]:
                            ok = False
                            break
                if ok:
                    break
            else:
                continue
            areas.append(int(mask.sum()))
            k = len(areas)
            region = canvas[sl]
            region[mask] = im[mask][:, None] * colour
            sem[sl][mask] = labels[j] + 1
            inst[sl][mask] = k
        images[i] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        # consecutive ids (an object can still vanish if its own mask was all hidden)
        present = np.unique(inst)
        present = present[present > 0]
        if len(present) and present[-1] != len(present):
            lut = np.zeros(int(present[-1]) + 1, np.uint16)
            lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
            instances[i] = lut[inst]
    return SceneSplit(images, semantic, instances)


# ----------------------------------------------------------------------------- named sets


def load_scene_set(
    name: str,
    *,
    data_dir=None,
    seed: int = 0,
    sizes: tuple[int, int, int] | None = None,
    size: int = 96,
    backgrounds: str = "auto",
    download: bool = True,
    progress: bool = False,
) -> SceneSet:
    """Build a named scene set (``mnist-scenes`` or ``fashion-scenes``).

    Parameters
    ----------
    data_dir : folder to look in first for the source IDX files (its parent is also
        searched for ``cifar10-jpg.tar.gz``).
    seed : the scenes' seed. sizes : (train, val, test) scene counts (default the set's
        fixed 10,000 / 1,000 / 1,000; a smaller count gives the first scenes of the full split).
    size : canvas side. backgrounds : ``"auto"`` (CIFAR-10 and photographs when the CIFAR-10
        archive is found, else photographs), ``"cifar10"`` (required) or ``"photos"``.
    """
    from objrec.data.named import IDX_SETS, find_idx_files, locate_idx_set, read_idx_pair

    key = str(name).lower().replace("_", "-")
    if key not in SCENE_SETS:
        raise DatasetError(f"unknown scene set {name!r} (known: {', '.join(SCENE_SETS)})")
    if backgrounds not in ("auto", "cifar10", "photos"):
        raise DatasetError(f"backgrounds must be auto, cifar10 or photos, got {backgrounds!r}")
    spec = SCENE_SETS[key]
    n_train, n_val, n_test = sizes or (spec.train, spec.val, spec.test)
    idx = IDX_SETS[spec.objects]
    folder = locate_idx_set(idx, data_dir, download=download, progress=progress)
    files = find_idx_files(folder)
    stems = list(files)
    Xtr, ytr = read_idx_pair(files[stems[0]], files[stems[1]], len(idx.classes))
    Xte, yte = read_idx_pair(files[stems[2]], files[stems[3]], len(idx.classes))
    archive = None if backgrounds == "photos" else find_cifar_archive(data_dir or folder)
    if backgrounds == "cifar10" and archive is None:
        raise DatasetError(
            f"{CIFAR_ARCHIVE} not found (looked next to the source files, in $OBJREC_DATA_DIR, "
            "the user cache and the system data folders); pass backgrounds='photos' to use "
            "scikit-image's photographs only"
        )
    bg_train = cifar_backgrounds(str(archive), "train") if archive else None
    bg_test = cifar_backgrounds(str(archive), "test") if archive else None
    cut = len(Xtr) - len(Xtr) // 6  # 50,000 / 10,000 for the 60,000-image sets
    common = dict(size=size)
    train = render_scenes(Xtr[:cut], ytr[:cut], n_train, seed=(seed, 0), cifar=bg_train, **common)
    val = render_scenes(Xtr[cut:], ytr[cut:], n_val, seed=(seed, 1), cifar=bg_train, **common)
    test = render_scenes(Xte, yte, n_test, seed=(seed, 2), cifar=bg_test, **common)
    return SceneSet(
        key,
        list(idx.classes),
        train,
        val,
        test,
        source=str(folder.resolve()),
        backgrounds=f"cifar10 ({archive}) + scikit-image photos"
        if archive
        else "scikit-image photos",
        options={"seed": seed, "size": size, "sizes": [n_train, n_val, n_test]},
    )


# ----------------------------------------------------------------------------- drawing


def palette(n: int) -> np.ndarray:
    """uint8 (n, 3) colours of semantic labels 0..n-1 (0 black): the one palette of
    :func:`objrec.segmentation.overlay.class_palette`, named here for older callers."""
    from objrec.segmentation.overlay import class_palette

    return class_palette(n)


def draw_scenes(images, semantic, instances, *, n_labels: int = 11) -> np.ndarray:
    """One picture uint8 (N * H, 3 * W, 3): per row the image, its semantic mask (one
    colour per label: two objects of a class share it) and its instance map (one colour
    per object), in the colours of :mod:`objrec.segmentation.overlay`."""
    from objrec.segmentation.overlay import instance_colours, semantic_colours

    images = np.asarray(images)
    semantic = np.asarray(semantic)
    instances = np.asarray(instances)
    if images.ndim != 4 or semantic.shape != images.shape[:3] or instances.shape != semantic.shape:
        raise DatasetError(
            f"images {images.shape}, semantic {semantic.shape}, instances {instances.shape}: "
            "expected (N, H, W, 3) and two (N, H, W)"
        )
    n = max(n_labels, int(semantic.max(initial=0)) + 1)
    rows = [
        np.concatenate([im, semantic_colours(s, n), instance_colours(k)], axis=1)
        for im, s, k in zip(images, semantic, instances, strict=True)
    ]
    return np.concatenate(rows, axis=0)
