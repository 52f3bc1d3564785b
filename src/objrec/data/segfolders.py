"""Users' own segmentation data: image + mask folders (Pascal VOC's way) and COCO JSON.

Folders (one set, split here; or pre-split as ``root/{train,val,test}/`` each laid out so)::

    root/images/NAME.jpg      the images, any format the image pipeline reads
    root/masks/NAME.png       semantic mask of NAME: one label per pixel
    root/instances/NAME.png   optional: object id per pixel (8- or 16-bit), 0 = none
    root/classes.txt          optional: label names, one a line; line 1 is label 0

Masks and images pair by name without the extension (``2007_000032.jpg`` with
``2007_000032.png``). A mask is an index (palette) PNG, as Pascal VOC's
``SegmentationClass``, or a grey PNG, whose stored values are the labels (a palette's
indices, never its colours): 0 = background, 1..254 the classes, **255 = ignore** (VOC's
object borders and unlabelled regions: no label; those pixels are left out of training
and of every metric, :data:`~objrec.segmentation.base.IGNORE`). Without ``instances/``,
every 8-connected region of one class is one object. Without ``classes.txt`` the labels
are 0..(largest label found) named by their numbers.

COCO JSON (:func:`load_coco`): ``images`` (``id``, ``file_name``, ``height``,
``width``), ``categories`` (``id``, ``name``) and ``annotations`` (``image_id``,
``category_id``, ``segmentation`` as polygons or RLE, compressed or not, ``iscrowd``),
decoded with ``pycocotools`` (the ``segment`` extra). Categories sorted by id become
labels 1..K; objects are painted largest first, so a smaller object lying on a larger
one stays visible; crowd regions (``iscrowd: 1``) not covered by an object are ignored
(255). Image files are looked for next to the JSON file, then in ``images/`` beside it.

Every image is decoded by the one image pipeline (:mod:`objrec.data.images`: ``decode``
for images, ``decode_labels`` for masks and instance maps). Images of different sizes
are brought to one working size: the median height and width, scaled down so the
longer side is at most ``cap`` (default 128) and rounded to multiples of 16 (so the
U-Net's poolings divide it), or the ``size`` given: images with the pipeline's one
filter (squash), masks and instance maps by nearest neighbour (labels are never
blended). Metrics are then computed at that size. Images of one size keep it unless
``size`` is given.

Every problem is a :class:`~objrec.errors.DatasetError` naming the file: a mask whose
size differs from its image (both sizes given), a label outside ``classes.txt`` or the
model's labels, a mask without an image or an image without a mask, an empty folder, a
corrupt or colour (non-label) PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from objrec.data.images import ImageDecodeError, decode_labels, load_image, parse_size, resize
from objrec.data.listing import natural_key
from objrec.data.scenes import SceneSet, SceneSplit
from objrec.errors import DatasetError
from objrec.segmentation.base import IGNORE

#: Extensions of lossless files read as masks / instance maps.
MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff", ".pgm")
#: Longest side of the working size of a folder whose images differ in size.
SEG_SIZE_CAP = 128
_SPLITS = ("train", "val", "test")


def is_user_data(path) -> bool:
    """True when ``path`` is a folder (images/ + masks/, or train/val/test of them) or a
    ``.json`` file, rather than the name of a scene set."""
    p = Path(path).expanduser()
    return p.is_dir() or (p.suffix.lower() == ".json" and p.is_file())


# ----------------------------------------------------------------------------- decoding


def _decode_image(path: Path) -> np.ndarray:
    try:
        return load_image(path, color="rgb")
    except ImageDecodeError as e:
        raise DatasetError(f"{path}: {e.reason}") from e


def _decode_labels(path: Path) -> np.ndarray:
    try:
        return decode_labels(path)
    except ImageDecodeError as e:
        raise DatasetError(f"{path}: {e.reason}") from e


def _hw(a: np.ndarray) -> str:
    return f"{a.shape[0]}x{a.shape[1]} (height x width)"


def _nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label map (H, W) resized to ``size`` by nearest neighbour (pixel centres)."""
    h, w = a.shape
    th, tw = size
    if (h, w) == (th, tw):
        return a
    rows = np.minimum(((np.arange(th) + 0.5) * h / th).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(tw) + 0.5) * w / tw).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


