"""IDX files built by hand to break the reader: zero dimensions next to huge ones, float
labels, headers announcing more than the file holds, gzip bombs."""

import gzip
import struct
import time
import tracemalloc

import numpy as np
import pytest

from objrec.data.idx import read_idx, read_idx_labels, write_idx
from objrec.data.named import load_idx_folder
from objrec.errors import DatasetError

BIG = 2**32 - 1


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes = b"") -> bytes:
    """Hand-built IDX: 00 00 <type> <ndim>, big-endian uint32 sizes, raw payload."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def write(path, data: bytes, gz: bool):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("code", "shape"),
    [(0x08, (0, BIG, BIG)), (0x08, (BIG, 0, BIG)), (0x0E, (BIG, BIG, 0)), (0x08, (0, 2**31, 2**4))],
)
def test_zero_dimension_next_to_huge_ones(tmp_path, gz, code, shape):
    p = write(tmp_path / "zero", idx_bytes(code, shape), gz)
    with pytest.raises(DatasetError, match=r"^zero: header says .*a zero dimension next to sizes"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_empty_arrays_are_fine(tmp_path, gz):
    p = write(tmp_path / "empty", idx_bytes(0x0B, (0, 28, 28)), gz)
    a = read_idx(p)
    assert a.shape == (0, 28, 28) and a.dtype == np.int16


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(BIG, BIG, BIG), (2**17, 2**17), (BIG,)])
def test_huge_headers_are_refused_without_allocating(tmp_path, gz, shape):
    p = write(tmp_path / "huge", idx_bytes(0x08, shape, b"\x00" * 64), gz)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"^huge: header says .*(probably corrupt|file holds 64 \(trunc)"):  # fmt: skip
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "values",
    [[0.0, float("nan"), 1.0], [3.7, 1.0, 0.0], [3.0, 1.0, 0.0]],
    ids=["nan", "3.7", "3.0"],
)
@pytest.mark.parametrize(("code", "fmt"), [(0x0D, ">f"), (0x0E, ">d")])
def test_float_label_files_are_refused(tmp_path, gz, values, code, fmt):
    payload = struct.pack(f"{fmt[0]}{len(values)}{fmt[1]}", *values)
    p = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(code, (len(values),), payload), gz)
    with pytest.raises(
        DatasetError, match=r"labels must be integers: write them as unsigned bytes"
    ):
        read_idx_labels(p, 10)
    assert np.isnan(read_idx(p)).any() == np.isnan(values).any()  # still readable as data


@pytest.mark.parametrize(
    ("dtype", "values", "message"),
    [
        (np.int8, [0, -1, 2], r"labels range -1..2, expected 0..9"),
        (np.int32, [0, 1_000_000_000], r"labels range 0..1000000000, expected 0..9"),
        (np.uint8, [0, 10], r"labels range 0..10, expected 0..9"),
    ],
)
def test_integer_labels_must_be_in_range(tmp_path, dtype, values, message):
    p = write_idx(tmp_path / "labels", np.array(values, dtype))
    with pytest.raises(DatasetError, match=r"^labels: " + message):
        read_idx_labels(p, 10)


def test_integer_labels_of_every_type_come_back_int64(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32):
        p = write_idx(tmp_path / "labels.gz", np.array([3, 0, 9], dtype))
        y = read_idx_labels(p, 10)
        assert y.dtype == np.int64 and y.tolist() == [3, 0, 9]
    write_idx(tmp_path / "2d", np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="expected 1-D labels"):
        read_idx_labels(tmp_path / "2d")


def _mnist_like(folder, train_labels: bytes):
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (3, 4, 4), np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (3, 4, 4), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2], np.uint8))
    (folder / "train-labels-idx1-ubyte").write_bytes(train_labels)
    return folder


def test_the_folder_loader_refuses_float_labels(tmp_path):
    nan = idx_bytes(0x0D, (3,), struct.pack(">3f", 0.0, float("nan"), 2.0))
    with pytest.raises(DatasetError, match=r"^train-labels-idx1-ubyte: holds float32 values"):
        load_idx_folder(_mnist_like(tmp_path / "nan", nan), "nan")
    ok = load_idx_folder(_mnist_like(tmp_path / "ok", idx_bytes(0x08, (3,), b"\x02\x01\x00")), "ok")
    assert ok.classes == ["0", "1", "2"]


def _zeros_member(n: int) -> bytes:
    return gzip.compress(b"\x00" * n, compresslevel=9)


def test_gzip_bomb_stops_right_after_the_announced_size(tmp_path):
    # 16 announced bytes, then 16 GiB of zeros in 1024 gzip members of 16 MiB (16 MiB on disk)
    member = _zeros_member(1 << 24)
    p = tmp_path / "bomb.gz"
    with open(p, "wb") as f:
        f.write(gzip.compress(idx_bytes(0x08, (16,), bytes(range(16)))))
        for _ in range(1024):
            f.write(member)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DatasetError, match=r"^bomb.gz: header says 16 = 16 bytes, the file holds more"):  # fmt: skip
            read_idx(p)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 3  # reading the whole bomb takes far longer
    assert peak < 32 << 20


def test_gzip_header_announcing_more_than_the_file_can_hold(tmp_path):
    # a 16 KiB file announcing 1 GiB: deflate cannot store more than 1032 bytes per byte,
    # so nothing is allocated; the 16 MiB it holds are counted 64 KiB at a time
    p = tmp_path / "liar.gz"
    p.write_bytes(gzip.compress(idx_bytes(0x08, (1 << 30,))) + _zeros_member(1 << 24))
    assert p.stat().st_size < 32 << 10
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"^liar.gz: header says 1073741824 = 1073741824 bytes, file holds 16777216 \(truncated"):  # fmt: skip
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_large_legitimate_gzip_file_is_read_in_full(tmp_path):
    # near the deflate ratio: 16 MiB of zeros in about 16 KiB is not refused
    n = 1 << 24
    p = tmp_path / "zeros.gz"
    p.write_bytes(gzip.compress(idx_bytes(0x08, (n,)) + b"\x00" * n, compresslevel=9))
    assert p.stat().st_size * 1000 < n
    a = read_idx(p)
    assert a.shape == (n,) and not a.any()
