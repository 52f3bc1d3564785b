"""Image folders streamed from disk: lazy files, DataLoader batches, and training equal to in memory."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from objrec.cli import main  # noqa: E402
from objrec.data import DatasetWarning, load_dataset  # noqa: E402
from objrec.data.folders import decode_image, load_folder  # noqa: E402
from objrec.data.lazy import ImageFiles  # noqa: E402
from objrec.errors import DatasetError  # noqa: E402
from objrec.methods.cnn import CNNClassifier  # noqa: E402
from objrec.training.loader import BatchLoader, to_nchw  # noqa: E402
from objrec.training.streaming import StreamingLoader  # noqa: E402

H, W = 10, 12  # not square, so a swapped height and width shows


def _write_folder(root, rng, *, per_class=14, broken=()):
    """3 classes of PNG and JPEG images; one grey PNG among RGB ones (the set becomes RGB)."""
    for c in range(3):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (H, W, 3)) + 70 * c
            img[:, : 2 + 3 * c] = 250  # a class-dependent bar, so the classes are learnable
            arr = img.astype(np.uint8)
            if c == 1 and i == 0:
                Image.fromarray(arr[..., 0]).save(d / f"img{i}.png")
            elif i % 3 == 0:
                Image.fromarray(arr).save(d / f"img{i}.jpg", quality=90)
            else:
                Image.fromarray(arr).save(d / f"img{i}.png")
    for name, data in broken:
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos") / "photos"
    return _write_folder(root, np.random.default_rng(0), broken=[("class0/notes.png", b"text")])


@pytest.fixture(scope="module")
def both(folder):
    """The folder loaded into memory and as a stream (same seed)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mem = load_folder(folder, cache=False, progress=False, seed=3)
        lazy = load_dataset(folder, stream=True, progress=False, seed=3)
    skipped = [str(x.message) for x in w if issubclass(x.category, DatasetWarning)]
    return mem, lazy, skipped


