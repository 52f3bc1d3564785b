"""A real Triton Inference Server (the binary nvidia-pytriton ships) serving objrec's
predictor, queried with Triton's own client. pytriton needs numpy < 2, so it lives in its
own environment (``make triton-env``; ``make test-triton`` runs this file there)."""

import importlib.util
import socket

import numpy as np
import pytest

if importlib.util.find_spec("pytriton") is None or importlib.util.find_spec("tritonclient") is None:
    pytest.skip(
        "nvidia-pytriton / tritonclient not installed: pytriton needs numpy<2, so it lives in "
        "its own environment (make triton-env; make test-triton)",
        allow_module_level=True,
    )


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def served(cnn):
    """(predictor, model name, HTTP url) of a running Triton server for ``cnn``."""
    import os

    from pytriton.triton import Triton

    from objrec.serving import triton_server as ts
    from objrec.serving.predictor import Predictor

    lib = ts.python_lib_dir()  # the server binary loads libpython from there
    old = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = lib + (f":{old}" if old else "")
    predictor = Predictor(cnn, backend="onnxruntime", threads=1)
    http, grpc, metrics = _free_ports(3)
    try:
        with Triton(
            config=ts.triton_config(
                http_port=http, grpc_port=grpc, metrics_port=metrics, exit_timeout_s=2
            )
        ) as triton:
            name = ts.bind(triton, predictor)
            triton.run()
            yield predictor, name, f"127.0.0.1:{http}"
    finally:
        if old is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = old


def test_triton_answers_the_predictors_probabilities(served, digits_16):
    import tritonclient.http as tc

    predictor, name, url = served
    _, _, X, _ = digits_16
    client = tc.InferenceServerClient(url, concurrency=12)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    meta = client.get_model_metadata(name)
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 16, 16]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    batch = np.ascontiguousarray(X[:37])
    inp = tc.InferInput("images", list(batch.shape), "UINT8")
    inp.set_data_from_numpy(batch)
    got = client.infer(name, [inp]).as_numpy("probabilities")
    ref = predictor.predict_proba(batch)
    assert got.shape == (37, 10) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1e-5
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    # concurrent single-image requests: Triton's dynamic batcher may merge them; each
    # answer must still be that image's own
    pending = []
    for i in range(12):
        one = tc.InferInput("images", [1, 16, 16], "UINT8")
        one.set_data_from_numpy(np.ascontiguousarray(X[i : i + 1]))
        pending.append(client.async_infer(name, [one]))
    answers = np.concatenate([p.get_result().as_numpy("probabilities") for p in pending])
    assert np.abs(answers - ref[:12]).max() <= 1e-5


def test_triton_refuses_a_wrong_shape(served, digits_16):
    import tritonclient.http as tc
    from tritonclient.utils import InferenceServerException

    _, name, url = served
    client = tc.InferenceServerClient(url)
    wrong = np.zeros((1, 8, 8), np.uint8)
    inp = tc.InferInput("images", list(wrong.shape), "UINT8")
    inp.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException, match="shape"):
        client.infer(name, [inp])


def test_objrec_serve_engine_triton(cnn_model_dir, digits_16):
    """The user's command, ``objrec serve MODEL --engine triton``, with no LD_LIBRARY_PATH
    set by hand: a Triton client gets the model's probabilities."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import tritonclient.http as tc

    import objrec
    from objrec.serving.predictor import Predictor

    port = _free_ports(1)[0]
    while port > 65533:
        port = _free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    cmd = [sys.executable, "-m", "objrec", "serve", str(cnn_model_dir), "--engine", "triton"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--threads", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = tc.InferenceServerClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.is_model_ready("simple_cnn"):
                    break
            except Exception:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "Triton did not become ready"
            time.sleep(0.5)
        _, _, X, _ = digits_16
        inp = tc.InferInput("images", [8, 16, 16], "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(X[:8]))
        got = client.infer("simple_cnn", [inp]).as_numpy("probabilities")
        ref = Predictor(objrec.load(cnn_model_dir), backend="onnxruntime").predict_proba(X[:8])
        assert np.abs(got - ref).max() <= 1e-5
        client.close()  # an open connection holds Triton's exit for its timeout (30 s)
    finally:
        proc.send_signal(signal.SIGTERM)  # kill, systemd, docker stop
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # the Triton server process went with it (its workspace folder names the port)
    left = subprocess.run(
        ["pgrep", "-f", f"tritonserver .*--http-port {port}"], capture_output=True
    )
    assert proc.returncode == 0 and left.stdout == b""
