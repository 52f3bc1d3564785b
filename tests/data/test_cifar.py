"""CIFAR-10's binary version: the record reader against hand-built bytes, safe extraction,
and the named set found locally or downloaded from a local HTTP server on 127.0.0.1."""

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from objrec.data import load_dataset
from objrec.data.cifar import (
    BATCH_FILES,
    FOLDER,
    META_FILE,
    RECORD_BYTES,
    decode_records,
    extract,
    read_batch,
)
from objrec.data.named import CifarSpec, load_cifar10
from objrec.errors import DatasetError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORDS = 20  # records per batch file in the small archives built here


def _records(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, RECORD_BYTES), dtype=np.uint8)
    raw[:, 0] = np.arange(n) % 10
    return raw.tobytes(), raw


def _tar(files: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in {**files, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def _members(records: int = RECORDS) -> dict[str, bytes]:
    out = {f"{FOLDER}/{f}": _records(records, i)[0] for i, f in enumerate(BATCH_FILES)}
    out[f"{FOLDER}/{META_FILE}"] = ("\n".join(CLASSES) + "\n\n").encode()
    return out


def _spec(body: bytes, urls=()) -> CifarSpec:
    return CifarSpec(
        urls=tuple(urls),
        md5=hashlib.md5(body).hexdigest(),
        records=RECORDS,
        val_size=10,
    )


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real cache or data folder is read or written."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OBJREC_DATA_DIR", raising=False)
    monkeypatch.setattr("objrec.data.named.SYSTEM_DIRS", ())


# -- the record reader --------------------------------------------------------------------
def test_decode_records_against_the_byte_layout():
    body, raw = _records(7, seed=3)
    X, y = decode_records(body)
    assert X.shape == (7, 32, 32, 3) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.arange(7) % 10)
    for i, r, c, k in [(0, 0, 0, 0), (1, 31, 31, 2), (4, 5, 17, 1), (6, 12, 0, 2)]:
        assert X[i, r, c, k] == raw[i, 1 + k * 1024 + r * 32 + c]
    # every pixel at once, by the same rule
    r, c, k = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(X, raw[:, 1 + k * 1024 + r * 32 + c])


def test_odd_sizes_and_labels_are_refused(tmp_path):
    body, _ = _records(3, seed=0)
    with pytest.raises(DatasetError, match="whole number"):
        decode_records(body[:-5])
    bad = bytearray(body)
    bad[RECORD_BYTES] = 10  # label of record 1
    with pytest.raises(DatasetError, match="record 1 has label 10"):
        decode_records(bytes(bad))
    f = tmp_path / "data_batch_1.bin"
    f.write_bytes(body)
    with pytest.raises(DatasetError, match="expected 30,730,000"):
        read_batch(f)  # an official batch holds 10,000 records
    assert read_batch(f, records=3)[0].shape == (3, 32, 32, 3)


# -- extraction ---------------------------------------------------------------------------
def test_extract_takes_only_the_expected_members(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(_members(), {f"{FOLDER}/readme.html": b"<html>", "../evil": b"x"}))
    out = extract(archive, tmp_path / "dest", records=RECORDS)
    assert sorted(p.name for p in out.iterdir()) == sorted([*BATCH_FILES, META_FILE])
    assert not (tmp_path / "evil").exists()
    assert [p.name for p in (tmp_path / "dest").iterdir()] == [FOLDER]  # no temporary left


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update({f"{FOLDER}/test_batch.bin": b"\0" * (RECORD_BYTES * 19)}), "expected"),
        (lambda m: m.pop(f"{FOLDER}/{META_FILE}"), "missing"),
    ],
)
def test_extract_refuses_odd_archives(tmp_path, change, message):
    members = _members()
    change(members)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(members))
    with pytest.raises(DatasetError, match=message):
        extract(archive, tmp_path / "dest", records=RECORDS)
    assert not (tmp_path / "dest" / FOLDER).exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(_members())[:-2000])
    with pytest.raises(DatasetError, match="damaged"):
        extract(archive, tmp_path / "dest", records=RECORDS)


