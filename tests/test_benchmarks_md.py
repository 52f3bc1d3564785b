"""benchmarks/benchmarks_md.write_section: one section replaced, written blocks kept."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmarks_md

DOC = """# Benchmarks

## Other

other text

## Segmentation

old table

### The 15-minute run

written figures

### Reading

written reading

## Last

last text
"""


def _write(tmp_path, monkeypatch, keep):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOC)
    monkeypatch.setattr(benchmarks_md, "BENCHMARKS_MD", path)
    benchmarks_md.write_section("Segmentation", "## Segmentation\n\nnew table\n", keep=keep)
    return path.read_text()


def test_keep_true_carries_every_written_block(tmp_path, monkeypatch):
    doc = _write(tmp_path, monkeypatch, True)
    section = doc.split("## Segmentation\n")[1].split("## Last")[0]
    assert "new table" in section and "old table" not in section
    assert section.index("### The 15-minute run") < section.index("### Reading")
    assert "written figures" in section and "written reading" in section
    assert "## Other\n\nother text" in doc and doc.endswith("## Last\n\nlast text\n")


def test_keep_title_carries_that_block_and_the_ones_after_it(tmp_path, monkeypatch):
    doc = _write(tmp_path, monkeypatch, "Reading")
    section = doc.split("## Segmentation\n")[1].split("## Last")[0]
    assert "written reading" in section
    assert "written figures" not in section and "old table" not in section


def test_no_keep_replaces_the_whole_section(tmp_path, monkeypatch):
    doc = _write(tmp_path, monkeypatch, None)
    section = doc.split("## Segmentation\n")[1].split("## Last")[0]
    assert section.strip() == "new table"