def segmentation_size(sizes, cap: int = SEG_SIZE_CAP) -> tuple[int, int]:
    """The (height, width) images of these (H, W) ``sizes`` are brought to: their one size
    if they share it, else the median height and width scaled down until the longer side is
    at most ``cap``, rounded to multiples of 16 (at least 16)."""
    hw = np.asarray(sizes, np.float64).reshape(-1, 2)
    if len({(int(a), int(b)) for a, b in hw}) == 1:
        return int(hw[0, 0]), int(hw[0, 1])
    mh, mw = float(np.median(hw[:, 0])), float(np.median(hw[:, 1]))
    scale = min(1.0, cap / max(mh, mw))
    return (max(16, int(mh * scale / 16 + 0.5) * 16), max(16, int(mw * scale / 16 + 0.5) * 16))


def instances_from_semantic(sem: np.ndarray) -> np.ndarray:
    """uint16 (H, W) object ids: every 8-connected region of one label > 0 (not ignored)
    one object, numbered 1.. in label then scan order."""
    from scipy import ndimage

    inst = np.zeros(sem.shape, np.uint16)
    nxt = 1
    for c in np.unique(sem):
        if c == 0 or c == IGNORE:
            continue
        lab, n = ndimage.label(sem == c, structure=np.ones((3, 3), bool))
        inst[lab > 0] = (lab[lab > 0] + nxt - 1).astype(np.uint16)
        nxt += n
    return inst


# ----------------------------------------------------------------------------- samples


def _assemble(samples, size, n_labels, known_from) -> tuple[SceneSplit, int]:
    """One :class:`SceneSplit` from (name, image, semantic, instances or None) samples at
    ``size`` (None: picked by :func:`segmentation_size`); checks labels against
    ``n_labels`` (None: any 0..254)."""
    if size is None:
        size = segmentation_size([s[1].shape[:2] for s in samples]) if samples else (1, 1)
    H, W = size
    images = np.empty((len(samples), H, W, 3), np.uint8)
    semantic = np.zeros((len(samples), H, W), np.uint8)
    instances = np.zeros((len(samples), H, W), np.uint16)
    top = 0
    for i, (name, img, sem, inst) in enumerate(samples):
        labels = np.unique(sem)
        bad = labels[(labels != IGNORE) & (labels >= (n_labels if n_labels else IGNORE))]
        if len(bad):
            allowed = (f"0..{n_labels - 1} ({known_from})" if n_labels
                       else f"0..{IGNORE - 1}")  # fmt: skip
            raise DatasetError(
                f"{name}: unknown class index {int(bad[0])} (labels {allowed}; {IGNORE} = ignore)"
            )
        top = max(top, int(labels[labels != IGNORE].max(initial=0)))
        if inst is None:
            inst = instances_from_semantic(sem)
        else:
            inst = np.where((sem == 0) | (sem == IGNORE), 0, inst).astype(np.uint16)
        images[i] = resize(img, size, "squash")
        semantic[i] = _nearest(sem.astype(np.uint8), size)
        instances[i] = _nearest(inst, size)
    return SceneSplit(images, semantic, instances), top


