import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from objrec.cli import main
from objrec.data.idx import write_idx
from objrec.data.named import IDX_FILES


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OBJREC_DATA_DIR", raising=False)


def test_info_digits_table(capsys):
    assert main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    assert "found in  scikit-learn" in out
    assert "split     1,257 train / 270 val / 270 test  (stratified, seed 0)" in out
    assert "images    1,797 (one pool, no official split)" in out
    assert "8x8 grey: uint8 array (N, 8, 8)" in out
    lines = [ln.split() for ln in out.splitlines()]
    rows = {
        ln[0]: ln[1:] for ln in lines if ln and ln[0] in [str(i) for i in range(10)] + ["total"]
    }
    assert rows["total"] == ["1,257", "270", "270", "1,797"]
    per_class = np.array([[int(v.replace(",", "")) for v in rows[str(i)]] for i in range(10)])
    assert per_class[:, 3].sum() == 1797 and per_class[:, 0].sum() == 1257


def test_info_json_matches_dataset(capsys):
    from objrec.data import load_dataset

    assert main(["data", "info", "digits", "--json", "--seed", "2"]) == 0
    s = json.loads(capsys.readouterr().out)
    ds = load_dataset("digits", seed=2)
    mean, std = ds.channel_stats()
    assert s["split_sizes"] == {"train": 1257, "val": 270, "test": 270}
    assert s["class_counts"]["test"] == np.bincount(ds.test.y).tolist()
    assert s["train_mean"][0] == pytest.approx(mean[0], abs=1e-6)
    assert s["train_std"][0] == pytest.approx(std[0], abs=1e-6)


def test_info_idx_folder_with_official_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_idx(
        tmp_path / "d" / (IDX_FILES[0] + ".gz"), rng.integers(0, 256, (60, 3, 3), dtype=np.uint8)
    )
    write_idx(tmp_path / "d" / (IDX_FILES[1] + ".gz"), (np.arange(60) % 2).astype(np.uint8))
    write_idx(tmp_path / "d" / IDX_FILES[2], rng.integers(0, 256, (8, 3, 3), dtype=np.uint8))
    write_idx(tmp_path / "d" / IDX_FILES[3], (np.arange(8) % 2).astype(np.uint8))
    assert main(["data", "info", str(tmp_path / "d"), "--val-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "images    68 (official split: 60 train / 8 test)" in out
    assert "split     50 train / 10 val / 8 test  (test kept as published" in out


def test_truncated_idx_gives_one_clear_line_and_nonzero_exit(tmp_path):
    d = tmp_path / "mnist"
    for stem in IDX_FILES[1:]:
        write_idx(
            d / (stem + ".gz"),
            np.zeros(10 if "t10k" in stem else 60, np.uint8)
            if "labels" in stem
            else np.zeros((10, 28, 28), np.uint8),
        )
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (d / (IDX_FILES[0] + ".gz")).write_bytes(gzip.compress(header + b"\x00" * 1234))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "objrec.cli",
            "data",
            "info",
            "mnist",
            "--data-dir",
            str(d),
            "--no-download",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert err == [
        "objrec: error: train-images-idx3-ubyte.gz: header says 60000x28x28 = 47040000 bytes, "
        "file holds 1234 (truncated; download it again)"
    ]


def test_unknown_dataset_one_line(capsys):
    assert main(["data", "info", "no-such-set"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'no-such-set'" in err[0]


def test_show_writes_labelled_grid(tmp_path, capsys):
    out = tmp_path / "sub" / "grid.png"
    assert main(["data", "show", "digits", "-o", str(out), "--rows", "2", "--cols", "5"]) == 0
    assert "wrote" in capsys.readouterr().out
    img = Image.open(out)
    assert img.format == "PNG" and img.width > 300


def test_show_on_rgb_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        for k in range(4):
            (tmp_path / "r" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(
                tmp_path / "r" / c / f"{k}.png"
            )
    assert (
        main(
            [
                "data",
                "show",
                str(tmp_path / "r"),
                "-o",
                str(tmp_path / "g.png"),
                "--split",
                "test",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_sample_grid_takes_classes_in_turn():
    from objrec.commands.data import sample_grid_indices

    y = np.array([0, 0, 0, 1, 2, 2])
    idx = sample_grid_indices(y, 3, 5)
    assert y[idx].tolist() == [0, 1, 2, 0, 2]
    assert len(set(idx)) == 5


def test_help_is_useful(capsys):
    assert main(["data", "info", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--data-dir" in out and "OBJREC_DATA_DIR" in out and "orl-faces" in out


def test_idx_labels_not_matching_images(tmp_path, capsys):
    d = tmp_path / "d"
    write_idx(d / IDX_FILES[0], np.zeros((6, 2, 2), np.uint8))
    write_idx(d / IDX_FILES[1], np.zeros(5, np.uint8))
    write_idx(d / IDX_FILES[2], np.zeros((2, 2, 2), np.uint8))
    write_idx(d / IDX_FILES[3], np.array([0, 12], np.uint8))
    assert main(["data", "info", str(d)]) == 2
    assert "train-labels-idx1-ubyte: 5 labels for the 6 images" in capsys.readouterr().err


def test_info_reports_skipped_files_as_one_warning_line(tmp_path, capsys):
    for c in ("a", "b"):
        (tmp_path / "r" / c).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(np.full((5, 5), k * 40, np.uint8)).save(tmp_path / "r" / c / f"{k}.png")
    (tmp_path / "r" / "a" / "junk.jpg").write_bytes(b"\xff\xd8 not really")
    assert main(["data", "info", str(tmp_path / "r"), "--quiet"]) == 0
    captured = capsys.readouterr()
    warn = [ln for ln in captured.err.splitlines() if ln.startswith("objrec: warning:")]
    assert len(warn) == 1 and "skipped 1 unreadable" in warn[0] and "junk.jpg" in warn[0]
    assert "skipped   1 unreadable file(s)" in captured.out
