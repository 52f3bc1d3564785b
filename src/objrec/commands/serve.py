"""``objrec serve MODEL``: a REST server (FastAPI + uvicorn) with a web page at /."""

from __future__ import annotations

import sys

from objrec.cli_types import port, positive_float, positive_int, probability


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a trained model over HTTP (REST API and a web page)",
        description="Serve a model: POST /v1/predict (a classifier) or POST /v1/segment (a "
        "segmenter: masks as PNG, objects as JSON), GET /v1/health, GET /v1/model, OpenAPI "
        "docs at /docs and a web page at / to upload or draw an image. Binds to 127.0.0.1 "
        "unless --host says otherwise. With an API key (environment variable "
        "OBJREC_SERVE_API_KEY, --api-key-file or --api-key), /v1/predict, /v1/segment and "
        "/v1/model need it; /v1/health, /, /docs and /openapi.json stay open.",
    )
    p.add_argument("model", metavar="MODEL", help="run folder or model folder")
    p.add_argument(
        "--engine",
        choices=("objrec", "triton"),
        default="objrec",
        help="objrec: this REST server (/v1 and the Open Inference Protocol /v2); triton: "
        "NVIDIA's Triton Inference Server through nvidia-pytriton (HTTP /v2 on --port, gRPC "
        "on --port + 1, metrics on --port + 2; its own environment: make triton-env)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=port, default=8000, help="TCP port, 1-65535 (default 8000)")
    p.add_argument("--workers", type=positive_int, default=1, help="server processes")
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-file",
        default=None,
        metavar="FILE",
        help="require the key in FILE (first line) as X-API-Key or Bearer token",
    )
    key.add_argument(
        "--api-key",
        default=None,
        help="require this key; other local users see it with ps: prefer the environment "
        "variable OBJREC_SERVE_API_KEY or --api-key-file",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "native"),
        default="auto",
        help="auto: ONNX Runtime when the model exports, else the estimator itself",
    )
    p.add_argument(
        "--threads", type=positive_int, default=None, help="inference threads per worker"
    )
    p.add_argument(
        "--max-body-mb", type=positive_float, default=10.0, help="largest request body, MiB"
    )
    p.add_argument(
        "--max-pixels", type=positive_int, default=None, help="largest image, width x height"
    )
    p.add_argument(
        "--max-total-pixels",
        type=positive_int,
        default=None,
        help="most pixels of all images in one request together (default: --max-pixels' "
        "default, 40 million)",
    )
    p.add_argument("--max-images", type=positive_int, default=None, help="most images per request")
    p.add_argument(
        "--request-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="close connections whose client takes longer than this to send its headers, "
        "or pauses longer than this within its body (default 30)",
    )
    p.add_argument(
        "--reject-below",
        type=probability,
        default=None,
        metavar="P",
        help="answer label 'unknown' when the top probability is below P (0..1); the top-k "
        "and the score (ood.max_probability) are still returned",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no access log (one line per request, on by default) and only warnings from uvicorn",
    )
    p.add_argument(
        "--log-level",
        default=None,
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn's log level (default info)",
    )
    p.set_defaults(func=run)


def api_key_from(args, environ) -> str | None:
    """The API key: ``--api-key-file``'s first line, ``--api-key``, or ``OBJREC_SERVE_API_KEY``
    (in that order); None when none is given. Refuses an empty or unreadable key file."""
    import os
    import stat
    from pathlib import Path

    from objrec.errors import ObjrecError
    from objrec.serving.app import ENV_API_KEY

    if args.api_key_file:
        path = Path(args.api_key_file)
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as e:
            raise ObjrecError(f"--api-key-file {path}: cannot read it ({e})") from e
        lines = text.strip().splitlines()
        key = lines[0].strip() if lines else ""
        if not key:
            raise ObjrecError(f"--api-key-file {path}: the file is empty; write the key in it")
        if os.name == "posix" and mode & (stat.S_IRGRP | stat.S_IROTH):
            print(
                f"objrec: warning: {path} is readable by other users; chmod 600 {path}",
                file=sys.stderr,
            )
        return key
    if args.api_key:
        print(
            "objrec: warning: --api-key shows the key to every local user (ps); set "
            f"{ENV_API_KEY} or use --api-key-file instead",
            file=sys.stderr,
        )
        return args.api_key
    return environ.get(ENV_API_KEY) or None