# -- the named set ------------------------------------------------------------------------
def test_local_archive_is_found_extracted_and_split(tmp_path):
    body = _tar(_members())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-binary.tar.gz").write_bytes(body)
    ds = load_cifar10(data_dir=tmp_path / "data", spec=_spec(body), download=False)
    assert ds.classes == CLASSES and ds.official_test
    assert (len(ds.train), len(ds.val), len(ds.test)) == (90, 10, 20)
    assert ds.train.X.shape[1:] == (32, 32, 3) and ds.train.X.dtype == np.uint8
    # the test split is test_batch.bin in file order
    _, raw = _records(RECORDS, seed=len(BATCH_FILES) - 1)
    np.testing.assert_array_equal(ds.test.y, raw[:, 0])
    np.testing.assert_array_equal(
        ds.test.X[3, 2, 7], raw[3, [1 + 2 * 32 + 7 + k * 1024 for k in range(3)]]
    )
    # validation: stratified (10 classes x 1) and seeded
    assert np.bincount(ds.val.y, minlength=10).tolist() == [1] * 10
    again = load_cifar10(data_dir=tmp_path / "data", spec=_spec(body), download=False)
    np.testing.assert_array_equal(again.val.X, ds.val.X)
    other = load_cifar10(data_dir=tmp_path / "data", spec=_spec(body), download=False, seed=1)
    assert not np.array_equal(other.val.X, ds.val.X)


def test_truncated_extracted_file_is_a_clear_error(tmp_path):
    body = _tar(_members())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-binary.tar.gz").write_bytes(body)
    load_cifar10(data_dir=tmp_path / "data", spec=_spec(body), download=False)
    f = tmp_path / "data" / FOLDER / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"data_batch_3\.bin.*truncated"):
        load_cifar10(data_dir=tmp_path / "data", spec=_spec(body), download=False)


def test_missing_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match=r"looked in .*cifar10.*--data-dir"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


class Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path.strip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    Handler.files = {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_md5_and_extracts_into_the_cache(server, tmp_path):
    url, handler = server
    body = _tar(_members())
    handler.files = {"good.tar.gz": body, "bad.tar.gz": body[:-1] + bytes([body[-1] ^ 1])}
    spec = _spec(body, urls=[f"{url}/bad.tar.gz", f"{url}/good.tar.gz"])
    ds = load_cifar10(spec=spec, progress=False, retries=0, backoff=0)
    cache = tmp_path / "cache" / "objrec" / "cifar10"
    assert ds.source == str((cache / FOLDER).resolve())
    assert (cache / "cifar-10-binary.tar.gz").read_bytes() == body
    assert len(ds.test) == RECORDS
    # found in the cache the next time, without a server
    again = load_cifar10(spec=CifarSpec(urls=(), records=RECORDS, val_size=10), download=False)
    np.testing.assert_array_equal(again.train.X, ds.train.X)


def test_wrong_checksum_truncated_and_server_down(server, tmp_path):
    url, handler = server
    body = _tar(_members())
    handler.files = {"a.tar.gz": body, "short.tar.gz": _tar(_members())[:-3000]}
    wrong = CifarSpec(urls=(f"{url}/a.tar.gz",), md5="0" * 32, records=RECORDS)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_cifar10(spec=wrong, progress=False, retries=0, backoff=0)
    assert not (tmp_path / "cache" / "objrec" / "cifar10" / "cifar-10-binary.tar.gz").exists()
    # a truncated archive served without a checksum to catch it: extraction refuses it
    short = CifarSpec(urls=(f"{url}/short.tar.gz",), md5=None, records=RECORDS)
    with pytest.raises(DatasetError, match="damaged"):
        load_cifar10(spec=short, progress=False, retries=0, backoff=0)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    down = _spec(body, urls=[f"http://127.0.0.1:{port}/a.tar.gz"])
    assert not (tmp_path / "cache" / "objrec" / "cifar10" / "cifar-10-binary.tar.gz").exists()
    with pytest.raises(DatasetError, match=r"download failed.*refused"):
        load_cifar10(spec=down, progress=False, retries=0, backoff=0)


def test_train_test_folder_gets_a_tenth_of_train_as_validation(tmp_path):
    """A JPEG copy as ``train/`` and ``test/`` folders: test kept, a stratified tenth of
    train to validation (5,000 of CIFAR-10's 50,000, as the named set)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 3)):
        for c in CLASSES[:2]:
            d = tmp_path / "jpg" / split / c
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.jpg")
    ds = load_dataset(tmp_path / "jpg", progress=False)
    assert ds.official_test and ds.image_shape == (32, 32, 3)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (18, 2, 6)
    assert np.bincount(ds.val.y).tolist() == [1, 1]


def test_data_info_cifar10(tmp_path, monkeypatch, capsys):
    from objrec.cli import main

    body = _tar(_members())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-binary.tar.gz").write_bytes(body)
    monkeypatch.setattr("objrec.data.named.CIFAR10", _spec(body))
    assert main(["data", "info", "cifar10", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "dataset   cifar10" in out
    assert "split     90 train / 10 val / 20 test  (test kept as published" in out
    assert "32x32 RGB: uint8 array (N, 32, 32, 3)" in out
    assert "automobile" in out
