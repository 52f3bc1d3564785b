"""``objrec train``: the run folder, the test split evaluated once, resume, classical methods."""

import json

import pytest

pytest.importorskip("torch")

import objrec
from objrec.cli import main


def test_train_writes_a_complete_run_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "digits", "--model", "simple_cnn", "--epochs", "1", "--batch-size", "64"]
    args += ["--min-steps", "0"]  # one epoch exactly, then one more on resume
    assert main([*args, "--out", str(run), "--quiet", "--threads", "1"]) == 0
    for name in ("config.json", "versions.json", "history.csv", "history.json", "loss.png",
                 "accuracy.png", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt",
                 "model/objrec.json", "model/weights.safetensors"):  # fmt: skip
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1 and 0.5 < metrics["val_accuracy"] <= 1
    assert metrics["epochs"] == 1
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "simple_cnn" and config["params"]["epochs"] == 1
    assert "test_accuracy" in capsys.readouterr().out

    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert (run / "history.csv").read_text().count("\n") == 3
    model = objrec.load(run)
    assert len(model.history_) == 2 and model.method_name == "simple_cnn"


def test_train_recipe_option_and_the_recorded_plan(tmp_path):
    run = tmp_path / "seed"
    args = ["train", "digits", "--model", "simple_cnn", "--recipe", "seed", "--out", str(run)]
    assert main([*args, "--quiet", "--threads", "1"]) == 0
    plan = json.loads((run / "metrics.json").read_text())["recipe"]
    assert plan["recipe"] == "seed" and plan["settings"]["optimizer"] == "adam"
    assert (plan["batch_size"], plan["lr"], plan["epochs"]) == (32, 1e-3, 5)
    assert plan["settings"]["schedule"] == "constant" and plan["early_stopping"] is None
    assert objrec.load(run).recipe_ == plan
    assert json.loads((run / "config.json").read_text())["params"]["recipe"] == "seed"


def test_train_classical_method_through_the_same_command(tmp_path):
    from objrec.methods import list_methods

    if "pixels-knn" not in list_methods():
        pytest.skip("classical methods not available")
    run = tmp_path / "knn"
    assert main(["train", "digits", "--method", "pixels-knn", "--out", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8 and (run / "model" / "objrec.json").is_file()


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "digits", "--model", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["train", "digits", "--param", "oops", "--out", str(tmp_path / "y")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_train_with_nuisance_augmentation(tmp_path):
    from objrec.methods import list_methods

    if "pixels-knn" not in list_methods():
        pytest.skip("classical methods not available")
    run = tmp_path / "aug"
    args = ["train", "digits", "--method", "pixels-knn", "--augment-families", "pose", "rotate"]
    assert main([*args, "--augment-copies", "2", "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["augment_families"] == {"families": ["pose", "rotate"], "copies": 2}
    model = objrec.load(run / "model")
    # the digits training split (1,257 images) plus two corrupted copies of each
    assert model.n_training_images_ == 3 * json.loads((run / "metrics.json").read_text())["n_train"]
    assert model.method_name == "pixels-knn+aug[pose,rotate]"


def test_train_augmentation_names_are_checked_before_loading(tmp_path, capsys):
    args = ["train", "digits", "--augment-families", "posture", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown nuisance family 'posture'" in err and "pose" in err
