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
import stat
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
#: deflate stores at most 258 bytes in 2 bits: no gzip file decompresses to more than this
#: many bytes per byte of the file
_GZIP_MAX_RATIO = 1032


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


def _describe(shape: tuple[int, ...], itemsize: int, nbytes: int) -> str:
    """``60000x28x28 = 47040000 bytes`` or ``2x2 x 4 bytes = 16 bytes``."""
    dims = "x".join(map(str, shape))
    return (
        f"{dims} = {nbytes} bytes"
        if itemsize == 1
        else f"{dims} x {itemsize} bytes = {nbytes} bytes"
    )


def _check_sizes(name: str, dtype: np.dtype, shape: tuple[int, ...], max_bytes: int) -> int:
    """The number of data bytes the header announces, refused beyond ``max_bytes``."""
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    what = _describe(shape, dtype.itemsize, expected)
    if expected > max_bytes:
        raise DatasetError(
            f"{name}: header says {what}, more than the {max_bytes} allowed; "
            "the header is probably corrupt"
        )
    # A zero dimension makes the product 0 whatever the others say; no array of such a
    # shape can be made when the other sizes multiply past what memory can address.
    others = math.prod(s for s in shape if s) * dtype.itemsize
    if expected == 0 and others > max_bytes:
        raise DatasetError(
            f"{name}: header says {'x'.join(map(str, shape))}: a zero dimension next to sizes "
            f"of {others} bytes together (more than the {max_bytes} allowed); the header is "
            "probably corrupt"
        )
    return expected


def _read_into(f, buf: memoryview) -> int:
    """Fill ``buf`` from ``f`` in chunks; the number of bytes read (less at end of file)."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got : got + _CHUNK])
        if not n:
            break
        got += n
    return got


def read_idx(
    path: str | os.PathLike, *, max_bytes: int = 1 << 34, integer: bool = False
) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-endian array.

    Parameters
    ----------
    path : file to read.
    max_bytes : refuse headers announcing more data than this (default 16 GiB), so a
        corrupt header cannot make objrec try to allocate terabytes.
    integer : refuse the float types (0x0D, 0x0E), e.g. for label files.

    The data must be exactly as long as the header says. A plain file's size is checked
    before anything is read. A gzip file is decompressed only up to the announced size
    plus one byte, so a small file that decompresses to gigabytes (a "gzip bomb") is
    refused after reading what its header announced; for a header announcing more than
    deflate can hold in the file (1032 bytes per compressed byte), nothing is allocated
    (the decompressed bytes are only counted, for the message). Memory use is the
    announced size.

    Returns
    -------
    ndarray with the header's shape and dtype (uint8, int8, int16, int32, float32, float64).
    """
    path = Path(path)
    name = path.name
    try:
        with open(path, "rb") as raw:
            st = os.fstat(raw.fileno())
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            dtype, shape = read_idx_header(f, name)
            if integer and dtype.kind == "f":
                code = _CODES[dtype.newbyteorder("=")]
                raise DatasetError(
                    f"{name}: holds {dtype.newbyteorder('=').name} values (IDX type 0x{code:02X}); "
                    "labels must be integers: write them as unsigned bytes (type 0x08)"
                )
            expected = _check_sizes(name, dtype, shape, max_bytes)
            what = _describe(shape, dtype.itemsize, expected)
            regular = stat.S_ISREG(st.st_mode)
            if regular and not gz:
                held = st.st_size - 4 - 4 * len(shape)
                if held < expected:
                    raise DatasetError(
                        f"{name}: header says {what}, file holds {held}"
                        " (truncated; download it again)"
                    )
                if held > expected:
                    raise DatasetError(
                        f"{name}: header says {what}, file holds {held} "
                        f"({held - expected} bytes too many; wrong header or two files joined)"
                    )
            if regular and gz and expected > _GZIP_MAX_RATIO * st.st_size:
                # The file cannot hold that much: count what it holds (64 KiB at a time,
                # nothing kept) instead of allocating what the header announces.
                got = sum(len(b) for b in iter(lambda: f.read(1 << 16), b""))
                raise DatasetError(
                    f"{name}: header says {what}, file holds {got} (truncated; download it again)"
                )
            try:
                arr = np.empty(expected // dtype.itemsize, dtype=dtype)
            except MemoryError:
                raise DatasetError(
                    f"{name}: header says {what}, more than the free memory"
                ) from None
            got = _read_into(f, memoryview(arr).cast("B")) if expected else 0
            if got < expected:
                raise DatasetError(
                    f"{name}: header says {what}, file holds {got} (truncated; download it again)"
                )
            if f.read(1):  # never decompresses more than this one byte past the data
                raise DatasetError(
                    f"{name}: header says {what}, the file holds more data (wrong header or "
                    "two files joined)"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DatasetError(f"{name}: corrupt gzip data ({e}); download the file again") from e
    except IsADirectoryError as e:
        raise DatasetError(f"{path}: is a folder, expected an IDX file") from e
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: no such file") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read ({e.strerror or e})") from e
    arr = arr.reshape(shape)
    if not dtype.isnative:
        arr = arr.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return arr


def read_idx_labels(
    path: str | os.PathLike, n_classes: int | None = None, *, max_bytes: int = 1 << 34
) -> np.ndarray:
    """Read an IDX label file: int64 (N,), every label in ``0..n_classes-1``.

    Labels are whole numbers: a file of float type (0x0D, 0x0E) is refused from its
    header, before its data is read, whatever values it holds (3.7, NaN, or 3.0).
    """
    y = read_idx(path, max_bytes=max_bytes, integer=True)
    name = Path(path).name
    if y.ndim != 1:
        raise DatasetError(f"{name}: expected 1-D labels, got shape {y.shape}")
    if len(y) and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        top = "" if n_classes is None else f"..{n_classes - 1}"
        raise DatasetError(f"{name}: labels range {int(y.min())}..{int(y.max())}, expected 0{top}")
    return y.astype(np.int64)


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
