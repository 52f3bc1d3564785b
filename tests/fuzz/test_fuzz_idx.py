"""Fuzzing the IDX reader: random and mutated headers and bodies, plain and gzip.

Whatever the bytes, :func:`read_idx` and :func:`read_idx_labels` return an array or raise
one of objrec's own errors (a :class:`~objrec.errors.DatasetError`); a well-formed file is
always read back exactly. The inputs that once broke the reader are kept as explicit
examples.
"""

import gzip
import math
import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from objrec.data.idx import IDX_DTYPES, read_idx, read_idx_labels
from objrec.errors import ObjrecError

BIG = 2**32 - 1
FUZZ = settings(
    max_examples=int(os.environ.get("OBJREC_FUZZ_EXAMPLES", 250)),  # more: fuzz longer
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def header(code: int, dims: list[int], prefix: bytes = b"\x00\x00") -> bytes:
    return prefix + bytes([code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return tmp_path_factory.mktemp("idx") / "fuzzed-idx"


def check(path, data: bytes, expected: np.ndarray | None = None, n_classes: int = 10):
    """Read ``data`` both ways; only objrec errors may come out, a valid file reads back."""
    path.write_bytes(data)
    a = None
    if currently_in_test_context():  # pytest --hypothesis-show-statistics counts these
        event("well formed" if expected is not None else "mutated")
    try:
        a = read_idx(path)
    except ObjrecError:
        assert expected is None, "a well-formed file was refused"
    else:
        if currently_in_test_context():
            event("read")
        assert isinstance(a, np.ndarray) and a.dtype.isnative
        assert a.dtype in {dt.newbyteorder("=") for dt in IDX_DTYPES.values()}
        if expected is not None:
            np.testing.assert_array_equal(a, expected)
            assert a.dtype == expected.dtype
    try:
        y = read_idx_labels(path, n_classes)
    except ObjrecError:
        pass
    else:  # labels: the same values, from an integer file, in range
        assert a is not None and a.dtype.kind in "iu" and np.array_equal(y, a)
        assert y.dtype == np.int64 and y.ndim == 1
        assert not len(y) or (0 <= y.min() and y.max() < n_classes)


@st.composite
def idx_files(draw):
    """(bytes, expected array or None): an IDX file, well formed or mutated, maybe gzipped."""
    intact = draw(st.integers(0, 2)) == 0  # a third well formed, the others anything
    codes = st.sampled_from(sorted(IDX_DTYPES))
    code = draw(codes if intact else codes | st.integers(0, 255))
    ndim = draw(st.integers(1, 3) if intact else st.integers(1, 3) | st.integers(0, 12))
    small = st.integers(0, 5)
    odd = st.sampled_from([0, 1, 2**16, 2**31, BIG]) | st.integers(0, BIG)
    dims = draw(st.lists(small if intact else small | odd, min_size=ndim, max_size=ndim))
    dtype = IDX_DTYPES.get(code, np.dtype(">u1"))
    n = math.prod(dims) * dtype.itemsize
    # the reader also refuses a zero dimension next to sizes beyond its 16 GiB limit
    others = math.prod(d for d in dims if d) * dtype.itemsize
    well_formed = code in IDX_DTYPES and 1 <= ndim <= 8 and n <= 2048 and others <= 1 << 34
    exact = st.just(n) if n <= 2048 else st.nothing()
    near = st.integers(max(0, n - 3), n + 3).filter(lambda k: k <= 4096)
    length = draw(exact if intact else exact | near | st.integers(0, 64))
    payload = draw(st.binary(min_size=length, max_size=length))
    zeros = st.just(b"\x00\x00")
    prefix = draw(zeros if intact else zeros | st.binary(min_size=0, max_size=2))
    data = header(code, dims, prefix) + payload
    expected = None
    if well_formed and length == n and prefix == b"\x00\x00":
        expected = np.frombuffer(payload, dtype).reshape(dims).astype(dtype.newbyteorder("="))
    mutation = "none" if intact else draw(st.sampled_from(["none", "cut", "flip", "append"]))
    if mutation == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
        expected = None
    elif mutation == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        expected = None
    elif mutation == "append":
        data += draw(st.binary(min_size=1, max_size=16))
        expected = None
    wraps = ["plain", "gzip"] + ([] if intact else ["gzip-cut", "gzip-flip", "gzip-tail", "two"])
    wrap = draw(st.sampled_from(wraps))
    if wrap != "plain":
        gz = gzip.compress(data, mtime=0)
        if wrap == "gzip-cut":
            gz = gz[: draw(st.integers(0, len(gz) - 1))]
            expected = None
        elif wrap == "gzip-flip":
            i = draw(st.integers(0, len(gz) - 1))
            gz = gz[:i] + bytes([gz[i] ^ draw(st.integers(1, 255))]) + gz[i + 1 :]
            expected = None
        elif wrap == "gzip-tail":
            gz += draw(st.binary(min_size=1, max_size=16))
            expected = None
        elif wrap == "two":  # a second gzip member: more data than the header says
            gz += gzip.compress(draw(st.binary(min_size=1, max_size=64)), mtime=0)
            expected = None
        data = gz
    return data, expected


@FUZZ
@given(idx_files())
# Found by this suite or by hand; each broke the reader before:
# a zero dimension next to huge ones (ValueError from reshape)
@example((header(0x08, [0, BIG, BIG]), None))
@example((gzip.compress(header(0x0E, [BIG, 0, BIG])), None))
# float labels (NaN became -2**63 and crashed bincount; 3.7 became 3)
@example((header(0x0D, [2]) + struct.pack(">2f", float("nan"), 3.7), np.array([np.nan, 3.7], np.float32)))  # fmt: skip
# a gzip bomb: 4 announced bytes, then a second member of 1 MiB of zeros
@example((gzip.compress(header(0x08, [4]) + b"abcd") + gzip.compress(b"\0" * (1 << 20)), None))
# a 60000x28x28 header in a 40-byte gzip file
@example((gzip.compress(header(0x08, [60000, 28, 28])), None))
# gzip header only (empty deflate stream), and a gzip magic alone
@example((gzip.compress(b""), None))
@example((b"\x1f\x8b", None))
def test_mutated_idx_files(path, case):
    data, expected = case
    check(path, data, expected)


@FUZZ
@given(st.binary(max_size=256), st.booleans())
@example(b"", False)
@example(b"\x00\x00\x08\x01\xff\xff\xff\xff", False)
@example(b"\x00\x00\x08\x01\xff\xff\xff\xff", True)
def test_random_bytes(path, data, gz):
    check(path, gzip.compress(data, mtime=0) if gz else data)


@FUZZ
@given(
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C]),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20),
    st.integers(1, 300),
)
def test_integer_labels_in_or_out_of_range(path, code, values, n_classes):
    dtype = IDX_DTYPES[code]
    info = np.iinfo(dtype)
    values = [min(max(v, info.min), info.max) for v in values]
    path.write_bytes(header(code, [len(values)]) + np.array(values, dtype).tobytes())
    in_range = all(0 <= v < n_classes for v in values)
    try:
        y = read_idx_labels(path, n_classes)
    except ObjrecError as e:
        assert not in_range and "labels range" in str(e)
    else:
        assert in_range and y.tolist() == values and y.dtype == np.int64


def test_raw_deflate_and_zlib_streams_are_not_gzip(path):
    # only gzip is detected (by its magic); other compressors are plain bytes: refused
    for data in (zlib.compress(header(0x08, [1]) + b"\x07"), b"BZh91AY&SY"):
        path.write_bytes(data)
        with pytest.raises(ObjrecError, match=r"not an IDX file|too short"):
            read_idx(path)
