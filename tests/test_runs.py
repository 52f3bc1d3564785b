"""Run folders: one writer at a time (a lock file inside), no mixing with another run's files."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from objrec.cli import main
from objrec.errors import ObjrecError
from objrec.runs import LOCK_NAME, is_run_folder, lock_run_folder, open_run, write_run_info

SRC = str(Path(__file__).resolve().parents[1] / "src")

HOLDER = """
import sys
from objrec.runs import open_run
with open_run(sys.argv[1], resume=sys.argv[2] == "resume", command="train"):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes stdin
"""


@pytest.fixture
def held_by_other_process():
    """Start a process that holds the lock of a folder until the test ends."""
    procs = []

    def hold(folder: Path, mode: str = "new") -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(folder), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(timeout=30)


def test_open_run_creates_locks_and_releases(tmp_path):
    out = tmp_path / "a" / "run"
    with open_run(out) as folder:
        assert folder == out and (out / LOCK_NAME).is_file()
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "train"
        # the lock is really taken: another open file description cannot get it
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with pytest.raises(ObjrecError, match="this process is already writing a run"):
            with open_run(out):
                pass
    fd = os.open(out / LOCK_NAME, os.O_RDWR)  # released when the block ends
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert is_run_folder(out)


def test_second_writer_in_another_process_is_refused(tmp_path, held_by_other_process):
    out = tmp_path / "run"
    holder = held_by_other_process(out)
    with pytest.raises(ObjrecError, match=r"another objrec run is writing this folder") as e:
        with open_run(out, command="compare"):
            pass
    assert f"process {holder.pid}" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ObjrecError, match="another objrec run"):  # --resume too
        with open_run(out, resume=True):
            pass
    with pytest.raises(ObjrecError, match="another objrec run"):  # and the API's lock
        lock_run_folder(out)
    assert sorted(os.listdir(out)) == [LOCK_NAME]  # nothing was written by the refused ones


def test_lock_of_the_same_process_is_joined(tmp_path):
    out = tmp_path / "run"
    with open_run(out, command="compare"):
        with lock_run_folder(out):  # evaluation.compare inside `objrec compare`
            pass
        # still held by the outer run after the inner one let go
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_folder_holding_a_run_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    with open_run(out) as folder:
        write_run_info(folder, {"method": "x"})
        (folder / "model").mkdir()
        (folder / "model" / "weights.bin").write_bytes(b"1")
    with pytest.raises(ObjrecError, match=r"holds another run \(config.json, model, versions.json\); give --overwrite") as e:  # fmt: skip
        with open_run(out):
            pass
    assert "--resume" in str(e.value)
    with pytest.raises(ObjrecError, match="holds another run"):
        with open_run(out, command="compare"):
            pass
    assert (out / "model" / "weights.bin").is_file()  # untouched
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    (out / "link").symlink_to(outside)
    with open_run(out, overwrite=True) as folder:
        assert sorted(os.listdir(folder)) == [LOCK_NAME]
    assert outside.read_text() == "keep"  # a link is removed, never followed
    with open_run(out, resume=True):  # resume reopens the run without clearing it
        pass


def test_an_old_run_folder_without_lock_file_is_recognised(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    write_run_info(out, {"method": "x"})
    assert is_run_folder(out)
    with pytest.raises(ObjrecError, match="holds another run"):
        with open_run(out):
            pass
    with open_run(out, overwrite=True):
        assert sorted(os.listdir(out)) == [LOCK_NAME]


def test_a_foreign_folder_is_never_written_nor_cleared(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"jpeg")
    (photos / "config.json").write_text("{}")  # not enough to look like a run
    for overwrite in (False, True):
        with pytest.raises(ObjrecError, match=r"not empty \(cat.jpg, config.json\) and not an objrec run folder"):  # fmt: skip
            with open_run(photos, overwrite=overwrite):
                pass
    assert sorted(os.listdir(photos)) == ["cat.jpg", "config.json"]  # no lock file either
    with pytest.raises(ObjrecError, match="not an objrec run folder"):
        with open_run(photos, resume=True):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(ObjrecError, match="is a file"):
        with open_run(tmp_path / "file"):
            pass
    with pytest.raises(ObjrecError, match="give only one"):
        with open_run(tmp_path / "new", resume=True, overwrite=True):
            pass
    assert not (tmp_path / "new").exists()


def test_an_empty_folder_or_one_left_with_only_the_lock_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with open_run(out):
        pass
    with open_run(out):  # only the lock file of a run that wrote nothing
        pass


def test_overwrite_refuses_the_current_folder(tmp_path, monkeypatch):
    write_run_info(tmp_path, {"method": "x"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ObjrecError, match="refusing to clear"):
        with open_run(".", overwrite=True):
            pass
    assert (tmp_path / "config.json").is_file()


def test_named_runs_get_a_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_run(name="exp") as a:
        with open_run(name="exp") as b:
            assert (a, b) == (Path("runs/exp"), Path("runs/exp-2"))


# --- through the commands -------------------------------------------------------------


def _has(method: str) -> bool:
    from objrec.methods import list_methods

    return method in list_methods()


needs_knn = pytest.mark.skipif(not _has("pixels-knn"), reason="classical methods not available")
TRAIN = ["train", "digits", "--method", "pixels-knn", "--quiet"]


@needs_knn
def test_train_refuses_a_folder_another_run_is_writing(tmp_path, capsys, held_by_other_process):
    out = tmp_path / "run"
    held_by_other_process(out)
    assert main([*TRAIN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "another objrec run is writing this folder" in err and err.count("\n") == 1
    assert sorted(os.listdir(out)) == [LOCK_NAME]


@needs_knn
def test_train_twice_into_one_folder_needs_overwrite_and_resume_locks(
    tmp_path, capsys, held_by_other_process
):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    first = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main([*TRAIN, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another run" in err and "--overwrite" in err and "--resume" in err
    assert json.loads((out / "config.json").read_text())["seed"] == 0  # the first run intact
    assert main([*TRAIN, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert json.loads((out / "metrics.json").read_text())["n_train"] == first["n_train"]
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # resume still works
    capsys.readouterr()
    held_by_other_process(out, "resume")
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    assert "another objrec run is writing this folder" in capsys.readouterr().err


def test_train_creates_nothing_before_its_inputs_are_checked(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["train", "digits", "--model", "nope", "--out", str(out)]) == 2
    assert main(["train", "digits", "--param", "oops", "--out", str(out)]) == 2
    assert main(["train", "--resume", str(out), "--overwrite"]) == 2
    assert not out.exists()


@needs_knn
def test_compare_refuses_a_second_run_into_its_folder(tmp_path, capsys, held_by_other_process):
    out = tmp_path / "cmp"
    args = ["compare", "digits", "--methods", "pixels-knn", "--no-report", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    assert (out / "methods" / "pixels-knn" / "model").is_dir()
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds another run" in err and "--overwrite" in err and "--resume" not in err
    (out / "stale.txt").write_text("from the old run")
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "stale.txt").exists() and (out / "comparison.json").is_file()
    capsys.readouterr()
    other = tmp_path / "busy"
    held_by_other_process(other)
    assert main([*args, "--out", str(other)]) == 2
    assert "another objrec run is writing" in capsys.readouterr().err
    assert sorted(os.listdir(other)) == [LOCK_NAME]