def _split_indices(n: int, seed: int, val_fraction: float, test_fraction: float):
    """Seeded (train, val, test) index arrays of ``n`` samples; test and train non-empty
    when n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction)) if n >= 2 else 0
    n_val = min(round(n * val_fraction), max(n - n_test - 1, 0))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def _make_set(name, source, parts, *, size, n_labels, classes, known_from, options):
    """A :class:`SceneSet` from a dict split -> samples (all at one size)."""
    if size is None:
        every = [s[1].shape[:2] for p in parts.values() for s in p]
        size = segmentation_size(every)
    splits, top = {}, 0
    for key in _SPLITS:
        splits[key], t = _assemble(parts.get(key, []), size, n_labels, known_from)
        top = max(top, t)
    if classes is None:
        n = n_labels or max(top + 1, 2)
        classes = [str(c) for c in range(1, n)]
    return SceneSet(name, classes, splits["train"], splits["val"], splits["test"],
                    source=str(source), backgrounds="the images' own",
                    options={**options, "size": list(size)})  # fmt: skip


# ----------------------------------------------------------------------------- folders


def _files_by_stem(folder: Path, extensions=None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if p.name.startswith(".") or not p.is_file():
            continue
        if extensions is not None and p.suffix.lower() not in extensions:
            continue
        if p.stem in out:
            raise DatasetError(f"{folder}: two files named {p.stem!r} ({out[p.stem].name}, "
                               f"{p.name}); keep one")  # fmt: skip
        out[p.stem] = p
    return out


def _few(names) -> str:
    names = sorted(names, key=natural_key)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def read_pairs(folder) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(mask file name, image uint8 (H, W, 3), mask (H, W), instances (H, W) or None) for
    every image of ``folder/images`` and its mask in ``folder/masks`` (and
    ``folder/instances``), at their own sizes, checked to agree."""
    folder = Path(folder)
    img_dir, mask_dir, inst_dir = folder / "images", folder / "masks", folder / "instances"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DatasetError(f"{folder}: no {d.name}/ folder (a segmentation folder holds "
                               "images/ and masks/ of same-named files)")  # fmt: skip
    images = _files_by_stem(img_dir)
    masks = _files_by_stem(mask_dir, MASK_EXTENSIONS)
    if not images and not masks:
        raise DatasetError(f"{folder}: images/ and masks/ are empty")
    if masks.keys() - images.keys():
        raise DatasetError(f"{mask_dir}: mask(s) without an image in {img_dir}: "
                           f"{_few(masks.keys() - images.keys())}")  # fmt: skip
    if images.keys() - masks.keys():
        raise DatasetError(f"{img_dir}: image(s) without a mask (PNG) in {mask_dir}: "
                           f"{_few(images.keys() - masks.keys())}")  # fmt: skip
    instances = _files_by_stem(inst_dir, MASK_EXTENSIONS) if inst_dir.is_dir() else None
    if instances is not None and instances.keys() != masks.keys():
        diff = masks.keys() ^ instances.keys()
        raise DatasetError(f"{inst_dir}: instance maps and masks do not pair up: {_few(diff)}")
    out = []
    for stem, mpath in masks.items():
        img = _decode_image(images[stem])
        sem = _decode_labels(mpath)
        if sem.shape != img.shape[:2]:
            raise DatasetError(f"{mpath}: the mask is {_hw(sem)}, its image {images[stem]} is "
                               f"{_hw(img)}; they must be the same size")  # fmt: skip
        inst = None
        if instances is not None:
            inst = _decode_labels(instances[stem])
            if inst.shape != img.shape[:2]:
                raise DatasetError(f"{instances[stem]}: the instance map is {_hw(inst)}, its "
                                   f"image {images[stem]} is {_hw(img)}")  # fmt: skip
        out.append((str(mpath), img, sem, inst))
    return out


