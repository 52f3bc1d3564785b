"""The IDX file format (MNIST and its drop-in replacements), read and written.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (TT = data type, DD = number of
dimensions), DD big-endian uint32 sizes, then the values in big-endian C order::

    0x08 unsigned byte  0x09 signed byte  0x0B int16  0x0C int32  0x0D float32  0x0E float64

Files may be gzip-compressed (detected from their first bytes, not their name). Every
problem is a :class:`~objrec.errors.DatasetError` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from objrec.errors import DatasetError

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
MAX_DIMS = 8
_CHUNK = 1 << 24


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_exact(f, n: int) -> bytes:
    """Read up to ``n`` bytes in chunks (no allocation of ``n`` bytes up front)."""
    parts, got = [], 0
    while got < n:
        b = f.read(min(_CHUNK, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_idx_header(f, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse the magic number and dimensions from an open binary stream."""
    magic = f.read(4)
    if len(magic) < 4:
        raise DatasetError(
            f"{name}: file holds {len(magic)} bytes, too short for an IDX header (4-byte magic number)"
        )
    if magic[:2] != b"\x00\x00":
        raise DatasetError(
            f"{name}: not an IDX file (magic number {magic.hex()} should start with 0000)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(f"{name}: unknown IDX data type 0x{code:02X} (known: {known})")
    if not 1 <= ndim <= MAX_DIMS:
        raise DatasetError(f"{name}: IDX header gives {ndim} dimensions (expected 1..{MAX_DIMS})")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DatasetError(
            f"{name}: header announces {ndim} dimensions but the file ends after "
            f"{4 + len(raw)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", raw)
    return IDX_DTYPES[code], tuple(int(s) for s in shape)


def read_idx(path: str | os.PathLike, *, max_bytes: int = 1 << 34) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-endian array.

    Parameters
    ----------
    path : file to read.
    max_bytes : refuse headers announcing more data than this (default 16 GiB), so a
        corrupt header cannot make objrec try to allocate terabytes.

    Returns
    -------
    ndarray with the header's shape and dtype (uint8, int8, int16, int32, float32, float64).
    """
    path = Path(path)
    name = path.name
    try:
        gz = _is_gzip(path)
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            dtype, shape = read_idx_header(f, name)
            count = math.prod(shape)  # Python ints: no overflow
            expected = count * dtype.itemsize
            dims = "x".join(map(str, shape))
            what = (
                f"{dims} = {expected} bytes"
                if dtype.itemsize == 1
                else (f"{dims} x {dtype.itemsize} bytes = {expected} bytes")
            )
            if expected > max_bytes:
                raise DatasetError(
                    f"{name}: header says {what}, more than the {max_bytes} allowed; "
                    "the header is probably corrupt"
                )
            data = _read_exact(f, expected)
            if len(data) < expected:
                raise DatasetError(
                    f"{name}: header says {what}, file holds {len(data)}"
                    " (truncated; download it again)"
                )
            extra = len(f.read(1))
            if extra:
                rest = 1 + sum(len(b) for b in iter(lambda: f.read(_CHUNK), b""))
                raise DatasetError(
                    f"{name}: header says {what}, file holds {expected + rest} "
                    f"({rest} bytes too many; wrong header or two files joined)"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(f"{name}: corrupt gzip data ({e}); download the file again") from e
    except IsADirectoryError as e:
        raise DatasetError(f"{path}: is a folder, expected an IDX file") from e
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no such file") from e
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip when ``compress`` (default: the
    name ends in ``.gz``). Supported dtypes: uint8, int8, int16, int32, float32, float64."""
    from objrec.io import atomic_write_bytes

    path = Path(path)
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise DatasetError(
            f"{path.name}: IDX cannot store dtype {arr.dtype}; use one of "
            "uint8, int8, int16, int32, float32, float64"
        )
    if not 1 <= arr.ndim <= MAX_DIMS:
        raise DatasetError(f"{path.name}: IDX stores 1..{MAX_DIMS} dimensions, got {arr.ndim}")
    if any(s >= 2**32 for s in arr.shape):
        raise DatasetError(f"{path.name}: IDX dimension sizes must fit in 32 bits")
    buf = io.BytesIO()
    buf.write(bytes([0, 0, code, arr.ndim]))
    buf.write(struct.pack(f">{arr.ndim}I", *arr.shape))
    buf.write(np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes())
    data = buf.getvalue()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return path
