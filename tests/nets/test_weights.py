"""--weights FILE|URL#sha256: local files, and downloads from a local HTTP server on 127.0.0.1."""

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

torch = pytest.importorskip("torch")

from objrec.errors import ModelFileError, ObjrecError  # noqa: E402
from objrec.nets import create_model  # noqa: E402
from objrec.nets import weights as W  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.hits.append(self.path)
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        first = sum(h == self.path for h in self.hits) == 1
        cut = mode == "short" or (mode == "flaky" and first)  # close the connection halfway
        rest = body[start:]
        self.wfile.write(rest[: len(rest) // 2] if cut else rest)


@pytest.fixture
def server():
    Handler.files, Handler.hits = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", Handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "weights-cache"
    monkeypatch.setenv("OBJREC_WEIGHTS_DIR", str(folder))
    return folder


def small_net(num_classes=10, seed=0):
    torch.manual_seed(seed)
    return create_model("simple_cnn", 1, num_classes, (28, 28))


def pth_bytes(state, tmp_path) -> bytes:
    f = tmp_path / "w.pth"
    torch.save(state, f)
    return f.read_bytes()


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_download_is_checked_cached_and_loaded(server, tmp_path, cache):
    url, handler = server
    src = small_net(seed=1)
    body = pth_bytes(src.state_dict(), tmp_path)
    handler.files["w.pth"] = body
    spec = f"{url}/ok/w.pth#sha256={hashlib.sha256(body).hexdigest()}"
    net = create_model("simple_cnn", 1, 10, (28, 28), weights=spec)
    assert same_weights(net, src) and net.init_weights["loaded"] == len(src.state_dict())
    assert "weights" not in net.model_args  # initial values, not architecture
    assert [p.name for p in cache.iterdir()] == [
        W.cached_path(spec.split("#")[0], W.parse_spec(spec)[1]).name
    ]
    create_model("simple_cnn", 1, 10, (28, 28), weights=spec)  # from the cache now
    assert handler.hits == ["/ok/w.pth"]


def test_a_broken_transfer_is_resumed(server, tmp_path):
    url, handler = server
    body = pth_bytes(small_net().state_dict(), tmp_path)
    handler.files["w.pth"] = body
    path = W.fetch(
        f"{url}/flaky/w.pth#{hashlib.sha256(body).hexdigest()}", backoff=0, progress=False
    )
    assert path.read_bytes() == body and len(handler.hits) == 2


def test_wrong_checksum_is_refused_and_not_cached(server, tmp_path, cache):
    url, handler = server
    handler.files["w.pth"] = pth_bytes(small_net().state_dict(), tmp_path)
    with pytest.raises(ModelFileError, match="SHA-256 .* expected " + "ab" * 32):
        create_model("simple_cnn", 1, 10, (28, 28), weights=f"{url}/ok/w.pth#sha256={'ab' * 32}")
    assert not any(cache.iterdir())


def test_truncated_download_says_where_to_put_the_file(server, tmp_path, cache):
    url, handler = server
    body = pth_bytes(small_net().state_dict(), tmp_path)
    handler.files["w.pth"] = body
    digest = hashlib.sha256(body).hexdigest()
    with pytest.raises(ModelFileError, match=r"broken transfer.*put it at .*weights-cache") as e:
        W.fetch(f"{url}/short/w.pth#sha256={digest}", retries=1, backoff=0, progress=False)
    assert digest[:16] in str(e.value)
    assert not any(p.is_file() and not p.name.endswith(".part") for p in cache.iterdir())


def test_server_down_is_a_clear_offline_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    spec = f"http://127.0.0.1:{port}/w.safetensors#sha256={'0' * 64}"
    with pytest.raises(ModelFileError, match=r"Offline\? .*put it at .*--weights FILE"):
        create_model("simple_cnn", 1, 10, (28, 28), weights=spec)


def test_url_needs_a_checksum_and_specs_are_parsed():
    with pytest.raises(ModelFileError, match="#sha256="):
        W.fetch("http://127.0.0.1:9/w.pth")
    with pytest.raises(ObjrecError, match="64 hex digits"):
        W.parse_spec("http://h/w.pth#sha256=1234")
    assert W.parse_spec("w.pth") == ("w.pth", None)
    assert W.parse_spec(f"http://h/w.pth#{'A' * 64}") == ("http://h/w.pth", "a" * 64)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_files_and_a_new_head_for_other_classes(tmp_path, suffix):
    src = small_net(seed=2)
    f = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(f))
    else:
        torch.save({"state_dict": src.state_dict(), "epoch": 3}, f)  # a training checkpoint
    assert same_weights(create_model("simple_cnn", 1, 10, (28, 28), weights=str(f)), src)
    torch.manual_seed(5)
    five = create_model("simple_cnn", 1, 5, (28, 28), weights=str(f))
    new = five.init_weights["new_head"]
    assert new and all(k.startswith("head.") for k in new)
    for k, v in five.state_dict().items():
        if k not in new:
            assert torch.equal(v, src.state_dict()[k]), k
    digest = W.sha256sum(f)
    assert create_model("simple_cnn", 1, 10, (28, 28), weights=f"{f}#sha256={digest}")
    with pytest.raises(ModelFileError, match="differs from the expected"):
        create_model("simple_cnn", 1, 10, (28, 28), weights=f"{f}#sha256={'1' * 64}")


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        create_model("simple_cnn", 1, 10, (28, 28), weights=str(tmp_path / "nope.pt"))
    other = tmp_path / "lenet.pt"
    torch.save(create_model("lenet5", 1, 10, (28, 28)).state_dict(), other)
    with pytest.raises(
        ModelFileError,
        match=r"do not fit simple_cnn: 4 wrong shape: features.0.weight .*unexpected",
    ):
        create_model("simple_cnn", 1, 10, (28, 28), weights=str(other))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="cannot be read"):
        create_model("simple_cnn", 1, 10, (28, 28), weights=str(junk))
    code = tmp_path / "code.pt"
    torch.save({"state_dict": small_net().state_dict(), "f": hashlib.sha256}, code)
    with pytest.raises(ModelFileError, match="weights_only"):  # refused: not plain tensors
        create_model("simple_cnn", 1, 10, (28, 28), weights=str(code))


def test_without_download_only_the_cache_serves_a_url(server, tmp_path, cache):
    url, handler = server
    body = pth_bytes(small_net().state_dict(), tmp_path)
    handler.files["w.pth"] = body
    spec = f"{url}/ok/w.pth#sha256={hashlib.sha256(body).hexdigest()}"
    with pytest.raises(ModelFileError, match="never downloads"):
        W.fetch(spec, download=False)
    assert handler.hits == []  # the server was not asked
    got = W.fetch(spec)  # downloaded and cached
    assert W.fetch(spec, download=False) == got and handler.hits == ["/ok/w.pth"]
