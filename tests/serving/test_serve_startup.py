"""`objrec serve` as a user runs it: the start-up line comes when the port accepts
connections, uvicorn's access log is on by default and --quiet silences it."""

import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``objrec serve`` in a subprocess, its output lines collected by a thread."""

    def __init__(self, model_dir, *extra):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "objrec",
                "serve",
                str(model_dir),
                "--port",
                str(self.port),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed; output so far: {self.seen}")

    def stop(self) -> list[str]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen


def test_ready_line_when_listening_and_access_log(cnn_model_dir):
    s = Served(cnn_model_dir)
    try:
        s.wait_for("objrec: loading")
        line = s.wait_for("objrec: serving")
        assert s.url + "/" in line
        # no retry: the line means the port accepts connections and the model is loaded
        r = httpx.get(s.url + "/v1/health", timeout=5)
        assert r.status_code == 200
        assert '"GET /v1/health HTTP/1.1" 200' in s.wait_for("/v1/health", timeout=10)
    finally:
        s.stop()


def test_quiet_has_no_access_log(cnn_model_dir):
    s = Served(cnn_model_dir, "--quiet")
    try:
        s.wait_for("objrec: serving")
        assert httpx.get(s.url + "/v1/health", timeout=5).status_code == 200
        assert httpx.get(s.url + "/favicon.ico", timeout=5).status_code == 200
        time.sleep(0.3)
    finally:
        out = s.stop()
    assert not any("/v1/health" in line or "favicon" in line for line in out), out
