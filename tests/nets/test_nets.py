"""Every registered network: shapes, gradients, the features/head split; simple_cnn against the reference."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from objrec.errors import ObjrecError  # noqa: E402
from objrec.nets import create_model, list_models, model_info  # noqa: E402
from objrec.nets.summary import format_summary, summarize  # noqa: E402

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_backward_and_split(name, shape):
    torch.manual_seed(0)
    info = model_info(name)
    if shape[1] < info.min_size[0] or shape[2] < info.min_size[1]:
        with pytest.raises(ObjrecError, match="at least"):
            create_model(name, shape[0], 7, shape[1:])
        return
    # pretrained backbones resize their input to their own size: the smallest, 32 px, here
    small = {"image_size": 32} if info.pretrained else {}
    if name == "airbench":  # eval-mode forward averages views (TTA): one view here
        small = {"tta": 0}
    model = create_model(name, shape[0], 7, shape[1:], **small)
    x = torch.randn(4, *shape)
    logits = model(x)
    assert logits.shape == (4, 7)
    logits.sum().backward()
    trained = [p for p in model.parameters() if p.requires_grad]  # airbench freezes some
    assert trained and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
    model.eval()
    feats = model.forward_features(x)
    assert feats.shape == (4, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))


@pytest.mark.parametrize("name", list_models())
def test_model_args_rebuild_the_same_network(name):
    model = create_model(name, 3, 5, (32, 32))
    args = dict(model.model_args)
    twin = create_model(args.pop("name"), **args)
    twin.load_state_dict(model.state_dict())  # same layers, same shapes
    assert model_info(name).description


def test_reset_classifier_changes_only_the_last_layer():
    model = create_model("resnet_small", 1, 10, (28, 28)).eval()
    before = {k: v.clone() for k, v in model.features.state_dict().items()}
    model.reset_classifier(3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert model.model_args["num_classes"] == 3
    for k, v in model.features.state_dict().items():
        assert torch.equal(v, before[k])


class ReferenceCNN(torch.nn.Module):
    """The reference network exactly as MISSION.md and the seed baseline write it."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = torch.nn.Conv2d(32, 64, kernel_size=3)
        self.fc1 = torch.nn.Linear(64 * 5 * 5, 64)
        self.fc2 = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.view(-1, 64 * 5 * 5)))
        return self.fc2(x)


def test_simple_cnn_is_the_reference_network():
    torch.manual_seed(1)
    ref = ReferenceCNN()
    ours = create_model("simple_cnn", 1, 10, (28, 28))
    mapping = {"conv1": "features.0", "conv2": "features.3", "fc1": "head.0", "fc2": "head.2"}
    ours.load_state_dict(
        {f"{mapping[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in ref.state_dict().items()}
    )
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(ours(x), ref(x))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert ours.num_features == 64 * 5 * 5


def test_simple_cnn_adapts_to_small_and_colour_inputs():
    assert create_model("simple_cnn", 1, 10, (8, 8)).num_features == 64 * 2 * 2  # padded convs
    assert create_model("simple_cnn", 1, 10, (20, 20)).num_features == 64 * 3 * 3  # 18,9,7,3
    # larger maps are average-pooled to the reference's 5x5: the linear layer stays 1600 -> 64
    for size in [(32, 32), (64, 64), (243, 320)]:
        model = create_model("simple_cnn", 3, 10, size)
        assert model.num_features == 64 * 5 * 5 and model.head[0].in_features == 1600
        assert model(torch.zeros(2, 3, *size)).shape == (2, 10)
    for size, maps_hw in [((64, 64), (14, 14)), ((112, 92), (26, 21)), ((40, 12), (8, 1))]:
        model = create_model("simple_cnn", 1, 10, size).eval()  # e.g. 62,31,29,14 -> 5x5
        x = torch.randn(2, 1, *size)
        maps = model.features[:6](x)
        assert maps.shape == (2, 64, *maps_hw)
        grid = (min(maps_hw[0], 5), min(maps_hw[1], 5))
        expected = torch.nn.functional.adaptive_avg_pool2d(maps, grid).flatten(1)  # the oracle
        torch.testing.assert_close(model.forward_features(x), expected)
        assert set(model.state_dict()) == set(create_model("simple_cnn").state_dict())
    assert len(create_model("simple_cnn", 1, 10, (28, 28)).features) == 7  # no pooling added


def test_simple_cnn_pooled_to_its_grid_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = create_model("simple_cnn", 1, 10, (64, 64)).eval()  # 14x14 maps, 5 does not divide 14
    x = torch.randn(3, 1, 64, 64)
    torch.onnx.export(model, (x,), str(tmp_path / "m.onnx"), dynamo=False, opset_version=17)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_summary_rows_shapes_params_and_macs():
    model = create_model("simple_cnn", 1, 10, (28, 28))
    rows = {r.name: r for r in summarize(model, (1, 28, 28))}
    assert rows["features.0"].output_shape == (32, 26, 26)
    assert rows["features.5"].output_shape == (64, 5, 5)
    assert rows["features.0"].params == 32 * 9 + 32
    assert rows["features.0"].macs == 26 * 26 * 32 * 9  # hand-computed
    assert rows["head.0"].params == 1600 * 64 + 64
    assert sum(r.params for r in rows.values()) == sum(p.numel() for p in model.parameters())
    text = format_summary(model, (1, 28, 28))
    assert "64x5x5" in text and "121,930" in text


def test_errors_are_clear():
    with pytest.raises(ObjrecError, match="unknown network 'nope'"):
        create_model("nope")
    with pytest.raises(ObjrecError, match="at least 8x8"):
        create_model("resnet_small", 1, 10, (4, 4))
    with pytest.raises(ObjrecError, match="at least 2"):
        create_model("mlp", 1, 1, (8, 8))


def test_nets_cli(capsys):
    from objrec.cli import main

    assert main(["nets", "summary", "lenet5", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    assert "16x5x5" in out and "61,706" in out
    assert main(["nets", "list"]) == 0
    assert "resnet_small" in capsys.readouterr().out
    assert main(["nets", "summary", "mlp", "--input", "28"]) == 2
    assert np.any(["CxHxW" in capsys.readouterr().err])