def test_stream_split_equals_the_in_memory_split(both):
    mem, lazy, skipped = both
    # the non-image is found from its header and skipped by both loaders, with a warning
    assert len(skipped) == 2 and all("notes.png" in m for m in skipped)
    assert [p for p, _ in lazy.skipped] == [p for p, _ in mem.skipped]
    assert lazy.classes == mem.classes and lazy.image_shape == mem.image_shape == (H, W, 3)
    for name, split in mem.splits.items():
        files = lazy.splits[name].X
        assert isinstance(files, ImageFiles)
        assert files.shape == split.X.shape and files.dtype == np.uint8
        np.testing.assert_array_equal(lazy.splits[name].y, split.y)
        np.testing.assert_array_equal(files[:], split.X)  # pixel for pixel
    for a, b in zip(lazy.channel_stats(), mem.channel_stats(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_image_files_index_like_an_array(both):
    mem, lazy, _ = both
    X, files = mem.train.X, lazy.train.X
    np.testing.assert_array_equal(files[3], X[3])
    np.testing.assert_array_equal(files[-1], X[-1])
    np.testing.assert_array_equal(files[[5, 0, 5]], X[[5, 0, 5]])
    np.testing.assert_array_equal(files[2:9:3], X[2:9:3])
    mask = np.arange(len(X)) % 4 == 1
    np.testing.assert_array_equal(files[mask], X[mask])
    sub = files.subset(np.array([4, 1]))
    assert sub.shape == (2, H, W, 3) and list(sub.labels) == list(mem.train.y[[4, 1]])
    np.testing.assert_array_equal(np.asarray(sub), X[[4, 1]])
    with pytest.raises(IndexError):
        files[len(files)]
    # the grey PNG is repeated into three channels, as the in-memory loader does
    grey = next(p for p in lazy.train.X.paths if p.endswith("class1/img0.png"))
    i = list(files.paths).index(grey)
    np.testing.assert_array_equal(
        files[i], np.repeat(decode_image(grey, None, None)[..., None], 3, -1)
    )


def test_grey_and_resized_streams_match_memory(folder):
    with pytest.warns(DatasetWarning, match="notes.png"):
        mem = load_folder(folder, cache=False, progress=False, color="grey", size=(8, 6))
    with pytest.warns(DatasetWarning, match="notes.png"):
        lazy = load_folder(folder, progress=False, color="grey", size=(8, 6), stream=True)
    assert lazy.test.X.shape == mem.test.X.shape == (len(mem.test.y), 8, 6)
    np.testing.assert_array_equal(lazy.test.X[:], mem.test.X)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_loader_yields_the_batches_of_batch_loader(both, workers):
    mem, lazy, _ = both
    y = torch.from_numpy(mem.train.y)
    for kw in ({}, {"rank": 1, "world_size": 2}):
        ref = BatchLoader(torch.from_numpy(to_nchw(mem.train.X)), y, 8, shuffle=True, seed=5, **kw)
        new = StreamingLoader(lazy.train.X, y, 8, shuffle=True, seed=5, num_workers=workers, **kw)
        assert len(new) == len(ref)
        for epoch in (0, 1):
            ref.set_epoch(epoch)
            new.set_epoch(epoch)
            got, want = list(new), list(ref)
            assert len(got) == len(want) == len(ref)
            for (xa, ya), (xb, yb) in zip(got, want, strict=True):
                assert xa.dtype == torch.uint8 and xa.shape == (len(ya), 3, H, W)
                assert torch.equal(xa, xb) and torch.equal(ya, yb) and ya.dtype == torch.int64


def test_streamed_fit_equals_in_memory_fit(both):
    mem, lazy, _ = both
    torch.manual_seed(123)
    kw = {
        "epochs": 1,
        "batch_size": 8,
        "min_steps": 0,
        "verbose": 0,
        "threads": 1,
        "augment": "default",
    }
    a = CNNClassifier("simple_cnn", **kw).fit(mem.train.X, mem.train.y, mem.val.X, mem.val.y)
    b = CNNClassifier("simple_cnn", num_workers=2, **kw).fit(
        lazy.train.X, lazy.train.y, lazy.val.X, lazy.val.y
    )
    assert b.preprocessing_["input_size"] == [H, W] and b.preprocessing_["channels"] == 3
    np.testing.assert_allclose(b.preprocessing_["mean"], a.preprocessing_["mean"], rtol=1e-12)
    np.testing.assert_allclose(b.preprocessing_["std"], a.preprocessing_["std"], rtol=1e-12)
    for (k, va), vb in zip(
        a.model_.state_dict().items(), b.model_.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(vb, va, msg=k)
    assert [h["train_loss"] for h in b.history_] == pytest.approx(
        [h["train_loss"] for h in a.history_]
    )
    assert b.val_accuracy_ == a.val_accuracy_
    # predict on files (streamed in batches) equals predict on the decoded arrays
    np.testing.assert_allclose(a.predict_proba(lazy.test.X), a.predict_proba(mem.test.X), atol=1e-6)
    np.testing.assert_array_equal(a.predict(lazy.test.X), a.predict(mem.test.X))
    assert a.score(lazy.test.X, lazy.test.y) == a.score(mem.test.X, mem.test.y)
    # no validation split given: the held-out part is the same positions
    c = CNNClassifier("simple_cnn", num_workers=0, **kw).fit(lazy.train.X, lazy.train.y)
    d = CNNClassifier("simple_cnn", **kw).fit(mem.train.X, mem.train.y)
    assert c.val_accuracy_ == d.val_accuracy_
    torch.testing.assert_close(c.model_.state_dict(), d.model_.state_dict())


def test_broken_pixel_data_is_skipped_in_training_and_named_in_predict(tmp_path, both):
    root = _write_folder(tmp_path / "set", np.random.default_rng(1), per_class=8)
    png = root / "class2" / "img1.png"
    png.write_bytes(png.read_bytes()[:60])  # the header survives, the pixel data does not
    ds = load_dataset(root, stream=True, progress=False, val_size=0.25, test_size=0.25)
    pool = ImageFiles(
        [*ds.train.X.paths, *ds.val.X.paths, *ds.test.X.paths],
        [*ds.train.y, *ds.val.y, *ds.test.y],
        ds.image_shape,
    )
    assert len(pool) == 24  # passed the header check
    clf = CNNClassifier(
        "simple_cnn", epochs=1, batch_size=8, min_steps=0, verbose=0, threads=1, num_workers=0
    )
    with pytest.warns(DatasetWarning, match=r"class2/img1\.png"):
        clf.fit(pool, pool.labels)
    assert len(clf.history_) == 1  # training went on without the file
    with pytest.raises(DatasetError, match=r"class2/img1\.png.*could not be decoded"):
        clf.predict(pool)
    with pytest.warns(DatasetWarning):
        pred, kept = clf.predict_stream(pool, skip_errors=True)
    bad = list(pool.paths).index(str(png))
    assert (
        len(pred) == 23 and bad not in kept and sorted(kept) == [i for i in range(24) if i != bad]
    )
    # a model trained on other data refuses files of another shape before decoding any
    mem = both[0]
    other = CNNClassifier("mlp", epochs=1, min_steps=0, verbose=0, threads=1).fit(
        mem.train.X[:, :8], mem.train.y
    )
    with pytest.raises(Exception, match="trained on"):
        other.predict(pool)


def test_train_command_streams_a_folder(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(folder), "--model", "simple_cnn", "--stream", "--epochs", "1"]
    with pytest.warns(DatasetWarning, match="notes.png"):
        assert (
            main([*args, "--num-workers", "0", "--out", str(run), "--quiet", "--threads", "1"]) == 0
        )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 42
    assert 0 <= metrics["test_accuracy"] <= 1
    assert json.loads((run / "config.json").read_text())["stream"] is True
    assert main(["train", str(folder), "--method", "pixels-knn", "--stream"]) == 2
    assert "--stream" in capsys.readouterr().err
