"""The Open Inference Protocol (KServe v2, as Triton and MLServer speak it) for ``objrec serve``.

Routes (a FastAPI router the app includes; the model's name is its method, e.g.
``simple_cnn``; one version, "1")::

    GET  /v2                                  server metadata (name, version, extensions)
    GET  /v2/health/live, /v2/health/ready    200 while the server is up / can answer
    GET  /v2/models/{name}[/versions/1]       model metadata: inputs, outputs, their shapes
    GET  /v2/models/{name}[/versions/1]/ready 200 when the model is loaded
    POST /v2/models/{name}[/versions/1]/infer inference

The model takes one input, ``images``: datatype ``UINT8``, shape ``[N, H, W, C]`` (C 1 or 3;
``[N, H, W]`` also for grey models), raw pixels 0..255; images of another size or colour
mode are brought to the model's input by the same preprocessing as ``/v1/predict``. It
answers one output, ``probabilities``: ``FP32``, ``[N, K]``, column ``k`` for the class
``classes[k]`` (listed in the model metadata's ``parameters``). Tensors come as JSON
(``data``, a flat row-major list) or in the binary tensor data extension (the JSON header's
length in the ``Inference-Header-Content-Length`` header, raw bytes after it), which
``tritonclient`` uses by default; an output is answered in binary when its request says
``"parameters": {"binary_data": true}``. Errors are JSON ``{"error": message}`` with a 4xx
status.
"""

import json

import numpy as np

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
VERSION = "1"
HEADER_LENGTH = "inference-header-content-length"


def _http_error(status: int, message: str):
    from fastapi import HTTPException

    return HTTPException(status, message)