def run(args) -> int:
    import json
    import os

    from objrec.artifact import resolve
    from objrec.cpu import usable_cores
    from objrec.errors import ObjrecError
    from objrec.serving import app as appmod
    from objrec.serving.ood import check_threshold

    folder = resolve(args.model)  # fail early, with a clear message, on a wrong path
    if args.engine == "triton":
        return _run_triton(args, folder)
    reject_below = check_threshold(args.reject_below)
    if args.workers < 1:
        raise ObjrecError(f"--workers must be at least 1, got {args.workers}")
    if args.request_timeout is not None and not args.request_timeout > 0:
        raise ObjrecError(f"--request-timeout must be above 0 s, got {args.request_timeout}")
    try:
        import uvicorn  # noqa: F401 (checked here, used by _run_server)
    except ImportError as e:
        raise ObjrecError("serving needs uvicorn and fastapi: pip install 'objrec[serve]'") from e
    try:
        from objrec.serving import protocol
    except ImportError as e:
        raise ObjrecError("serving needs httptools: pip install 'objrec[serve]'") from e
    api_key = api_key_from(args, os.environ)
    threads = args.threads or max(1, usable_cores() // args.workers)
    limits = {"max_body_bytes": int(args.max_body_mb * 1024 * 1024)}
    for name in ("max_pixels", "max_total_pixels", "max_images"):
        if getattr(args, name):
            limits[name] = getattr(args, name)
    # the worker processes build their app from these (the key travels in the environment,
    # which only this user can read, not on a command line)
    os.environ[appmod.ENV_MODEL] = str(folder)
    os.environ[appmod.ENV_BACKEND] = args.backend
    os.environ[appmod.ENV_THREADS] = str(threads)
    os.environ[appmod.ENV_LIMITS] = json.dumps(limits)
    if api_key:
        os.environ[appmod.ENV_API_KEY] = api_key
    else:
        os.environ.pop(appmod.ENV_API_KEY, None)
    if args.request_timeout is not None:
        os.environ[protocol.ENV_REQUEST_TIMEOUT] = str(args.request_timeout)
    if reject_below is not None:
        os.environ[appmod.ENV_REJECT_BELOW] = str(reject_below)
    else:
        os.environ.pop(appmod.ENV_REJECT_BELOW, None)
    auth = "API key required" if api_key else "no API key"
    print(f"objrec: loading {folder} ({auth}) ...", flush=True)
    level = args.log_level or ("warning" if args.quiet else "info")
    _run_server(
        "objrec.serving.app:app_from_env",
        ready=f"objrec: serving {folder} on http://{args.host}:{args.port}/ "
        f"(docs at /docs; {auth}; Ctrl+C stops it)",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=level,
        access_log=level in ("trace", "debug", "info"),  # access lines are logged at info
        http="objrec.serving.protocol:TimeoutHttpToolsProtocol",
    )
    return 0


#: Options of the objrec engine that Triton's does not have: refused with --engine triton.
_NOT_FOR_TRITON = (
    "api_key_file",
    "api_key",
    "max_pixels",
    "max_total_pixels",
    "max_images",
    "request_timeout",
    "reject_below",
)


def _run_triton(args, folder) -> int:
    """``objrec serve --engine triton``: the model's predictor behind a Triton server
    (:mod:`objrec.serving.triton_server`), until Ctrl+C."""
    import os

    from objrec.cpu import usable_cores
    from objrec.errors import ObjrecError
    from objrec.serving.app import ENV_API_KEY

    given = [n for n in _NOT_FOR_TRITON if getattr(args, n, None) is not None]
    if args.workers != 1:
        given.append("workers")
    if given:
        names = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ObjrecError(f"--engine triton does not take {names} (objrec's own server does)")
    if os.environ.get(ENV_API_KEY):
        raise ObjrecError(
            f"{ENV_API_KEY} is set, but Triton has no API key check: unset it, or put the "
            "Triton server behind a proxy that checks the key"
        )
    if not args.port <= 65533:
        raise ObjrecError(f"--engine triton uses --port to --port + 2; {args.port} is too high")
    try:
        from pytriton.triton import Triton
    except ImportError as e:
        raise ObjrecError(
            f"--engine triton needs nvidia-pytriton ({e}); it needs numpy<2, so it lives in "
            "its own environment: make triton-env, then .venv-triton/bin/objrec serve ..."
        ) from e
    from objrec.serving import triton_server as ts
    from objrec.serving.predictor import Predictor

    # the server binary pytriton starts loads this Python's libpython from LD_LIBRARY_PATH
    lib = ts.python_lib_dir()
    old = os.environ.get("LD_LIBRARY_PATH", "")
    if lib not in old.split(":"):
        os.environ["LD_LIBRARY_PATH"] = lib + (f":{old}" if old else "")
    predictor = Predictor.from_path(
        folder, backend=args.backend, threads=args.threads or usable_cores()
    )
    config = ts.triton_config(
        host=args.host, http_port=args.port, grpc_port=args.port + 1, metrics_port=args.port + 2
    )
    import signal

    # SIGTERM (kill, systemd, docker stop) leaves the `with` below as Ctrl+C does, so the
    # Triton server process is stopped too instead of left running without its proxy
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"objrec: starting Triton for {folder} ...", flush=True)
    with Triton(config=config) as triton:
        name = ts.bind(triton, predictor)
        triton.run()
        print(
            f"objrec: Triton serves model {name!r} on http://{args.host}:{args.port}/v2 "
            f"(gRPC {args.host}:{args.port + 1}, metrics :{args.port + 2}; Ctrl+C stops it)",
            flush=True,
        )
        triton.serve()
    return 0


