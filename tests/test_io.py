"""Atomic writes: readers see the old or the new file, with the usual permissions."""

import os
import stat

import pytest

from objrec.io import atomic_write_bytes, default_file_mode, read_json, write_json


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_writes_get_the_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        assert default_file_mode() == 0o644
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        write_json(tmp_path / "a.json", {"k": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives a new file
        for name in ("a.bin", "a.json"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == stat.S_IMODE(
                plain.stat().st_mode
            ), name
    finally:
        os.umask(old)
    assert read_json(tmp_path / "a.json") == {"k": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
