"""Every sub-command with bad arguments: a non-zero exit, exactly one line on stderr, no
traceback, and nothing created in the current folder (no runs/, no half-written run)."""

import pytest

from objrec.cli import main


def run_cli(argv, capsys):
    """(exit status, stdout, stderr) of ``objrec ARGV`` run in this process."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refuses the arguments
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A classic-method run, a compare run and a one-class image folder, made elsewhere
    than the test's current folder."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("made")
    classic, compare = root / "knn", root / "compare-digits"
    assert main(["train", "digits", "--method", "pixels-knn", "--limit", "60", "--out",
                 str(classic), "--quiet"]) == 0  # fmt: skip
    assert main(["compare", "digits", "--methods", "pixels-knn", "--limit", "60", "--out",
                 str(compare), "--quiet", "--no-report"]) == 0  # fmt: skip
    one = root / "one-class" / "cats"
    one.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(one / f"{i}.png")
    image = root / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    return {
        "classic": str(classic),
        "compare": str(compare),
        "one": str(root / "one-class"),
        "image": str(image),
    }


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


BAD = [
    # train: numbers
    ["train", "digits", "--epochs", "-1"],
    ["train", "digits", "--epochs", "0"],
    ["train", "digits", "--val-size", "2.5"],
    ["train", "digits", "--val-size", "0"],
    ["train", "digits", "--val-size", "-0.1"],
    ["train", "digits", "--batch-size", "0"],
    ["train", "digits", "--lr", "-1"],
    ["train", "digits", "--lr", "nan"],
    ["train", "digits", "--weight-decay", "-0.1"],
    ["train", "digits", "--label-smoothing", "1"],
    ["train", "digits", "--warmup", "-2"],
    ["train", "digits", "--early-stopping", "-1"],  # 0 is allowed: off
    ["train", "digits", "--max-time", "0"],
    ["train", "digits", "--threads", "0"],
    ["train", "digits", "--num-workers", "-1"],
    ["train", "digits", "--augment-families", "pose", "--augment-copies", "0"],
    ["train", "digits", "--limit", "0"],
    ["train", "digits", "--limit", "5"],  # fewer than the 10 classes
    ["train", "digits", "--seed", "-3"],
    # train: choices, parameters, options that do not apply
    ["train", "digits", "--device", "gpu"],
    ["train", "digits", "--optimizer", "rmsprop"],
    ["train", "digits", "--method", "no-such-method"],
    ["train", "digits", "--method", "hog-svm", "--param", "nonsense=1"],
    ["train", "digits", "--method", "hog-svm", "--param", "C=abc"],
    ["train", "digits", "--method", "hog-svm", "--param", "=1"],
    ["train", "digits", "--method", "hog-svm", "--epochs", "3"],
    ["train", "digits", "--method", "hog-svm", "--lr", "0.1"],
    ["train", "digits", "--method", "hog-svm", "--augment", "flip"],
    ["train", "digits", "--method", "hog-svm", "--early-stopping", "2"],
    ["train", "digits", "--method", "hog-svm", "--device", "cpu"],
    ["train", "digits", "--method", "pixels-knn", "--class-weight", "balanced"],
    ["train", "digits", "--method", "eigen", "--class-weight", "balanced"],
    ["train", "digits", "--method", "hog-svm", "--stream"],
    ["train"],
    ["train", "no-such-dataset-here", "--method", "pixels-knn"],
    ["train", "--resume", "missing-run"],
    ["train", "--resume", "{compare}"],
    ["train", "--resume", "{classic}"],
    ["train", "{one}", "--method", "pixels-knn", "--size", "12", "--quiet"],
    # compare
    ["compare", "digits", "--methods", "no-such-method"],
    ["compare", "digits", "--batch-size", "0"],
    ["compare", "digits", "--limit", "-5"],
    ["compare", "digits", "--seed", "x"],
    ["compare", "digits", "--budget", "huge"],
    # data
    ["data", "info", "digits", "--val-size", "0"],
    ["data", "info", "digits", "--test-size", "1.5"],
    ["data", "show", "digits", "--rows", "0"],
    ["data", "show", "digits", "--cols", "-1"],
    ["data", "info", "no-such-dataset-here", "--no-download"],
    # evaluate
    ["evaluate", "missing-run"],
    ["evaluate", "{classic}", "--batch-size", "0"],
    ["evaluate", "{classic}", "--split", "everything"],
    # export
    ["export", "missing-run"],
    ["export", "{classic}", "--opset", "3"],
    ["export", "{classic}", "--check-size", "0"],
    ["export", "{classic}", "--tolerance", "-1"],
    ["export", "{classic}", "--format", "pickle"],
    # info
    ["info", "missing-run"],
    # predict
    ["predict", "{classic}", "{image}", "--top-k", "0"],
    ["predict", "{classic}", "{image}", "--batch-size", "0"],
    ["predict", "{classic}", "{image}", "--reject-below", "1.5"],
    ["predict", "{classic}", "no-such-image.png"],
    ["predict", "missing-run", "{image}"],
    ["predict", "{compare}", "{image}", "--method", "hog-rbf"],
    ["predict", "{classic}", "{image}", "--method", "pixels-knn"],
    # robustness
    ["robustness"],
    ["robustness", "{classic}", "--severities", "0-3"],
    ["robustness", "{classic}", "--severities", "5-1"],
    ["robustness", "{classic}", "--limit", "-1"],
    ["robustness", "{classic}", "--families", "no-such-family"],
    ["robustness", "{classic}", "--baseline-train", "0"],
    ["robustness", "missing-run"],
    ["robustness", "--heldout", "pixels-knn"],
    ["robustness", "--heldout", "pixels-knn", "--dataset", "digits", "--copies", "0"],
    # serve
    ["serve", "{classic}", "--port", "70000"],
    ["serve", "{classic}", "--port", "0"],
    ["serve", "{classic}", "--workers", "0"],
    ["serve", "{classic}", "--threads", "0"],
    ["serve", "{classic}", "--max-body-mb", "0"],
    ["serve", "{classic}", "--max-images", "-1"],
    ["serve", "{classic}", "--request-timeout", "0"],
    ["serve", "{classic}", "--reject-below", "2"],
    ["serve", "{classic}", "--log-level", "loud"],
    ["serve", "missing-run"],
    # nets, methods, unknown verbs
    ["nets", "summary", "no-such-net"],
    ["nets", "summary", "simple_cnn", "--classes", "0"],
    ["nets", "summary", "simple_cnn", "--input", "axb"],
    ["methods", "--approach", "nope"],
    ["no-such-command"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_arguments_get_one_line_and_leave_nothing(argv, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(**runs) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code not in (0, None), (argv, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err, err
    assert lines[0].startswith(("objrec", "usage")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], (argv, err)


def test_cuda_on_a_cpu_only_torch_is_one_line(runs, tmp_path, monkeypatch, capsys):
    if _cuda_available():
        pytest.skip("this PyTorch has a CUDA device")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "digits", "--model", "simple_cnn", "--device", "cuda"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--device cpu" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "digits", "--epochs", "-1"], ["--epochs", "1 or more", "-1"]),
        (["train", "digits", "--val-size", "2.5"], ["--val-size", "fraction", "count", "2.5"]),
        (["train", "digits", "--device", "gpu"], ["auto, cpu, cuda"]),
        (["train", "digits", "--method", "hog-svm", "--param", "nonsense=1"], ["valid", " C,"]),
        (["train", "digits", "--method", "hog-svm", "--param", "C=abc"], ["'C'", "float"]),
        (["train", "digits", "--method", "hog-svm", "--epochs", "3"], ["--epochs", "classical"]),
        (["train", "--resume", "{compare}"], ["compare", "objrec train"]),
        (["train", "--resume", "{classic}"], ["classical method", "train it again"]),
        (["train", "{one}", "--method", "pixels-knn", "--size", "12"], ["one class", "two"]),
        (["serve", "{classic}", "--port", "70000"], ["65535"]),
        (["predict", "{compare}", "{image}", "--method", "hog-rbf"], ["pixels-knn"]),
    ],
)
def test_the_line_says_what_is_wrong(argv, words, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, _, err = run_cli([a.format(**runs) for a in argv], capsys)
    for w in words:
        assert w in err, (w, err)


def test_good_values_pass_the_checks():
    import argparse

    from objrec import cli_types as t

    assert t.fraction_or_count("0.1") == 0.1 and t.fraction_or_count("500") == 500
    assert isinstance(t.fraction_or_count("1"), int)
    assert t.positive_float("1e-3") == 1e-3 and t.non_negative_float("0") == 0.0
    assert t.probability("0") == 0.0 and t.probability("1") == 1.0
    assert t.unit_fraction("0.1") == 0.1 and t.non_negative_int("0") == 0
    assert t.port("8000") == 8000 and t.opset("17") == 17
    assert t.severities("1,3,5") == "1,3,5" and t.severities("2-4") == "2-4"
    for bad, check in [("inf", t.positive_float), ("1.5", t.positive_int), ("", t.severities)]:
        with pytest.raises(argparse.ArgumentTypeError):
            check(bad)
    from objrec.cli import build_parser

    argv = ["train", "digits", "--val-size", "0.2", "--device", "cuda:1", "--lr", "0.01"]
    args = build_parser().parse_args(argv)
    assert (args.val_size, args.device, args.lr) == (0.2, "cuda:1", 0.01)


def test_early_stopping_zero_turns_it_off():
    """``--early-stopping 0`` is accepted (its help says "0: off") and gives a plan
    without early stopping, also where small data would switch it on by default."""
    from objrec.cli import build_parser
    from objrec.training.recipes import plan_training, resolve_recipe

    args = build_parser().parse_args(["train", "digits", "--early-stopping", "0"])
    assert args.early_stopping == 0
    kw = dict(rec=resolve_recipe(None, {}, {}), n_train=150, image_size=(8, 8))
    assert plan_training(**kw).early_stopping  # small data: on by default
    assert plan_training(**kw, early_stopping=0).early_stopping is None
