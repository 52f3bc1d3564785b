"""The download path against a local HTTP server on 127.0.0.1 serving hand-built IDX files."""

import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from objrec.data.download import download
from objrec.data.idx import write_idx
from objrec.data.named import IDX_FILES, IdxSpec, load_idx_set
from objrec.errors import DatasetError


class Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[dict[str, int]] = {}
    ranges: ClassVar[list[str]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        mode, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        n = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if mode == "bad":
            body = body[:-1] + bytes([body[-1] ^ 1])
        start = 0
        rng = self.headers.get("Range")
        if rng:
            self.ranges.append(rng)
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = mode == "short" or (mode in ("flaky", "norange") and n == 1)
        self.wfile.write(body[start : start + (len(body) - start) // 2] if cut else body[start:])


@pytest.fixture
def server():
    Handler.files, Handler.hits, Handler.ranges = {}, {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now: connection refused
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def tiny_set(tmp_path):
    """A 30/10 IDX set with 3 classes, as the four .gz files and their MD5s."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    arrays = {
        IDX_FILES[0]: rng.integers(0, 256, (30, 4, 5), dtype=np.uint8),
        IDX_FILES[1]: np.arange(30, dtype=np.uint8) % 3,
        IDX_FILES[2]: rng.integers(0, 256, (10, 4, 5), dtype=np.uint8),
        IDX_FILES[3]: np.arange(10, dtype=np.uint8) % 3,
    }
    files, md5 = {}, {}
    for stem, a in arrays.items():
        p = write_idx(src / (stem + ".gz"), a)
        files[p.name] = p.read_bytes()
        md5[p.name] = hashlib.md5(files[p.name]).hexdigest()
    return files, md5, arrays


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("OBJREC_DATA_DIR", raising=False)
    return tmp_path / "cache" / "objrec"


def spec_for(md5, *mirrors):
    return IdxSpec("tiny", ("a", "b", "c"), tuple(mirrors), md5)


def test_good_download_lands_in_user_cache(server, tiny_set, isolated_cache, dead_url):
    url, h = server
    files, md5, arrays = tiny_set
    h.files = files
    # the first mirror is down: the second serves the files
    ds = load_idx_set(
        "tiny",
        spec=spec_for(md5, dead_url + "/good/", url + "/good/"),
        progress=False,
        backoff=0,
        retries=0,
    )
    folder = isolated_cache / "tiny"
    assert ds.source == str(folder.resolve())
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no .part left behind
    assert (len(ds.train), len(ds.val), len(ds.test)) == (27, 3, 10)
    np.testing.assert_array_equal(ds.test.X, arrays[IDX_FILES[2]])
    # found in the cache the second time: no new requests
    before = dict(h.hits)
    load_idx_set("tiny", spec=spec_for(md5, url + "/good/"), progress=False)
    assert h.hits == before


def test_broken_transfer_is_resumed_with_range(server, tiny_set, isolated_cache):
    url, h = server
    files, md5, _ = tiny_set
    h.files = files
    name = IDX_FILES[0] + ".gz"
    out = download(
        [f"{url}/flaky/{name}"], isolated_cache / name, md5=md5[name], backoff=0, progress=False
    )
    assert out.read_bytes() == files[name]
    assert h.hits[f"/flaky/{name}"] == 2
    assert h.ranges == [f"bytes={len(files[name]) // 2}-"]


def test_server_ignoring_range_restarts_cleanly(server, tiny_set, isolated_cache):
    url, h = server
    files, md5, _ = tiny_set
    h.files = files
    name = IDX_FILES[0] + ".gz"
    out = download(
        [f"{url}/norange/{name}"], isolated_cache / name, md5=md5[name], backoff=0, progress=False
    )
    assert out.read_bytes() == files[name]


def test_always_truncated_gives_up_and_leaves_nothing(server, tiny_set, isolated_cache):
    url, h = server
    files, md5, _ = tiny_set
    h.files = files
    name = IDX_FILES[0] + ".gz"
    dest = isolated_cache / name
    with pytest.raises(DatasetError, match=r"could not download .*broken transfer"):
        download([f"{url}/short/{name}"], dest, md5=md5[name], retries=2, backoff=0, progress=False)
    assert h.hits[f"/short/{name}"] == 3
    assert not dest.exists() and not list(isolated_cache.glob("*.part"))


def test_truncated_file_without_checksum_fails_validation(server, tiny_set, isolated_cache):
    """A mirror serving a short file (complete transfer, wrong content) is caught by the IDX reader."""
    url, h = server
    files, _, _ = tiny_set
    h.files = {
        k: (gzip.compress(gzip.decompress(v)[:-7]) if k == IDX_FILES[2] + ".gz" else v)
        for k, v in files.items()
    }
    with pytest.raises(
        DatasetError,
        match=r"t10k-images-idx3-ubyte.gz: header says 10x4x5 = 200 bytes, file holds 193",
    ):
        load_idx_set("tiny", spec=spec_for({}, url + "/good/"), progress=False)


def test_checksum_mismatch_tries_next_mirror_then_fails(server, tiny_set, isolated_cache):
    url, h = server
    files, md5, _ = tiny_set
    h.files = files
    name = IDX_FILES[1] + ".gz"
    with pytest.raises(
        DatasetError,
        match=rf"{url}/bad/{name}: checksum mismatch \(MD5 [0-9a-f]{{32}}, expected {md5[name]}\)",
    ):
        download([f"{url}/bad/{name}"], isolated_cache / name, md5=md5[name], progress=False)
    assert not (isolated_cache / name).exists()
    out = download(
        [f"{url}/bad/{name}", f"{url}/good/{name}"],
        isolated_cache / name,
        md5=md5[name],
        progress=False,
    )
    assert out.read_bytes() == files[name]


def test_offline_error_says_where_it_looked_and_how_to_fix(
    tmp_path, tiny_set, dead_url, monkeypatch
):
    _, md5, _ = tiny_set
    monkeypatch.setenv("OBJREC_DATA_DIR", str(tmp_path / "envdir"))
    with pytest.raises(DatasetError) as e:
        load_idx_set(
            "tiny",
            spec=spec_for(md5, dead_url + "/"),
            data_dir=tmp_path / "mine",
            progress=False,
            retries=1,
            backoff=0,
        )
    msg = str(e.value)
    assert "\n" not in msg
    for part in (
        str(tmp_path / "mine"),
        str(tmp_path / "envdir"),
        str(tmp_path / "cache" / "objrec" / "tiny"),
        "/usr/share/datasets/tiny",
        "download failed",
        "Connection refused",
        "--data-dir",
        "OBJREC_DATA_DIR",
    ):
        assert part in msg
    with pytest.raises(DatasetError, match=r"files not found \(looked in .*\); put the four files"):
        load_idx_set("tiny", spec=spec_for(md5, dead_url + "/"), download=False)


def test_lookup_order_and_uncompressed_names(tmp_path, tiny_set, isolated_cache, monkeypatch):
    _, _, arrays = tiny_set
    env = tmp_path / "env"
    mine = tmp_path / "mine"
    for folder, compress in ((env / "tiny", False), (mine, True)):
        for stem, a in arrays.items():
            write_idx(folder / (stem + (".gz" if compress else "")), a)
    monkeypatch.setenv("OBJREC_DATA_DIR", str(env))
    spec = spec_for({}, "http://127.0.0.1:9/")
    assert load_idx_set("tiny", spec=spec, data_dir=mine, download=False).source == str(
        mine.resolve()
    )
    # without data_dir: $OBJREC_DATA_DIR/<name>, holding uncompressed files
    assert load_idx_set("tiny", spec=spec, download=False).source == str((env / "tiny").resolve())
    # data_dir given but empty: falls through to the next place
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_idx_set("tiny", spec=spec, data_dir=empty, download=False).source == str(
        (env / "tiny").resolve()
    )
