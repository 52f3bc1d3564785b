import gzip
import struct

import numpy as np
import pytest

from objrec.data.idx import IDX_DTYPES, read_idx, write_idx
from objrec.errors import DatasetError

DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """Hand-built IDX: 00 00 <type> <ndim>, big-endian uint32 sizes, raw payload."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("code", sorted(DTYPES))
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_every_type(tmp_path, code, compress):
    rng = np.random.default_rng(code)
    dt = np.dtype(DTYPES[code])
    if dt.kind == "f":
        a = rng.normal(size=(3, 4, 5)).astype(dt)
    else:
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True, dtype=dt)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, a)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    plain = gzip.decompress(raw) if compress else raw
    # the bytes on disk are exactly the format: magic, big-endian dims, big-endian data
    assert plain == idx_bytes(code, a.shape, a.astype(IDX_DTYPES[code]).tobytes())
    b = read_idx(path)
    assert b.dtype == dt and b.dtype.isnative
    np.testing.assert_array_equal(a, b)


def test_reads_hand_built_bytes(tmp_path):
    # 2x3 int16 big-endian: -2, -1, 0, 1, 256, 32767
    payload = struct.pack(">6h", -2, -1, 0, 1, 256, 32767)
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(0x0B, (2, 3), payload))
    np.testing.assert_array_equal(read_idx(p), np.array([[-2, -1, 0], [1, 256, 32767]]))
    # uint8 labels, gzip detected by content even without a .gz name
    q = tmp_path / "labels"
    q.write_bytes(gzip.compress(idx_bytes(0x08, (4,), bytes([7, 0, 255, 3]))))
    assert read_idx(q).tolist() == [7, 0, 255, 3]


def test_truncated_file_names_file_and_counts(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    payload = np.random.default_rng(0).bytes(1234)  # incompressible: the file could hold more
    p.write_bytes(gzip.compress(idx_bytes(0x08, (100, 28, 28), payload)))
    with pytest.raises(
        DatasetError,
        match=r"^train-images-idx3-ubyte.gz: header says 100x28x28 = 78400 bytes, file holds 1234 \(truncated",
    ):
        read_idx(p)
    # a header announcing more than deflate can store in the file (nothing allocated)
    p.write_bytes(gzip.compress(idx_bytes(0x08, (60000, 28, 28), b"\x00" * 1234)))
    with pytest.raises(
        DatasetError,
        match=r"^train-images-idx3-ubyte.gz: header says 60000x28x28 = 47040000 bytes, "
        r"file holds 1234 \(truncated",
    ):
        read_idx(p)
    p = tmp_path / "plain-idx3-ubyte"
    p.write_bytes(idx_bytes(0x08, (60000, 28, 28), b"\x00" * 1234))
    with pytest.raises(
        DatasetError, match=r"60000x28x28 = 47040000 bytes, file holds 1234 \(trunc"
    ):
        read_idx(p)


def test_multibyte_size_message_and_extra_bytes(tmp_path):
    p = tmp_path / "f.idx"
    p.write_bytes(idx_bytes(0x0D, (2, 2), b"\x00" * 15))
    with pytest.raises(DatasetError, match=r"2x2 x 4 bytes = 16 bytes, file holds 15"):
        read_idx(p)
    p.write_bytes(idx_bytes(0x08, (2, 2), b"\x00" * 7))
    with pytest.raises(DatasetError, match=r"file holds 7 \(3 bytes too many"):
        read_idx(p)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not an IDX file"),
        (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]), "unknown IDX data type 0x0A"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        (bytes([0, 0, 0x08, 3, 0, 0, 0, 1]), "announces 3 dimensions but the file ends after 8"),
        (bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 2**31, 2**31, 2), "probably corrupt"),
    ],
)
def test_bad_headers(tmp_path, data, message):
    p = tmp_path / "bad-file"
    p.write_bytes(data)
    with pytest.raises(DatasetError, match=r"^bad-file: .*" + message.replace("(", r"\(")):
        read_idx(p)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    p = tmp_path / "cut.gz"
    p.write_bytes(good[: len(good) // 2])  # gzip stream cut mid-way
    with pytest.raises(DatasetError, match=r"^cut.gz: (corrupt gzip|header says 100)"):
        read_idx(p)
    p.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:]))
    with pytest.raises(DatasetError, match=r"^cut.gz: corrupt gzip"):
        read_idx(p)


def test_write_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(DatasetError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "x.idx", np.zeros(3, np.int64))
    assert not (tmp_path / "x.idx").exists()


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "nope")
