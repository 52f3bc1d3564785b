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
            "--width", "4", "--grouping", "centers", *common, "--out", str(cmp_dir)]  # fmt: skip
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
    # the compared U-Net learnt centres (--grouping centers); evaluate it with both groupings
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


@pytest.fixture
def one_thread():
    """One torch thread: a tiny U-Net trains many times faster than on two busy ones."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def test_segment_train_unet_checkpoints_and_resume(tmp_path, capsys, monkeypatch, one_thread):
    """``segment train unet`` keeps checkpoints, history and curves in its run folder as
    ``objrec train`` does; interrupted in epoch 3 it keeps epoch 2's checkpoint and says how
    to resume, and the resumed run ends with the weights of an uninterrupted one."""
    torch = one_thread
    from crafted_files import segmentation_folder
    from objrec.segmentation import load_segmenter, unet
    from objrec.training.checkpoint import load_checkpoint

    data = segmentation_folder(tmp_path / "data")  # 8 images: 5 train / 1 val / 2 test
    train = ["segment", "train", "unet", str(data), "--width", "4", "--epochs", "4", "--quiet"]
    straight = tmp_path / "straight"
    assert main([*train, "--out", str(straight)]) == 0
    for name in ("config.json", "versions.json", "metrics.json", "history.csv", "history.json",
                 "loss.png", "pixel_accuracy.png", "checkpoints/last.pt", "checkpoints/best.pt",
                 "model/objrec.json", "model/weights.safetensors"):  # fmt: skip
        assert (straight / name).is_file(), name
    history = json.loads((straight / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert all(0 <= h["val_pixel_accuracy"] <= 1 for h in history)
    assert load_checkpoint(straight / "checkpoints" / "last.pt")["epoch"] == 4

    real, steps = unet.UNetLoss.__call__, []

    def interrupted(self, out, targets):  # Ctrl-C in the training batch of epoch 3
        if torch.is_grad_enabled():
            steps.append(1)
            if len(steps) == 3:
                raise KeyboardInterrupt
        return real(self, out, targets)

    monkeypatch.setattr(unet.UNetLoss, "__call__", interrupted)
    run = tmp_path / "run"
    capsys.readouterr()
    assert main([*train, "--out", str(run)]) == 130
    err = capsys.readouterr().err
    assert str(run / "checkpoints") in err
    assert f"Continue with: objrec segment train --resume {run}" in err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    assert not (run / "model").exists()
    monkeypatch.undo()
    assert main(["segment", "train", "--resume", str(run), "--quiet"]) == 0
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3, 4]
    a, b = load_segmenter(straight), load_segmenter(run)
    for (k, x), y in zip(a.net_.state_dict().items(), b.net_.state_dict().values(), strict=True):
        assert torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-6), k
    m1, m2 = (json.loads((r / "metrics.json").read_text()) for r in (straight, run))
    assert m1["semantic"]["miou"] == pytest.approx(m2["semantic"]["miou"])

    capsys.readouterr()
    forest = tmp_path / "forest"
    assert main(["segment", "train", "forest", str(data), "--trees", "2", "--quiet",
                 "--out", str(forest)]) == 0  # fmt: skip
    for args, said in (
        ([str(forest)], "trained in one pass"),
        ([str(run), "unet", str(data)], "on its own data"),
        ([str(run), "forest"], "continues a unet run"),
        ([str(run), "--dataset", str(data)], "on its own data"),
        ([str(tmp_path / "missing")], "no config.json"),
        ([str(data)], "no config.json"),
    ):
        assert main(["segment", "train", "--resume", *args]) == 2, args
        assert said in capsys.readouterr().err, args
    assert main(["segment", "train", "--quiet"]) == 2
    assert "give a method" in capsys.readouterr().err
