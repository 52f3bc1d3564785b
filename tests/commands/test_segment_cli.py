"""``objrec segment train|evaluate|compare`` end to end on a few tiny scenes."""

import json

import pytest

from objrec.cli import main


def test_segment_train_evaluate_compare(shared_data, tmp_path, capsys):
    common = ["--data-dir", str(shared_data / "mnist"), "--sizes", "6,2,3",
              "--backgrounds", "photos", "--quiet"]  # fmt: skip
    run = tmp_path / "forest"
    assert main(["segment", "train", "forest", "--trees", "3", *common, "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert 0 <= m["semantic"]["miou"] <= 1 and m["train_scenes"] == 6
    assert len(m["panoptic"]["per_class"]) == 11 and "ap" in m["mask_ap"]
    assert (run / "model" / "forest.skops").is_file() and (run / "config.json").is_file()
    meta = json.loads((run / "model" / "objrec.json").read_text())
    assert (meta["task"], meta["method"], meta["classes"]) == ("segment", "forest", list(range(11)))
    assert meta["class_names"][:2] == ["background", "0"] and meta["input_shape"] == [96, 96, 3]
    assert meta["metrics"]["miou"] == pytest.approx(m["semantic"]["miou"])
    assert main(["segment", "evaluate", str(run), *common]) == 0
    again = json.loads((run / "segmentation-test.json").read_text())
    assert again["semantic"]["miou"] == pytest.approx(m["semantic"]["miou"])
    out = capsys.readouterr().out
    assert "mIoU" in out and "forest" in out
    png = tmp_path / "show.png"
    assert (
        main(["segment", "show", *common, "--n", "2", "--model", str(run), "--out", str(png)]) == 0
    )
    from PIL import Image

    assert Image.open(png).size == (7 * 96, 2 * 96)  # image, 3 true overlays, 3 predicted
    # evaluate wrote its report next to the model, with the fit time the run recorded
    page = (run / "report-test.html").read_text()
    assert 'id="m-forest"' in page and f"{m['fit_seconds']:,.1f} s" in page
    cmp_dir = tmp_path / "cmp"
    args = ["segment", "compare", "forest", "unet", "--trees", "2", "--epochs", "1",
            "--width", "4", *common, "--out", str(cmp_dir)]  # fmt: skip
    assert main(args) == 0
    both = json.loads((cmp_dir / "metrics.json").read_text())
    assert set(both) == {"forest", "unet"}
    page = (cmp_dir / "report.html").read_text()
    for part in ('id="m-forest"', 'id="m-unet"', "Side by side", "Per-class IoU", "classic",
                 "CNN", "Right cases", "Wrong cases"):  # fmt: skip
        assert part in page
    assert page.count("<img ") == 3 + 2 * 2 and (cmp_dir / "plots" / "unet-wrong.png").is_file()
    assert f"report: {cmp_dir / 'report.html'}" in capsys.readouterr().out
    assert (cmp_dir / "unet" / "weights.safetensors").is_file()
    onnx = tmp_path / "u.onnx"
    assert main(["segment", "export", str(cmp_dir / "unet"), "--out", str(onnx)]) == 0
    out = capsys.readouterr().out
    assert onnx.stat().st_size > 0 and "argmax agreement" in out and "centre head" in out
    # the compared U-Net learnt centres (the default); evaluate it with both groupings
    meta = json.loads((cmp_dir / "unet" / "objrec.json").read_text())
    assert meta["params"]["grouping"] == "centers"
    for grouping in ("watershed", "centers"):
        ev = tmp_path / f"ev-{grouping}"
        assert main(["segment", "evaluate", str(cmp_dir / "unet"), *common, "--grouping",
                     grouping, "--no-report", "--out", str(ev)]) == 0  # fmt: skip
        assert 0 <= json.loads((ev / "segmentation-test.json").read_text())["panoptic"]["pq"] <= 1
    capsys.readouterr()
    bad = ["segment", "evaluate", str(run), *common, "--grouping", "centers", "--no-report"]
    assert main(bad) == 2 and "--grouping is for the U-Net" in capsys.readouterr().err


def test_segment_bad_sizes(capsys):
    assert main(["segment", "train", "forest", "--sizes", "3,2"]) == 2
    assert "TRAIN,VAL,TEST" in capsys.readouterr().err