def _read_classes(root: Path) -> list[str] | None:
    f = root / "classes.txt"
    if not f.is_file():
        return None
    names = [line.strip() for line in f.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(names) > IGNORE:
        raise DatasetError(f"{f}: needs 2..{IGNORE} names (line 1 = label 0, background), "
                           f"got {len(names)}")  # fmt: skip
    return names


def load_seg_folder(
    root,
    *,
    size=None,
    n_labels: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> SceneSet:
    """Read a segmentation folder (module docstring) as a :class:`SceneSet`.

    Parameters
    ----------
    size : (height, width) (or ``"HxW"``) to bring every image to; None: their own size
        when they share it, else :func:`segmentation_size`.
    n_labels : the labels a model knows (evaluation); a mask holding another is an error.
    seed, val_fraction, test_fraction : a folder without train/val/test subfolders is
        split at random (seeded) into these fractions (test at least one image).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    names = _read_classes(root)
    known_from = f"{root / 'classes.txt'}" if names else "the model's labels"
    if names is not None:
        if n_labels is not None and n_labels != len(names):
            raise DatasetError(f"{root / 'classes.txt'} names {len(names)} labels, the model "
                               f"has {n_labels}")  # fmt: skip
        n_labels = len(names)
    pre = [s for s in _SPLITS if (root / s).is_dir()]
    if pre:
        parts = {s: read_pairs(root / s) for s in pre}
        layout = "pre-split " + "/".join(pre)
    else:
        if not (root / "images").is_dir() and not (root / "masks").is_dir():
            raise DatasetError(f"{root}: empty, or not a segmentation folder (expected "
                               "images/ + masks/, or train/ val/ test/ folders of them)")  # fmt: skip
        samples = read_pairs(root)
        tr, va, te = _split_indices(len(samples), seed, val_fraction, test_fraction)
        parts = {"train": [samples[i] for i in tr], "val": [samples[i] for i in va],
                 "test": [samples[i] for i in te]}  # fmt: skip
        layout = f"split {len(tr)}/{len(va)}/{len(te)} (seed {seed})"
    return _make_set(
        root.name, root.resolve(), parts, size=parse_size(size), n_labels=n_labels,
        classes=names[1:] if names else None, known_from=known_from,
        options={"layout": layout, "seed": seed},
    )  # fmt: skip


# ----------------------------------------------------------------------------- COCO


def _coco_mask(segm, h: int, w: int, where: str) -> np.ndarray:
    """bool (h, w) of one COCO ``segmentation`` (polygons, or RLE compressed or not)."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as e:
        raise DatasetError(
            f"{where}: reading COCO masks needs pycocotools (pip install 'objrec[segment]')"
        ) from e

    try:
        if isinstance(segm, list):  # polygons [[x0, y0, x1, y1, ...], ...]
            polys = [p for p in segm if len(p) >= 6]
            if not polys:
                return np.zeros((h, w), bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        elif isinstance(segm, dict) and "counts" in segm and "size" in segm:
            if [int(v) for v in segm["size"]] != [h, w]:
                raise DatasetError(f"{where}: RLE size {segm['size']} (height, width) differs "
                                   f"from its image's {[h, w]}")  # fmt: skip
            if isinstance(segm["counts"], list):  # uncompressed
                rle = mask_utils.frPyObjects(segm, h, w)
            else:
                counts = segm["counts"]
                rle = {"size": [h, w],
                       "counts": counts.encode() if isinstance(counts, str) else counts}  # fmt: skip
        else:
            raise DatasetError(f"{where}: segmentation must be polygons or an RLE "
                               "{'size', 'counts'}")  # fmt: skip
        return mask_utils.decode(rle).astype(bool)
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{where}: unreadable segmentation ({type(e).__name__}: {e})") from e


def coco_maps(anns, categories: dict[int, int], h: int, w: int, where: str):
    """(semantic uint8 (h, w), instances uint16 (h, w)) of one image's COCO annotations;
    ``categories`` maps a category id to its label (module docstring: the painting rules)."""
    sem = np.zeros((h, w), np.uint8)
    inst = np.zeros((h, w), np.uint16)
    objects = []
    for a in anns:
        cid = a.get("category_id")
        if cid not in categories:
            raise DatasetError(f"{where}: annotation {a.get('id')} has unknown category_id "
                               f"{cid!r} (categories: {sorted(categories)})")  # fmt: skip
        m = _coco_mask(a.get("segmentation"), h, w, f"{where}, annotation {a.get('id')}")
        if a.get("iscrowd"):
            sem[m] = IGNORE
        else:
            objects.append((int(m.sum()), categories[cid], m))
    objects.sort(key=lambda t: -t[0])  # largest first: smaller objects stay on top
    for k, (_, label, m) in enumerate(objects, start=1):
        sem[m] = label
        inst[m] = k
    # consecutive ids of the objects still visible
    present = np.unique(inst)
    present = present[present > 0]
    lut = np.zeros(len(objects) + 1, np.uint16)
    lut[present] = np.arange(1, len(present) + 1)
    return sem, lut[inst]


def read_coco(path, images_dir=None):
    """(samples as :func:`read_pairs` gives them, class names) of a COCO JSON file."""
    path = Path(path).expanduser()
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable COCO JSON file ({e})") from e
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DatasetError(f"{path}: a COCO file needs 'images', 'annotations' and "
                           "'categories' lists")  # fmt: skip
    if not doc["images"]:
        raise DatasetError(f"{path}: no images")
    try:
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        categories = {c["id"]: i + 1 for i, c in enumerate(cats)}
        names = [str(c.get("name", c["id"])) for c in cats]
        by_image: dict = {im["id"]: [] for im in doc["images"]}
    except (KeyError, TypeError) as e:
        raise DatasetError(f"{path}: malformed categories or images ({e!r} missing)") from e
    if len(categories) >= IGNORE:
        raise DatasetError(f"{path}: {len(categories)} categories; at most {IGNORE - 1}")
    for a in doc["annotations"]:
        if a.get("image_id") not in by_image:
            raise DatasetError(f"{path}: annotation {a.get('id')} refers to image_id "
                               f"{a.get('image_id')!r}, not in 'images'")  # fmt: skip
        by_image[a["image_id"]].append(a)
    dirs = [Path(images_dir).expanduser()] if images_dir else [path.parent, path.parent / "images"]
    out = []
    for im in doc["images"]:
        fname = str(im.get("file_name", ""))
        found = next((d / fname for d in dirs if fname and (d / fname).is_file()), None)
        if found is None:
            raise DatasetError(f"{path}: image {im.get('id')} ({fname!r}) has no file in "
                               f"{', '.join(str(d) for d in dirs)}")  # fmt: skip
        img = _decode_image(found)
        h, w = int(im.get("height", img.shape[0])), int(im.get("width", img.shape[1]))
        if (h, w) != img.shape[:2]:
            raise DatasetError(f"{path}: image {im['id']} is {h}x{w} (height x width) in the "
                               f"JSON file, but {found} is {_hw(img)}")  # fmt: skip
        sem, inst = coco_maps(by_image[im["id"]], categories, h, w, f"{path} image {im['id']}")
        out.append((f"{found}", img, sem, inst))
    return out, names


def load_coco(
    path,
    *,
    images_dir=None,
    size=None,
    n_labels: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> SceneSet:
    """A COCO JSON file (module docstring) as a :class:`SceneSet`, split at random (seeded)
    as :func:`load_seg_folder` splits a flat folder."""
    samples, names = read_coco(path, images_dir)
    if n_labels is not None and n_labels != len(names) + 1:
        raise DatasetError(f"{path}: {len(names)} categories + background = "
                           f"{len(names) + 1} labels, the model has {n_labels}")  # fmt: skip
    tr, va, te = _split_indices(len(samples), seed, val_fraction, test_fraction)
    parts = {"train": [samples[i] for i in tr], "val": [samples[i] for i in va],
             "test": [samples[i] for i in te]}  # fmt: skip
    return _make_set(
        Path(path).stem, Path(path).resolve(), parts, size=parse_size(size),
        n_labels=len(names) + 1, classes=names, known_from="the JSON's categories",
        options={"layout": f"COCO, split {len(tr)}/{len(va)}/{len(te)} (seed {seed})",
                 "seed": seed},
    )  # fmt: skip


def load_user_segmentation(path, **kw) -> SceneSet:
    """:func:`load_coco` for a ``.json`` file, else :func:`load_seg_folder`."""
    p = Path(path).expanduser()
    images_dir = kw.pop("images_dir", None)
    if p.suffix.lower() == ".json":
        return load_coco(p, images_dir=images_dir, **kw)
    return load_seg_folder(p, **kw)
