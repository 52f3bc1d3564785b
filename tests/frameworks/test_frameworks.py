"""The four frameworks on digits (resized to 28x28, the reference network's input): each
installed one trains for one epoch in its own process, learns, and has the reference's
121,930 parameters; a framework that is not installed is a row saying how to install it."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from objrec.errors import ObjrecError
from objrec.frameworks import FRAMEWORKS, INSTALL_HINT, Framework
from objrec.frameworks.bench import (
    REFERENCE_PARAMS,
    missing_modules,
    resolve,
    run_frameworks,
    run_one,
    time_to_accuracy,
    write_split,
)
from objrec.frameworks.worker import count_lines

INSTALLED = [f for f in FRAMEWORKS.values() if not missing_modules(f)]


@pytest.fixture(scope="module")
def digits28():
    from objrec.data import load_dataset
    from objrec.evaluation.compare import limit_train

    return limit_train(load_dataset("digits", size=28, progress=False), 600, 0)


@pytest.fixture(scope="module")
def rows(digits28):
    if not INSTALLED:
        pytest.skip("no framework installed: pip install 'objrec[frameworks]'")
    out = run_frameworks(
        digits28,
        INSTALLED,
        epochs=1,
        batch_size=32,
        threads=1,
        export=True,
        log=lambda *a, **k: None,
    )
    return {r["framework"]: r for r in out}


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_each_framework_learns_with_the_reference_parameters(rows, name):
    fw = FRAMEWORKS[name]
    if missing_modules(fw):
        pytest.skip(f"{name} needs {', '.join(missing_modules(fw))}: {INSTALL_HINT}")
    row = rows[name]
    assert row["status"] == "ok", row["note"]
    assert row["params"] == REFERENCE_PARAMS
    # 600 training images, one epoch: far above the 10% of chance on 10 balanced classes.
    assert row["test_acc"] > 0.5, row
    assert len(row["epoch_seconds"]) == len(row["val_acc"]) == 1
    assert row["import_seconds"] > 0 and row["peak_rss_mib"] > 50
    assert 20 < row["lines"] < 120


EXPECTED_EXPORTS = {
    "keras": ["savedmodel", "tflite"],
    "tensorflow": ["savedmodel", "tflite"],
    "pytorch": ["onnx", "pte"],
    "objrec": ["onnx", "pte"],
    "lightning": ["onnx", "pte"],
    "keras-torch": [],
    "keras-jax": [],
}


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_exported_models_predict_as_their_framework(rows, name):
    if name not in rows:
        pytest.skip(f"{name} not installed: {INSTALL_HINT}")
    exports = rows[name]["exports"]
    assert [e["format"] for e in exports] == EXPECTED_EXPORTS[name]
    for e in exports:
        assert "error" not in e, e
        assert e["agreement"] == 1.0 and e["max_abs_diff"] < 1e-4, e
        assert e["bytes"] > 4 * REFERENCE_PARAMS * 0.9  # float32 weights are inside
        if e["format"] == "tflite" and importlib.util.find_spec("ai_edge_litert"):
            assert e["runtime"] == "ai_edge_litert"
        if e["format"] == "pte":
            assert e["runtime"] == "executorch.runtime"


def test_parameter_counts_agree(rows):
    counts = {n: r["params"] for n, r in rows.items() if r["status"] == "ok"}
    assert set(counts.values()) == {REFERENCE_PARAMS}, counts


def test_lightning_matches_the_pytorch_loop(rows):
    """Same seed, same PyTorch default initialisation, same shuffled loader: Lightning's
    Trainer must reproduce the hand loop's numbers (it adds no step of its own)."""
    if not {"pytorch", "lightning"} <= rows.keys():
        pytest.skip("needs torch and lightning: " + INSTALL_HINT)
    a, b = rows["pytorch"], rows["lightning"]
    assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1e-6)
    assert b["test_acc"] == pytest.approx(a["test_acc"], abs=1e-6)


def test_missing_framework_is_a_row_not_a_crash(digits28, tmp_path):
    fake = Framework("nope", "pytorch_loop", "Nope", ("objrec_no_such_module",), "PyTorch")
    row = run_one(
        fake, write_split(digits28, tmp_path / "s.npz"), epochs=1, batch_size=32, seed=0, timeout=60
    )
    assert row["status"] == "not installed"
    assert "objrec_no_such_module" in row["note"] and INSTALL_HINT in row["note"]


