import csv
import io
import json

import numpy as np
import pytest

from objrec.cli import main

from .helpers import png_bytes


@pytest.fixture
def image_tree(tmp_path, digits_16):
    X = digits_16[2]
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "imgs" / "a.png").write_bytes(png_bytes(X[0]))
    # a colour image at another size: converted by the model's preprocessing
    big = np.repeat(np.kron(X[1], np.ones((4, 4), np.uint8))[..., None], 3, axis=-1)
    (tmp_path / "imgs" / "sub" / "b.png").write_bytes(png_bytes(big))
    (tmp_path / "imgs" / "sub" / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "imgs" / "c.png").write_bytes(png_bytes(X[2]))
    return tmp_path / "imgs"


def test_predict_table_json_csv(cnn_model_dir, cnn, image_tree, digits_16, capsys):
    X = digits_16[2]
    rc = main(["predict", str(cnn_model_dir), str(image_tree), "--top-k", "3"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert rc == 1 and "1 of 4 files could not be read" in err  # the batch went on
    assert len(lines) == 4
    assert any("broken.png  ERROR:" in line for line in lines)
    a_line = next(line for line in lines if line.startswith(str(image_tree / "a.png")))
    assert a_line.split()[1] == f"digit-{cnn.predict(X[:1])[0]}"

    rc = main(
        [
            "predict",
            str(cnn_model_dir),
            str(image_tree / "*.png"),
            "--format",
            "json",
            "--top-k",
            "99",
        ]
    )
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [r["path"].rsplit("/", 1)[1] for r in recs] == ["a.png", "c.png"]
    assert all(len(r["top_k"]) == 10 for r in recs)  # capped at the class count
    ref = cnn.predict_proba(X[[0, 2]])
    for r, p in zip(recs, ref, strict=True):
        assert r["top_k"][0]["index"] == int(p.argmax())
        assert abs(r["top_k"][0]["probability"] - p.max()) < 1e-5

    rc = main(
        [
            "predict",
            str(cnn_model_dir),
            str(image_tree),
            "--format",
            "csv",
            "--top-k",
            "2",
            "--batch-size",
            "1",
        ]
    )
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == [
        "path",
        *("label_1", "probability_1", "label_2", "probability_2"),
        *("label", "max_probability", "error"),
    ]
    assert len(rows) == 5 and sum(bool(r[-1]) for r in rows[1:]) == 1


def test_predict_missing_file_and_bad_model(cnn_model_dir, tmp_path, capsys):
    assert main(["predict", str(cnn_model_dir), str(tmp_path / "nope.png")]) == 1
    assert "nope.png" in capsys.readouterr().out
    assert main(["predict", str(tmp_path), "x.png"]) == 2
    assert "not an objrec model" in capsys.readouterr().err


def test_info(cnn_model_dir, capsys):
    assert main(["info", str(cnn_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "simple_cnn" in out and "10: digit-0, digit-1" in out and "16 x 16 (grey)" in out
    assert main(["info", str(cnn_model_dir), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["method"] == "simple_cnn" and meta["class_names"][0] == "digit-0"


def test_export_cli_onnx_torchscript(cnn_model_dir, logreg_model_dir, image_tree, tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    rc = main(
        [
            "export",
            str(cnn_model_dir),
            "-o",
            str(out),
            "--dynamic-batch",
            "--check-data",
            str(image_tree),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "onnxruntime: ok" in text and "opencv-dnn: ok" in text
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["checks"][0]["passed"] and side["input"]["dtype"] == "uint8"
    assert ort.InferenceSession(str(out)).get_inputs()[0].shape[1:] == [16, 16]
    # default check data: the test split of the dataset named in the metadata (digits)
    rc = main(["export", str(cnn_model_dir), "--format", "torchscript", "--check-size", "64"])
    assert rc == 0 and (cnn_model_dir / "model.pt").is_file()
    assert "torchscript: ok on 64 images" in capsys.readouterr().out
    # a classic pipeline without a dataset in its metadata needs --check-data
    assert main(["export", str(logreg_model_dir)]) == 2
    assert "--check-data" in capsys.readouterr().err
    assert main(["export", str(logreg_model_dir), "--check-data", str(image_tree)]) == 0
    assert (logreg_model_dir / "model.onnx").is_file()


def test_predict_a_file_that_crashes_pillow_is_one_error_line(cnn_model_dir, image_tree, capsys):
    from crafted_files import tiff_with_fractional_strip_offsets

    (image_tree / "evil.tif").write_bytes(tiff_with_fractional_strip_offsets())
    rc = main(["predict", str(cnn_model_dir), str(image_tree), "--batch-size", "2"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert rc == 1 and "2 of 5 files could not be read" in err and "Traceback" not in out + err
    assert len(lines) == 5
    (evil,) = [line for line in lines if "evil.tif" in line]
    assert "ERROR:" in evil and "TypeError" in evil
    assert sum("ERROR:" in line for line in lines) == 2  # evil.tif and broken.png only


@pytest.fixture
def serve_calls(monkeypatch, cnn_model_dir):
    """Runs ``objrec serve`` with its uvicorn call replaced: what it was called with, and the
    environment the worker processes would inherit."""
    import os

    from objrec.commands import serve as serve_cmd
    from objrec.serving import app as appmod
    from objrec.serving import protocol

    calls = []
    monkeypatch.setattr(
        serve_cmd,
        "_run_server",
        lambda *a, **k: calls.append(
            (a, k, os.environ.get(appmod.ENV_API_KEY), os.environ.get(protocol.ENV_REQUEST_TIMEOUT))
        ),
    )
    names = ("MODEL", "API_KEY", "BACKEND", "THREADS", "LIMITS", "REJECT_BELOW")
    for var in (*(getattr(appmod, f"ENV_{n}") for n in names), protocol.ENV_REQUEST_TIMEOUT):
        monkeypatch.setenv(var, "")  # recorded, so what serve sets is undone afterwards
        monkeypatch.delenv(var)
    return lambda *extra: (
        main(["serve", str(cnn_model_dir), *extra]),
        calls[-1] if calls else None,
    )


def test_serve_keeps_the_api_key_from_the_environment(serve_calls, monkeypatch, capsys):
    monkeypatch.setenv("OBJREC_SERVE_API_KEY", "from-env")
    rc, (_, kw, key, _) = serve_calls()
    assert rc == 0 and key == "from-env"
    assert kw["http"] == "objrec.serving.protocol:TimeoutHttpToolsProtocol"
    out, err = capsys.readouterr()
    assert "API key required" in out and "warning" not in err


def test_serve_api_key_file_and_argument(serve_calls, tmp_path, monkeypatch, capsys):
    f = tmp_path / "key"
    f.write_text("from-file\n")
    f.chmod(0o600)
    rc, (_, _, key, timeout) = serve_calls("--api-key-file", str(f), "--request-timeout", "2.5")
    assert rc == 0 and key == "from-file" and timeout == "2.5"
    assert "warning" not in capsys.readouterr().err
    f.chmod(0o644)
    assert serve_calls("--api-key-file", str(f))[1][2] == "from-file"
    assert "readable by other users" in capsys.readouterr().err
    rc, (_, _, key, _) = serve_calls("--api-key", "on-the-line")
    assert rc == 0 and key == "on-the-line"
    assert "ps" in capsys.readouterr().err  # warned: visible to every local user
    monkeypatch.delenv("OBJREC_SERVE_API_KEY")  # set by the call above, for its workers
    rc, (_, _, key, _) = serve_calls()
    assert key is None and "no API key" in capsys.readouterr().out


def test_serve_refuses_a_bad_key_file(serve_calls, tmp_path, capsys):
    (tmp_path / "empty").write_text("\n")
    assert serve_calls("--api-key-file", str(tmp_path / "empty"))[0] == 2
    assert "empty" in capsys.readouterr().err
    assert serve_calls("--api-key-file", str(tmp_path / "missing"))[0] == 2
    assert "cannot read" in capsys.readouterr().err
    assert serve_calls("--request-timeout", "0")[0] == 2


def test_serve_reject_below_quiet_and_access_log(serve_calls, capsys):
    import os

    from objrec.serving import app as appmod

    rc, (_, kw, _, _) = serve_calls("--reject-below", "0.4")
    assert rc == 0 and os.environ[appmod.ENV_REJECT_BELOW] == "0.4"
    assert kw["access_log"] is True and kw["log_level"] == "info"
    assert kw["ready"].startswith("objrec: serving ")  # printed by the server once listening
    assert "objrec: serving" not in capsys.readouterr().out  # not before
    rc, (_, kw, _, _) = serve_calls("--quiet")
    assert rc == 0 and kw["access_log"] is False and kw["log_level"] == "warning"
    assert appmod.ENV_REJECT_BELOW not in os.environ
    assert serve_calls("--reject-below", "2")[0] == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_serve_engine_triton_refuses_objrec_only_options(cnn_model_dir, capsys, monkeypatch):
    """Options only objrec's own server has are refused with --engine triton, before
    anything starts (an API key Triton would silently not check above all)."""
    monkeypatch.delenv("OBJREC_SERVE_API_KEY", raising=False)
    for extra, name in (
        (["--max-images", "3"], "--max-images"),
        (["--api-key", "k"], "--api-key"),
        (["--workers", "2"], "--workers"),
        (["--reject-below", "0.5"], "--reject-below"),
    ):
        assert main(["serve", str(cnn_model_dir), "--engine", "triton", *extra]) == 2
        assert f"--engine triton does not take {name}" in capsys.readouterr().err
    monkeypatch.setenv("OBJREC_SERVE_API_KEY", "secret")
    assert main(["serve", str(cnn_model_dir), "--engine", "triton"]) == 2
    assert "Triton has no API key check" in capsys.readouterr().err
