import zipfile

import numpy as np
import pytest

import objrec
from objrec.artifact import pack
from objrec.cli import main
from objrec.errors import ModelFileError


def test_single_file_archive_round_trip(
    logreg_model_dir, pixels_logreg, digits_16, tmp_path, capsys
):
    X = digits_16[2]
    out = tmp_path / "m.zip"
    assert main(["export", str(logreg_model_dir), "--format", "archive", "-o", str(out)]) == 0
    with zipfile.ZipFile(out) as z:
        assert "objrec.json" in z.namelist()
    back = objrec.load(out)
    np.testing.assert_array_equal(back.predict_proba(X), pixels_logreg.predict_proba(X))
    assert main(["info", str(out)]) == 0
    assert "pixels-logreg" in capsys.readouterr().out


def test_hostile_archives_are_refused(logreg_model_dir, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("objrec.json", "{}")
        z.writestr("../escape.txt", "x")
    with pytest.raises(ModelFileError, match="refusing to unpack"):
        objrec.load(evil)
    assert not (tmp_path.parent / "escape.txt").exists()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="corrupt"):
        objrec.load(bad)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "x")
    with pytest.raises(ModelFileError, match="not an objrec model archive"):
        objrec.load(other)
    assert pack(logreg_model_dir).name == "model.zip"