def parse_infer_request(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """Split an infer request body into its JSON object and the binary tensor data after it."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise _http_error(400, "Inference-Header-Content-Length must be an integer") from None
        if not 0 <= n <= len(body):
            raise _http_error(
                400, f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)"
            )
        json_part, binary = body[:n], body[n:]
    try:
        request = json.loads(json_part)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _http_error(400, f"the request is not valid JSON: {e}") from None
    if not isinstance(request, dict):
        raise _http_error(400, "the request must be a JSON object")
    return request, binary


def input_tensor(request: dict, binary: bytes) -> np.ndarray:
    """The ``images`` tensor of a parsed infer request: uint8 ``(N, H, W[, C])``."""
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _http_error(400, f"expected 'inputs' to hold one tensor named {INPUT_NAME!r}")
    t = inputs[0]
    if t.get("name") != INPUT_NAME:
        raise _http_error(400, f"unknown input {t.get('name')!r}; the model takes {INPUT_NAME!r}")
    if t.get("datatype") != "UINT8":
        raise _http_error(400, f"input {INPUT_NAME!r} must be UINT8, got {t.get('datatype')!r}")
    shape = t.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        or len(shape) not in (3, 4)
    ):
        raise _http_error(400, f"input shape must be [N, H, W, C] or [N, H, W], got {shape!r}")
    if len(shape) == 4 and shape[3] not in (1, 3, 4):
        raise _http_error(400, f"input channels must be 1, 3 or 4, got {shape[3]}")
    count = int(np.prod(shape, dtype=np.int64))
    params = t.get("parameters") or {}
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or size != len(binary):
            raise _http_error(
                400, f"binary_data_size {size!r} does not match the {len(binary)} bytes sent"
            )
        if size != count:
            raise _http_error(400, f"shape {shape} needs {count} bytes, got {size}")
        return np.frombuffer(binary, np.uint8).reshape(shape)
    data = t.get("data")
    if not isinstance(data, list):
        raise _http_error(400, "input needs 'data' (a flat list) or binary data")
    try:
        arr = np.asarray(data, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise _http_error(400, "input data must be a list of integers 0..255") from None
    if arr.size != count:
        raise _http_error(400, f"shape {shape} needs {count} values, got {arr.size}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise _http_error(400, "UINT8 input data must lie in 0..255")
    return arr.astype(np.uint8).reshape(shape)


def v2_router(predictor, *, dependencies=(), max_images: int, max_total_pixels: int, run):
    """The v2 routes for ``predictor`` (:class:`objrec.serving.predictor.Predictor`).

    ``dependencies``: FastAPI dependencies every route but the health checks runs (the
    server's API key check); ``max_images`` and ``max_total_pixels`` bound one request.
    ``run``: ``await run(fn, arg, images, pixels)`` computes ``fn(arg)`` for a request of
    ``images`` images and ``pixels`` pixels in all, where the server runs its inference
    (the same policy as /v1/predict's).
    """
    from fastapi import APIRouter, Depends, Request
    from fastapi.responses import JSONResponse, Response

    from objrec import __version__

    name = str(predictor.metadata.get("method") or "model")
    shape = list(predictor.input_shape)
    channels = shape[2] if len(shape) == 3 else 1
    metadata = {
        "name": name,
        "versions": [VERSION],
        "platform": "objrec",
        "inputs": [
            {"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, shape[0], shape[1], channels]}
        ],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, predictor.n_classes]}],
        "parameters": {"classes": json.dumps(list(predictor.classes))},
    }
    router = APIRouter(prefix="/v2", include_in_schema=False)
    guarded = {"dependencies": [Depends(d) for d in dependencies]}

    def known(model: str, version: str | None = None) -> None:
        if model != name:
            raise _http_error(404, f"unknown model {model!r}; this server serves {name!r}")
        if version is not None and version != VERSION:
            raise _http_error(404, f"model {name!r} has version {VERSION} only, not {version!r}")

    @router.get("")
    async def server_metadata():
        return {"name": "objrec", "version": __version__, "extensions": ["binary_tensor_data"]}

    @router.get("/health/live")
    @router.get("/health/ready")
    async def health():
        return {}

    @router.get("/models/{model}", **guarded)
    @router.get("/models/{model}/versions/{version}", **guarded)
    async def model_metadata(model: str, version: str | None = None):
        known(model, version)
        return metadata

    @router.get("/models/{model}/ready", **guarded)
    @router.get("/models/{model}/versions/{version}/ready", **guarded)
    async def model_ready(model: str, version: str | None = None):
        known(model, version)
        return {"name": name, "ready": True}

    @router.post("/models/{model}/infer", **guarded)
    @router.post("/models/{model}/versions/{version}/infer", **guarded)
    async def infer(model: str, request: Request, version: str | None = None):
        known(model, version)
        req, binary = parse_infer_request(await request.body(), request.headers.get(HEADER_LENGTH))
        X = input_tensor(req, binary)
        if len(X) > max_images:
            raise _http_error(413, f"{len(X)} images in one request; the limit is {max_images}")
        if int(np.prod(X.shape[:3], dtype=np.int64)) > max_total_pixels:
            raise _http_error(413, f"{X.shape[:3]} images exceed {max_total_pixels} pixels")
        want_binary = False
        for out in req.get("outputs") or []:
            if not isinstance(out, dict) or out.get("name") != OUTPUT_NAME:
                raise _http_error(400, f"unknown output; the model answers {OUTPUT_NAME!r}")
            want_binary = bool((out.get("parameters") or {}).get("binary_data", False))
        if len(X) == 0:
            proba = np.zeros((0, predictor.n_classes), np.float32)
        else:
            X = X[..., 0] if X.ndim == 4 and X.shape[3] == 1 else X
            pixels = int(np.prod(X.shape[:3], dtype=np.int64))
            if tuple(X.shape[1:]) == tuple(shape):
                proba = await run(predictor.scores, X, len(X), pixels)
            else:
                proba = await run(predictor.predict_proba, list(X), len(X), pixels)
        proba = np.ascontiguousarray(proba, np.float32)
        out = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(proba.shape)}
        head = {"model_name": name, "model_version": VERSION}
        if "id" in req:
            head["id"] = req["id"]
        if not want_binary:
            return JSONResponse({**head, "outputs": [{**out, "data": proba.ravel().tolist()}]})
        raw = proba.tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        text = json.dumps({**head, "outputs": [out]}).encode()
        return Response(
            text + raw,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(text))},
        )

    return router
