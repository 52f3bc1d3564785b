"""``objrec segment train|evaluate|compare`` on a user's folder of images + masks and on a
COCO JSON file, built here in tmp_path."""

import json

import numpy as np
from PIL import Image

from crafted_files import segmentation_folder
from objrec.cli import main


def test_train_evaluate_compare_on_a_folder(tmp_path, capsys):
    data = segmentation_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["segment", "train", "slic", str(data), "--superpixels", "40", "--quiet"]
    assert main([*args, "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["method"] == "slic" and m["train_scenes"] == 5  # 8 images: 5 / 1 / 2
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["classes"] == ["square", "ring"]
    assert main(["segment", "evaluate", str(run), str(data), "--split", "all", "--quiet"]) == 0
    allm = json.loads((run / "segmentation-all.json").read_text())
    assert len(allm["semantic"]["iou"]) == 3 and 0 <= allm["semantic"]["miou"] <= 1
    cmp_dir = tmp_path / "cmp"
    assert main(["segment", "compare", "forest", "slic", "--dataset", str(data), "--trees", "2",
                 "--superpixels", "40", "--quiet", "--out", str(cmp_dir)]) == 0  # fmt: skip
    assert set(json.loads((cmp_dir / "metrics.json").read_text())) == {"forest", "slic"}
    capsys.readouterr()
    assert main(["segment", "train", "forest", str(tmp_path / "nope" / "x"), "--quiet"]) == 2
    assert "no such folder or COCO JSON file" in capsys.readouterr().err
    assert main(["segment", "train", "forest", str(data), "--dataset", "fashion-scenes"]) == 2
    assert "two data sets named" in capsys.readouterr().err


def test_evaluate_refuses_unknown_labels(tmp_path, capsys):
    data = segmentation_folder(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["segment", "train", "forest", str(data), "--trees", "2", "--quiet",
                 "--out", str(run)]) == 0  # fmt: skip
    other = segmentation_folder(tmp_path / "other")
    (other / "classes.txt").unlink()
    m = Image.open(other / "masks" / "s0.png")
    a = np.asarray(m).copy()
    a[a == 1] = 7
    Image.fromarray(a).save(other / "masks" / "s0.png")
    capsys.readouterr()
    assert main(["segment", "evaluate", str(run), str(other), "--quiet"]) == 2
    assert "unknown class index 7" in capsys.readouterr().err


def test_train_on_coco_json(tmp_path):
    import pytest

    pytest.importorskip("pycocotools")
    data = segmentation_folder(tmp_path / "data", n=4)
    images, anns = [], []
    for i in range(4):
        sem = np.asarray(Image.open(data / "masks" / f"s{i}.png"))
        ys, xs = np.nonzero((sem > 0) & (sem < 255))
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        images.append({"id": i + 1, "file_name": f"s{i}.png", "height": 32, "width": 32})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})  # fmt: skip
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    (data / "images" / "ann.json").write_text(json.dumps(doc))
    run = tmp_path / "run"
    assert main(["segment", "train", "forest", str(data / "images" / "ann.json"), "--trees",
                 "2", "--quiet", "--out", str(run)]) == 0  # fmt: skip
    m = json.loads((run / "metrics.json").read_text())
    assert len(m["semantic"]["iou"]) == 2 and m["train_scenes"] == 3