def _run_server(app: str, *, ready: str, **kw) -> None:
    """Run uvicorn with ``kw`` (``uvicorn.run``'s arguments) and print ``ready`` when the
    server listens: after the model is loaded, when the port accepts connections."""
    import uvicorn

    from objrec.errors import ObjrecError

    if kw.get("workers", 1) == 1:
        server = _server_class()(uvicorn.Config(app, **kw), ready)
        server.run()
        if not server.started:
            raise ObjrecError(
                f"the server did not start on {kw.get('host')}:{kw.get('port')} "
                "(uvicorn's reason is above)"
            )
        return
    # several worker processes: uvicorn's supervisor binds the socket and each worker
    # listens on it once its model is loaded; announce when the first one accepts
    import threading

    threading.Thread(
        target=_announce_when_listening, args=(kw["host"], kw["port"], ready), daemon=True
    ).start()
    uvicorn.run(app, **kw)


def _announce(line: str) -> None:
    print(line, flush=True)


def _announce_when_listening(host: str, port: int, line: str, timeout: float = 600) -> None:
    """Print ``line`` once a TCP connection to ``host:port`` succeeds."""
    import socket
    import time

    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((target, port), timeout=1):
                _announce(line)
                return
        except OSError:
            time.sleep(0.1)


def _server_class():
    """uvicorn.Server printing a line once it is listening (uvicorn imported on first use)."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server printing objrec's start-up line once it is listening (after the
        model is loaded and the socket accepts connections), not before."""

        def __init__(self, config, line: str):
            super().__init__(config)
            self._line = line

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                _announce(self._line)

    return AnnouncingServer
