"""Logs that read well in files: progress off a terminal prints plain lines (no carriage
returns, no escape codes), --quiet prints none, and a compare log is readable line by line."""

import io
import subprocess
import sys
from pathlib import Path

from objrec import progress as pg


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _stderr(monkeypatch, tty: bool = False) -> _Stream:
    """Replace sys.stderr (in the test's body: pytest's own capture re-sets it after the
    fixtures have run)."""
    stream = _Stream(tty=tty)
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_off_a_terminal_a_stage_ends_with_one_plain_line(monkeypatch):
    stderr = _stderr(monkeypatch)
    monkeypatch.setattr(pg, "MIN_SECONDS", 0.0)
    assert list(pg.progress(range(1500), desc="hog features", unit="img")) == list(range(1500))
    assert stderr.getvalue() == stderr.getvalue().strip() + "\n"
    (line,) = stderr.getvalue().splitlines()
    assert line.startswith("hog features: 1,500 img in ") and line.endswith(" s")
    assert "\r" not in stderr.getvalue() and "\x1b" not in stderr.getvalue()


def test_off_a_terminal_a_long_stage_adds_a_line_now_and_then(monkeypatch):
    stderr = _stderr(monkeypatch)
    monkeypatch.setattr(pg, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(pg, "LOG_INTERVAL", 0.0)  # every update is "long enough"
    with pg.progress(total=3, desc="decoding images", unit="img") as bar:
        for _ in range(3):
            bar.update(1)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert [line.split(" (")[0] for line in lines[:2]] == [
        "decoding images: 1/3 img",
        "decoding images: 2/3 img",
    ]
    assert lines[2].startswith("decoding images: 3 img in ")


def test_short_stages_say_nothing_off_a_terminal(monkeypatch):
    stderr = _stderr(monkeypatch)
    list(pg.progress(range(10), desc="predict", unit="batch"))
    assert stderr.getvalue() == ""


def test_quiet_and_disabled_progress_print_nothing(monkeypatch):
    stderr = _stderr(monkeypatch)
    monkeypatch.setattr(pg, "MIN_SECONDS", 0.0)
    with pg.silenced():
        assert list(pg.progress(range(5), desc="x")) == list(range(5))
        bar = pg.progress(total=5, desc="y")
        bar.update(5)
        bar.close()
    list(pg.progress(range(5), desc="z", enabled=False))
    assert stderr.getvalue() == ""
    assert not pg.is_silenced()


def test_silenced_covers_bars_that_a_model_asks_for(monkeypatch):
    """What --quiet does to a model whose own setting is verbose=True: its feature
    extraction (objrec.methods.parallel.map_chunks with progress=True) prints nothing."""
    import numpy as np

    from objrec.methods.parallel import map_chunks

    stderr = _stderr(monkeypatch)
    monkeypatch.setattr(pg, "MIN_SECONDS", 0.0)
    X = np.zeros((10, 2, 2), np.uint8)
    double = lambda a: a.reshape(len(a), -1) * 2  # noqa: E731
    map_chunks(double, X, chunk_size=3, progress=True, desc="hog features")
    assert stderr.getvalue().startswith("hog features: 10 img in ")
    stderr.truncate(0)
    stderr.seek(0)
    with pg.silenced():
        out = map_chunks(double, X, chunk_size=3, progress=True, desc="hog features")
    assert out.shape == (10, 4) and stderr.getvalue() == ""


def test_on_a_terminal_it_is_a_tqdm_bar(monkeypatch):
    from tqdm.auto import tqdm

    _stderr(monkeypatch, tty=True)
    monkeypatch.setenv("TERM", "xterm")
    bar = pg.progress(range(3), desc="t")
    assert isinstance(bar, tqdm)
    bar.close()


def test_quiet_silences_a_saved_models_own_bars(tmp_path, capsys, monkeypatch):
    """A classic model saved with verbose=True reports its feature extraction, except
    under --quiet."""
    from objrec.cli import main

    monkeypatch.setattr(pg, "MIN_SECONDS", 0.0)  # every stage ends with its line

    out = tmp_path / "run"
    assert main(["train", "digits", "--method", "hog-svm", "--limit", "60", "--param",
                 "verbose=true", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    import objrec

    assert objrec.load(out).verbose is True
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    err = capsys.readouterr().err
    assert "predict: " in err and "\r" not in err
    assert main(["evaluate", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_a_compare_log_written_to_a_file_reads_line_by_line(tmp_path):
    log = tmp_path / "compare.log"
    src = str(Path(__file__).resolve().parents[1] / "src")
    cmd = [sys.executable, "-m", "objrec", "compare", "digits", "--methods", "pixels-knn",
           "hog-svm", "--limit", "200", "--no-report", "--out", str(tmp_path / "run")]  # fmt: skip
    with open(log, "wb") as f:
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path, timeout=300,
            env={**__import__("os").environ, "PYTHONPATH": src, "TERM": "xterm"},
        )  # fmt: skip
    data = log.read_bytes()
    assert proc.returncode == 0, data.decode()
    assert b"\r" not in data and b"\x1b" not in data, data
    lines = data.decode().splitlines()
    assert any(line.startswith("[1/2] pixels-knn: test accuracy") for line in lines), lines
    assert any(line.startswith("[2/2] hog-svm: test accuracy") for line in lines), lines
    assert any(line.startswith("best on validation:") for line in lines), lines
    assert all(line.isprintable() for line in lines), lines
