"""``objrec serve MODEL``: a REST server (FastAPI + uvicorn) with a web page at /."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a trained model over HTTP (REST API and a web page)",
        description="Serve a model: POST /v1/predict, GET /v1/health, GET /v1/model, OpenAPI "
        "docs at /docs and a web page at / to upload or draw an image. Binds to 127.0.0.1 "
        "unless --host says otherwise.",
    )
    p.add_argument("model", metavar="MODEL", help="run folder or model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument("--api-key", default=None, help="require this key (X-API-Key or Bearer)")
    p.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "native"),
        default="auto",
        help="auto: ONNX Runtime when the model exports, else the estimator itself",
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads per worker")
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest request body, MiB")
    p.add_argument("--max-pixels", type=int, default=None, help="largest image, width x height")
    p.add_argument("--max-images", type=int, default=None, help="most images per request")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import os

    from objrec.artifact import resolve
    from objrec.cpu import usable_cores
    from objrec.errors import ObjrecError
    from objrec.serving import app as appmod

    folder = resolve(args.model)  # fail early, with a clear message, on a wrong path
    if args.workers < 1:
        raise ObjrecError(f"--workers must be at least 1, got {args.workers}")
    try:
        import uvicorn
    except ImportError as e:
        raise ObjrecError("serving needs uvicorn and fastapi: pip install 'objrec[serve]'") from e
    threads = args.threads or max(1, usable_cores() // args.workers)
    limits = {"max_body_bytes": int(args.max_body_mb * 1024 * 1024)}
    if args.max_pixels:
        limits["max_pixels"] = args.max_pixels
    if args.max_images:
        limits["max_images"] = args.max_images
    os.environ[appmod.ENV_MODEL] = str(folder)
    os.environ[appmod.ENV_BACKEND] = args.backend
    os.environ[appmod.ENV_THREADS] = str(threads)
    os.environ[appmod.ENV_LIMITS] = json.dumps(limits)
    if args.api_key:
        os.environ[appmod.ENV_API_KEY] = args.api_key
    else:
        os.environ.pop(appmod.ENV_API_KEY, None)
    print(f"objrec: serving {folder} on http://{args.host}:{args.port}/ (docs at /docs)")
    uvicorn.run(
        "objrec.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
    )
    return 0
