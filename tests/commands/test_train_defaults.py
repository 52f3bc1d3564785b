"""What ``objrec train`` and ``objrec compare`` pick when the user names no method."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from objrec.commands import train as T
from objrec.evaluation import compare as C
from objrec.nets import weights as W


@pytest.fixture
def folder(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((40, 30), 60 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    return tmp_path


def test_train_folder_fine_tunes_the_pretrained_network_when_installed(folder, monkeypatch, capsys):
    monkeypatch.setattr(W, "pretrained_available", lambda name: True)
    assert T._default_network(str(folder)) == "efficientnet_lite0"
    assert "ImageNet-pretrained, fine-tuned" in capsys.readouterr().err
    monkeypatch.setattr(W, "pretrained_available", lambda name: False)
    assert T._default_network(str(folder)) == "simple_cnn"
    assert "pip install 'objrec[pretrained]'" in capsys.readouterr().err


def test_named_sets_train_the_scratch_cnn_by_default(monkeypatch):
    monkeypatch.setattr(W, "pretrained_available", lambda name: True)
    assert T._default_network("mnist") == "simple_cnn"


def test_pretrained_networks_load_folders_at_their_native_side():
    assert T._working_cap("efficientnet_lite0") == 224
    assert T._working_cap("simple_cnn") is None and T._working_cap("hog-svm") is None


def test_compare_defaults_include_the_pretrained_methods_only_when_installed(monkeypatch):
    from objrec.methods import list_methods

    monkeypatch.setattr(W, "pretrained_available", lambda name: False)
    without = C.resolve_methods(None)
    assert "efficientnet_lite0" not in without
    assert {"hog-svm", "eigen", "simple_cnn", "resnet_small"} <= set(without)
    monkeypatch.setattr(W, "pretrained_available", lambda name: True)
    with_ = C.resolve_methods(None)
    assert "efficientnet_lite0" in with_
    assert ("effnet-logreg" in with_) == ("effnet-logreg" in list_methods())


def test_cnn_starts_from_a_weights_file(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from objrec.methods.cnn import CNNClassifier
    from objrec.nets import create_model

    net = create_model("simple_cnn", 1, 2, (12, 12))
    state = {k: torch.full_like(v, 0.01) for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    X = np.random.default_rng(0).integers(0, 255, (16, 12, 12), dtype=np.uint8)
    y = np.arange(16) % 2
    clf = CNNClassifier(
        "simple_cnn", weights=str(tmp_path / "w.safetensors"), lr=1e-12, epochs=1,
        min_steps=0, early_stopping=0, verbose=0,
    ).fit(X, y)  # fmt: skip
    got = clf.model_.state_dict()
    first = next(k for k in got if k.endswith("weight"))
    torch.testing.assert_close(got[first], state[first], atol=1e-6, rtol=0)