def test_unknown_framework_is_refused():
    with pytest.raises(ObjrecError, match="unknown framework"):
        resolve(["pytorch", "caffe"])


def test_time_to_accuracy_is_the_first_epoch_reaching_the_target():
    row = {"wall_seconds": [2.0, 3.5, 5.0], "val_acc": [0.5, 0.9, 0.95]}
    assert time_to_accuracy(row, 0.9) == 3.5
    assert time_to_accuracy(row, 0.96) is None
    assert time_to_accuracy(row, None) is None


def test_count_lines_skips_blanks_comments_and_docstrings(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        '"""Doc\nstring."""\n\nimport os  # c\n# comment\n\n\ndef f():\n    """Doc."""\n    return os\n'
    )
    assert count_lines(src) == 3


def test_cli_writes_table_json_csv_and_html(tmp_path, capsys):
    if missing_modules(FRAMEWORKS["pytorch"]):
        pytest.skip("needs torch")
    from objrec.cli import main

    out = tmp_path / "run"
    argv = ["frameworks", "digits", "--frameworks", "pytorch", "--epochs", "1", "--limit", "300"]
    assert main([*argv, "--threads", "1", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "pytorch" in text and "121,930" in text
    doc = json.loads((out / "frameworks.json").read_text())
    (row,) = doc["rows"]
    assert row["status"] == "ok" and doc["config"]["shape"] == "28x28"
    assert (out / "frameworks.csv").read_text().splitlines()[0].startswith("framework,")
    html = (out / "frameworks.html").read_text()
    for opinion in ("Dynamic Computation Graph", "Suitable for Beginners", "Mid-level"):
        assert opinion in html
    assert "Glorot-uniform weights, zero biases" in html
    assert "data:image/png;base64," in html and (out / "plots" / "val-acc-vs-time.png").is_file()


def test_outputs_show_a_missing_framework_with_its_install_hint(tmp_path):
    from objrec.frameworks.output import format_table, write_html, write_tables

    ok = {
        "framework": "pytorch", "label": "PyTorch (hand loop)", "notes_column": "PyTorch",
        "status": "ok", "note": "", "test_acc": 0.9812, "final_val_acc": 0.975,
        "first_epoch_seconds": 3.0, "later_epoch_seconds": 2.0, "train_seconds": 5.0,
        "seconds_to_pytorch_acc": 5.0, "import_seconds": 1.5, "peak_rss_mib": 600.0,
        "params": REFERENCE_PARAMS, "lines": 58, "wall_seconds": [3.0, 5.0], "val_acc": [0.9, 0.975],
    }  # fmt: skip
    missing = {
        "framework": "keras", "label": "Keras 3 (TensorFlow backend)",
        "notes_column": "TensorFlow/Keras", "status": "not installed",
        "note": f"needs keras: {INSTALL_HINT}",
    }  # fmt: skip
    config = {"dataset": "digits", "n_train": 10, "n_val": 5, "n_test": 5, "shape": "28x28",
              "lr": 1e-3, "batch_size": 32, "epochs": 2, "seed": 0, "threads": 1}  # fmt: skip
    text = format_table([ok, missing])
    assert "98.12%" in text and "121,930" in text
    assert f"keras: needs keras: {INSTALL_HINT}" in text
    write_tables(tmp_path, [ok, missing], config)
    page = write_html(tmp_path, [ok, missing], config).read_text()
    assert "not installed: needs keras: pip install &#39;objrec[frameworks]&#39;" in page
    assert "98.12%" in page
    lines = (tmp_path / "frameworks.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[2].startswith("keras,")


def _torch_layers(name):
    """(weight, bias) numpy pairs of a freshly initialised network of the file ``name``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "pytorch":
        from objrec.frameworks.pytorch_loop import SimpleCNN

        model = SimpleCNN(1, 10, 1600)
    elif name == "lightning":
        from objrec.frameworks.lightning_module import LitModel

        model = LitModel(1, 10, 1600)
    else:  # objrec's loop: its network, then the callback that runs before the first step
        from types import SimpleNamespace

        from objrec.frameworks.objrec_loop import GlorotInit
        from objrec.nets import create_model

        model = create_model("simple_cnn", 1, 10, (28, 28))
        GlorotInit().on_train_begin(SimpleNamespace(model=model))
    return [
        (m.weight.detach().numpy(), m.bias.detach().numpy())
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]


def _tf_layers():
    from objrec.frameworks.tensorflow_raw import SimpleCNN

    m = SimpleCNN(1, 10, 1600)
    pairs = [(m.conv1, m.conv1_b), (m.conv2, m.conv2_b), (m.fc1_w, m.fc1_b), (m.fc2_w, m.fc2_b)]
    # TensorFlow's layouts (kh, kw, in, out) and (in, out) -> PyTorch's (out, in, kh, kw), (out, in)
    out = []
    for w, b in pairs:
        w = w.numpy()
        out.append((np.moveaxis(w, (-1, -2), (0, 1)) if w.ndim == 4 else w.T, b.numpy()))
    return out


@pytest.mark.parametrize("name", ["pytorch", "lightning", "objrec", "tensorflow"])
def test_every_file_starts_from_glorot_uniform_weights_and_zero_biases(name):
    """The oracle: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), fans over the 3x3 taps,
    zero biases. PyTorch's own default (Kaiming uniform, a = sqrt(5)) has the bound
    1 / sqrt(fan_in), above Glorot's for every layer here (conv1: 0.333 against 0.142), and
    uniform non-zero biases, so a file left at the default fails."""
    fw = FRAMEWORKS[name]
    if missing_modules(fw):
        pytest.skip(f"{name} needs {', '.join(missing_modules(fw))}: {INSTALL_HINT}")
    layers = _tf_layers() if name == "tensorflow" else _torch_layers(name)
    shapes = [w.shape for w, _ in layers]
    assert shapes == [(32, 1, 3, 3), (64, 32, 3, 3), (64, 1600), (10, 64)]
    for w, b in layers:
        taps = int(np.prod(w.shape[2:]))  # 9 for a 3x3 convolution, 1 for a linear layer
        fan_in, fan_out = w.shape[1] * taps, w.shape[0] * taps
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.all(b == 0)
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        # uniform on [-a, a]: its standard deviation is a / sqrt(3) (at least 288 draws per layer)
        assert np.std(w) == pytest.approx(bound / np.sqrt(3), rel=0.1)


def _notes_params(side: int, channels: int = 1, classes: int = 10) -> int:
    """The notes' network, as the framework files build it: two unpadded 3x3 convolutions
    (32, 64) with 2x2 max-pools, the last map flattened as it is, then 64 and ``classes``."""
    f = ((side - 2) // 2 - 2) // 2
    conv = (9 * channels + 1) * 32 + (9 * 32 + 1) * 64
    return conv + (64 * f * f + 1) * 64 + (64 + 1) * classes


@pytest.mark.parametrize("side", range(8, 41))
def test_reference_sides_are_where_simple_cnn_is_the_notes_network(side):
    pytest.importorskip("torch")
    from objrec.frameworks import REFERENCE_SIDES
    from objrec.nets import create_model

    net = create_model("simple_cnn", in_channels=1, num_classes=10, input_size=(side, side))
    params = sum(p.numel() for p in net.parameters())
    assert (side in REFERENCE_SIDES) == (side >= 10 and params == _notes_params(side))


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Three classes of crops of scikit-image's photos: mixed sizes, colour and grey, six
    images a class, and one corrupt file."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name, img in (
        ("cat", data.chelsea()),
        ("coffee", data.coffee()),
        ("man", data.astronaut()),
    ):
        (root / name).mkdir()
        for i in range(6):
            h, w = rng.integers(90, 200, size=2)
            r, c = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
            pic = Image.fromarray(img[r : r + h, c : c + w])
            (pic.convert("L") if i % 3 == 0 else pic).save(root / name / f"{i}.png")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_a_photo_folder_trains_the_same_network_in_every_framework(photo_folder, tmp_path, capsys):
    if missing_modules(FRAMEWORKS["pytorch"]):
        pytest.skip("needs torch")
    from objrec.cli import main

    out = tmp_path / "run"
    argv = ["frameworks", str(photo_folder), "--frameworks", "pytorch", "objrec"]
    assert main([*argv, "--epochs", "1", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "frameworks.json").read_text())
    assert doc["config"]["shape"] == "28x28x3"
    params = {r["framework"]: r["params"] for r in doc["rows"]}
    assert params == {"pytorch": _notes_params(28, 3, 3), "objrec": _notes_params(28, 3, 3)}


@pytest.mark.parametrize("size", ["64", "8", "28x32"])
def test_a_size_where_the_networks_differ_is_refused(photo_folder, size, capsys):
    from objrec.cli import main

    assert main(["frameworks", str(photo_folder), "--size", size, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the same in every framework only for sides of 10 to 29 pixels" in err
