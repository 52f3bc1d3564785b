"""Model folders and archives: every file a model names stays inside its folder, archives
unpack into a fresh private folder after every member is checked, files get the usual
permissions, and a failed save (full disk) leaves no model folder that looks complete."""

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import objrec
from objrec import artifact
from objrec.errors import ModelFileError
from objrec.io import default_file_mode


@pytest.fixture(scope="module")
def digits_120():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images * (255 / 16)).round().astype(np.uint8)
    return X[:120], d.target[:120].astype(np.int64)


@pytest.fixture(scope="module")
def logreg(digits_120):
    return objrec.make_method("pixels-logreg").fit(*digits_120)


@pytest.fixture(scope="module")
def logreg_folder(logreg, tmp_path_factory):
    return objrec.save(logreg, tmp_path_factory.mktemp("logreg") / "model", method="genuine")


@pytest.fixture(scope="module")
def mlp(digits_120):
    pytest.importorskip("torch")
    X, y = digits_120
    return objrec.make_method("mlp", epochs=1, verbose=False, threads=1, val_fraction=0).fit(X, y)


def _copy(src, dst) -> Path:
    shutil.copytree(src, dst)
    return Path(dst)


def _edit(folder, **changes) -> None:
    meta = json.loads((folder / "objrec.json").read_text())
    meta.update(changes)
    (folder / "objrec.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------ paths
@pytest.mark.parametrize("weights", ["/etc/passwd", "../other/model/estimator.skops", "a/../../x"])
def test_weights_outside_the_folder_are_refused(logreg_folder, tmp_path, weights):
    _copy(logreg_folder, tmp_path / "other" / "model")  # a real model a path could reach
    m = _copy(logreg_folder, tmp_path / "m")
    _edit(m, weights=weights)
    with pytest.raises(ModelFileError, match="weights"):
        objrec.load(m)


def test_symlink_out_of_the_folder_is_refused_and_inside_is_allowed(logreg_folder, tmp_path):
    outside = _copy(logreg_folder, tmp_path / "outside")
    m = _copy(logreg_folder, tmp_path / "m")
    (m / "estimator.skops").unlink()
    (m / "estimator.skops").symlink_to(outside / "estimator.skops")
    with pytest.raises(ModelFileError, match="outside the model folder"):
        objrec.load(m)
    ok = _copy(logreg_folder, tmp_path / "ok")
    (ok / "alias.skops").symlink_to("estimator.skops")
    _edit(ok, weights="alias.skops")
    assert objrec.load(ok).objrec_metadata_.method == "genuine"


def test_metadata_file_linked_from_outside_is_refused(logreg_folder, tmp_path):
    outside = _copy(logreg_folder, tmp_path / "outside")
    m = _copy(logreg_folder, tmp_path / "m")
    (m / "objrec.json").unlink()
    (m / "objrec.json").symlink_to(outside / "objrec.json")
    with pytest.raises(ModelFileError, match="inside the model folder"):
        objrec.load(m)
    (m / "objrec.json").unlink()
    os.mkfifo(m / "objrec.json")  # reading it would block forever
    with pytest.raises(ModelFileError, match="not an objrec model"):
        objrec.load(m)
    from objrec.metadata import read

    with pytest.raises(ModelFileError, match="regular file"):
        read(m)


def test_wrapped_model_must_be_a_subfolder(digits_120, tmp_path):
    from objrec.evaluation.augment import AugmentedFit

    X, y = digits_120
    aug = AugmentedFit(objrec.make_method("pixels-logreg"), families="blur", severities=[1])
    folder = objrec.save(aug.fit(X, y), tmp_path / "aug")
    assert objrec.load(folder).estimator_.classes_.tolist() == list(range(10))
    for bad in (".", "..", "/tmp", "../aug"):  # "." would recurse forever
        _edit(folder, wrapped_model=bad)
        with pytest.raises(ModelFileError, match="wrapped_model"):
            objrec.load(folder)


# ------------------------------------------------------------------ archives
def _zip(path, members, *, attrs=None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if attrs and name in attrs:
                info.external_attr = attrs[name] << 16
            z.writestr(info, data)
    return Path(path)


def _genuine_members(folder) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


@pytest.mark.parametrize(
    "name", ["/abs/estimator.skops", "../estimator.skops", "a/../../b", "..\\x", "C:x", "./x"]
)
def test_archive_member_paths_are_checked(logreg_folder, tmp_path, name):
    members = {**_genuine_members(logreg_folder), name: b"x"}
    with pytest.raises(ModelFileError, match="refusing to unpack"):
        objrec.load(_zip(tmp_path / "evil.zip", members))


def test_archive_links_and_special_files_are_refused(logreg_folder, tmp_path):
    members = _genuine_members(logreg_folder)
    members["estimator.skops"] = b"/etc/passwd"  # a symlink entry, as zip -y writes it
    evil = _zip(tmp_path / "link.zip", members, attrs={"estimator.skops": 0o120777})
    with pytest.raises(ModelFileError, match="link"):
        objrec.load(evil)
    fifo = _zip(tmp_path / "fifo.zip", {**members, "p": b""}, attrs={"p": 0o010644})
    with pytest.raises(ModelFileError, match="link or special"):
        objrec.load(fifo)


def test_archive_size_and_count_limits(logreg_folder, tmp_path, monkeypatch):
    members = _genuine_members(logreg_folder)
    many = {**members, **{f"f{i}": b"" for i in range(artifact.ARCHIVE_MAX_FILES)}}
    with pytest.raises(ModelFileError, match="files"):
        objrec.load(_zip(tmp_path / "many.zip", many))
    total = sum(map(len, members.values()))
    monkeypatch.setattr(artifact, "ARCHIVE_MAX_BYTES", total + 100)
    big = {**members, "pad": b"\0" * 200}
    with pytest.raises(ModelFileError, match=r"GiB|unpacked"):
        objrec.load(_zip(tmp_path / "big.zip", big))


def test_archive_header_lying_about_sizes_is_refused(logreg_folder, tmp_path, monkeypatch):
    """A member whose header claims 10 bytes but inflates to 1 MB: the header's sum passes
    the limit, the bytes actually decompressed are what counts."""
    members = {**_genuine_members(logreg_folder), "pad": b"\0" * (1 << 20)}
    path = _zip(tmp_path / "liar.zip", members)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("pad")
    size, ten = (1 << 20).to_bytes(4, "little"), (10).to_bytes(4, "little")
    # the uncompressed size sits in the local header (offset 22) and in the central
    # directory entry (offset 24): patch both
    local = info.header_offset
    assert raw[local + 22 : local + 26] == size
    raw[local + 22 : local + 26] = ten
    patched, pos = 0, raw.find(b"PK\x01\x02")
    while pos != -1:
        if raw[pos + 24 : pos + 28] == size:
            raw[pos + 24 : pos + 28] = ten
            patched += 1
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert patched == 1
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("pad").file_size == 10
    monkeypatch.setattr(artifact, "ARCHIVE_MAX_BYTES", sum(map(len, members.values())) // 2)
    with pytest.raises(ModelFileError, match=r"corrupt|more than"):
        objrec.load(path)


def test_archive_unpacks_into_a_fresh_private_folder(logreg_folder, logreg, tmp_path, digits_120):
    archive = artifact.pack(logreg_folder, tmp_path / "m.zip")
    # a folder planted where the previous objrec version cached this archive
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:32]
    planted = Path(tempfile.gettempdir()) / "objrec-models" / digest
    try:
        _copy(logreg_folder, planted)
        _edit(planted, method="planted")
        folder = artifact.resolve(archive)
        assert folder != planted and stat.S_IMODE(folder.stat().st_mode) == 0o700
        back = objrec.load(archive)
        assert back.objrec_metadata_.method == "genuine"
        X, _ = digits_120
        np.testing.assert_array_equal(back.predict(X), logreg.predict(X))
    finally:
        shutil.rmtree(planted, ignore_errors=True)


def test_archive_of_a_model_with_a_subfolder_round_trips(digits_120, tmp_path):
    from objrec.evaluation.augment import AugmentedFit

    X, y = digits_120
    aug = AugmentedFit(objrec.make_method("pixels-logreg"), families="blur", severities=[1])
    folder = objrec.save(aug.fit(X, y), tmp_path / "aug")
    archive = artifact.pack(folder, tmp_path / "aug.zip")
    with zipfile.ZipFile(archive) as z:
        assert "estimator/objrec.json" in z.namelist()
    np.testing.assert_array_equal(objrec.load(archive).predict(X), aug.predict(X))


# ------------------------------------------------------------------ files and full disks
def test_every_model_file_has_the_default_permissions(mlp, logreg, tmp_path):
    mode = default_file_mode()
    for est, name in ((mlp, "weights.safetensors"), (logreg, "estimator.skops")):
        folder = objrec.save(est, tmp_path / name)
        assert (folder / name).is_file()
        for f in folder.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == mode, f
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # as mkdir makes it


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert [p.name for p in parent.iterdir() if name in p.name] == []


def test_full_disk_while_writing_weights(mlp, tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("objrec.io.atomic_write_bytes", full)
    with pytest.raises(ModelFileError, match="No space left on device"):
        objrec.save(mlp, tmp_path / "model")
    _no_leftovers(tmp_path, "model")


def test_safetensors_error_while_writing_weights(mlp, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def broken(*a, **k):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr("safetensors.torch.save", broken)
    with pytest.raises(ModelFileError, match="could not write the weights"):
        objrec.save(mlp, tmp_path / "model")
    _no_leftovers(tmp_path, "model")


def test_full_disk_keeps_the_previous_model(logreg, tmp_path, monkeypatch, digits_120):
    folder = objrec.save(logreg, tmp_path / "model", method="first")
    before = {f.name: f.read_bytes() for f in folder.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("skops.io.dump", full)
    with pytest.raises(ModelFileError, match="No space left"):
        objrec.save(logreg, folder, method="second")
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert objrec.load(folder).objrec_metadata_.method == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_full_disk_in_objrec_train_is_one_error_line(tmp_path, monkeypatch, capsys):
    from objrec.cli import main

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("skops.io.dump", full)
    code = main(
        ["train", "digits", "--method", "pixels-knn", "--quiet", "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code != 0 and "No space left on device" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model").exists()


def test_saving_over_a_foreign_folder_is_refused(logreg, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="not an objrec model folder"):
        objrec.save(logreg, tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"x"
    (tmp_path / "empty").mkdir()
    assert (objrec.save(logreg, tmp_path / "empty") / "objrec.json").is_file()


def test_export_of_an_archive_writes_beside_it(mlp, tmp_path):
    """The archive's unpacked folder is temporary: the export must not land there."""
    from objrec.cli import main

    folder = objrec.save(mlp, tmp_path / "model", dataset="digits")
    archive = artifact.pack(folder, tmp_path / "shared" / "m.zip")
    assert main(["export", str(archive), "--format", "torchscript", "--check-size", "8"]) == 0
    assert (tmp_path / "shared" / "model.pt").is_file()
    assert (tmp_path / "shared" / "model.pt.json").is_file()
