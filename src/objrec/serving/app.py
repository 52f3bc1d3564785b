"""The REST server: FastAPI app around a :class:`~objrec.serving.predictor.Predictor`.

Endpoints::

    POST /v1/predict   images as multipart form field ``file`` (repeat it for several), or
                       JSON ``{"images": ["<base64>", ...], "top_k": 5}``; returns the
                       top-k labels with probabilities per image
    GET  /v1/health    liveness: {"status": "ok", ...}
    GET  /v1/model     the model's metadata (classes, input shape, metrics, backend)
    GET  /docs         OpenAPI documentation (schema at /openapi.json)
    GET  /             a web page: upload an image or draw one, see the top-k as bars

Every error is JSON ``{"error": "<what was wrong and how to fix it>", "status": code}``:
415 wrong content type, 413 body over ``max_body_bytes`` or image over ``max_pixels``,
422 corrupt/empty/unreadable image or a malformed field, 400 no image or more than
``max_images`` images, 401 missing or wrong API key (when one is set), 500 for anything
unexpected (logged on the server with its traceback, never sent to the client).
"""

import base64
import binascii
import json
import logging
import os
import secrets
from importlib import resources

from objrec.errors import InputError, ObjrecError
from objrec.serving.predictor import Predictor
from objrec.serving.preprocess import DEFAULT_MAX_PIXELS, ImageTooLargeError, decode_image

log = logging.getLogger("objrec.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB per request
DEFAULT_MAX_IMAGES = 64  # images per request
DEFAULT_TOP_K = 5
INLINE_IMAGES = 8  # requests with at most this many images run on the event loop


class RequestError(Exception):
    """An HTTP error with a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413.

    Checks ``Content-Length`` before reading, and counts the bytes of bodies sent without
    one (chunked), so a client cannot stream an unbounded body.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return await _send_json(send, 400, "invalid Content-Length header")
                if n > self.limit:
                    return await _send_json(send, 413, _too_large(n, self.limit))
        seen = 0
        limit = self.limit

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise RequestError(413, _too_large(seen, limit))
            return msg

        return await self.app(scope, limited_receive, send)


def _too_large(n: int, limit: int) -> str:
    return (
        f"request body is {n:,} bytes or more, over the limit of {limit:,} bytes; "
        "send smaller images or fewer per request"
    )


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more image files (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM)",
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "byte"},
                            "description": "base64-encoded image files (data: URLs accepted)",
                        },
                        "top_k": {"type": "integer", "minimum": 1},
                    },
                    "required": ["images"],
                }
            },
        },
    }
}


def create_app(
    predictor: Predictor,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_images: int = DEFAULT_MAX_IMAGES,
    default_top_k: int = DEFAULT_TOP_K,
):
    """The FastAPI application serving ``predictor``."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from objrec import __version__

    info = predictor.info()
    app = FastAPI(
        title="objrec model server",
        version=__version__,
        description=f"Image classification with an objrec model ({info.get('method', '?')}, "
        f"{predictor.n_classes} classes, input {'x'.join(map(str, predictor.input_shape))}).",
    )
    app.state.predictor = predictor

    def error(status: int, message: str) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message, "status": status}, status, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request, exc: RequestError):
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        log.exception("objrec: unexpected error on %s %s", request.method, request.url.path)
        return error(500, "internal server error; the server log has the details")

    async def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            raise RequestError(
                401,
                "missing API key: send it as header 'X-API-Key: KEY' or 'Authorization: Bearer KEY'",
            )
        if not secrets.compare_digest(given.encode(), api_key.encode()):
            raise RequestError(401, "wrong API key")

    async def read_images(request: Request) -> tuple[list[tuple[str, bytes]], int | None]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            # ``async with``: the uploads' spooled temporary files are closed on the way out
            async with request.form(
                max_files=max_images, max_fields=max_images + 16, max_part_size=max_body_bytes
            ) as form:
                items = []
                for i, f in enumerate(form.getlist("file")):
                    if isinstance(f, str):
                        raise RequestError(
                            422, f"file #{i + 1}: form field 'file' must be a file upload, not text"
                        )
                    items.append((f.filename or f"file #{i + 1}", await f.read()))
                top = form.get("top_k")
            return items, int(top) if isinstance(top, str) and top.isdigit() else None
        if ctype == "application/json":
            try:
                payload = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(422, f"body is not valid JSON ({e})") from e
            if not isinstance(payload, dict):
                raise RequestError(422, 'JSON body must be an object: {"images": ["<base64>"]}')
            images = payload.get("images", [payload["image"]] if "image" in payload else None)
            if not isinstance(images, list) or not all(isinstance(s, str) for s in images):
                raise RequestError(
                    422, 'JSON body needs "images": a list of base64-encoded image files'
                )
            if len(images) > max_images:
                raise RequestError(400, _too_many(len(images), max_images))
            items = []
            for i, s in enumerate(images):
                if s.startswith("data:"):
                    s = s.partition(",")[2]
                try:
                    items.append((f"image #{i + 1}", base64.b64decode(s, validate=True)))
                except (binascii.Error, ValueError) as e:
                    raise RequestError(422, f"image #{i + 1}: invalid base64 ({e})") from e
            top = payload.get("top_k")
            if top is not None and (not isinstance(top, int) or isinstance(top, bool)):
                raise RequestError(422, "top_k must be an integer")
            return items, top
        raise RequestError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send images as multipart/form-data "
            "(field 'file') or application/json with base64 ('images')",
        )

    async def predict(request: Request):
        """POST /v1/predict, a plain Starlette endpoint: FastAPI's parameter machinery costs
        about 0.1 ms per request here; the OpenAPI entry is added in :func:`openapi` below."""
        top_k = request.query_params.get("top_k")
        if top_k is not None:
            if not top_k.isdigit() or int(top_k) < 1:
                raise RequestError(422, f"top_k must be a whole number >= 1, got {top_k!r}")
            top_k = int(top_k)
        await check_key(request)
        items, body_k = await read_images(request)
        if not items:
            raise RequestError(
                400,
                "no image in the request: send one or more files in the multipart field 'file' "
                "(or JSON 'images')",
            )
        if len(items) > max_images:
            raise RequestError(400, _too_many(len(items), max_images))
        k = top_k or body_k or default_top_k
        if k < 1:
            raise RequestError(422, "top_k must be at least 1")
        arrays = []
        for name, data in items:
            try:
                arrays.append(decode_image(data, max_pixels=max_pixels, name=name))
            except ImageTooLargeError as e:
                raise RequestError(413, str(e)) from e
            except InputError as e:
                raise RequestError(422, str(e)) from e
        try:
            if len(arrays) <= INLINE_IMAGES:
                result = predictor.top_k(arrays, k)
            else:
                result = await run_in_threadpool(predictor.top_k, arrays, k)
        except ObjrecError as e:
            raise RequestError(422, str(e)) from e
        # a JSONResponse directly: plain JSON types already, no jsonable_encoder pass needed
        return JSONResponse(
            {
                "predictions": [
                    {"file": name, "top_k": tk} for (name, _), tk in zip(items, result, strict=True)
                ],
                "model": info.get("method"),
                "backend": predictor.backend,
            }
        )

    app.add_route("/v1/predict", predict, methods=["POST"])

    def openapi() -> dict:
        from fastapi.openapi.utils import get_openapi

        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            errors = {
                "400": "no image, or more than the image limit",
                "401": "missing or wrong API key (when the server has one)",
                "413": "body over the size limit, or an image over the pixel limit",
                "415": "content type is neither multipart/form-data nor application/json",
                "422": "corrupt, empty or unreadable image; malformed field",
            }
            schema["paths"]["/v1/predict"] = {
                "post": {
                    "summary": "Top-k classes for one or several images",
                    "operationId": "predict",
                    "parameters": [
                        {
                            "name": "top_k",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1},
                            "description": "classes per image (capped at the class count)",
                        }
                    ],
                    **_PREDICT_BODY,
                    "responses": {
                        "200": {
                            "description": "per image: file name and the top-k classes "
                            "(label, index, probability), best first"
                        },
                        **{c: {"description": d} for c, d in errors.items()},
                    },
                }
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    @app.get("/v1/health", summary="Liveness and the model being served")
    async def health():
        return {
            "status": "ok",
            "model": info.get("method"),
            "backend": predictor.backend,
            "auth": api_key is not None,
        }

    @app.get("/v1/model", dependencies=[Depends(check_key)], summary="Model metadata")
    async def model_info():
        return {
            **info,
            "limits": {
                "max_body_bytes": max_body_bytes,
                "max_pixels": max_pixels,
                "max_images": max_images,
            },
        }

    static = resources.files("objrec.serving") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if max_body_bytes:
        app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _too_many(n: int, limit: int) -> str:
    return f"{n} images in one request, the limit is {limit}; split them over several requests"


# Environment variables read by :func:`app_from_env` (``objrec serve --workers N`` starts
# N processes, each building its app from these).
ENV_MODEL = "OBJREC_SERVE_MODEL"
ENV_API_KEY = "OBJREC_SERVE_API_KEY"
ENV_BACKEND = "OBJREC_SERVE_BACKEND"
ENV_THREADS = "OBJREC_SERVE_THREADS"
ENV_LIMITS = "OBJREC_SERVE_LIMITS"  # JSON: max_body_bytes, max_pixels, max_images


def app_from_env():
    """App factory for uvicorn (``objrec.serving.app:app_from_env``), configured by env vars."""
    threads = os.environ.get(ENV_THREADS)
    predictor = Predictor.from_path(
        os.environ[ENV_MODEL],
        backend=os.environ.get(ENV_BACKEND, "auto"),
        threads=int(threads) if threads else None,
    )
    limits = json.loads(os.environ.get(ENV_LIMITS, "{}"))
    return create_app(predictor, api_key=os.environ.get(ENV_API_KEY) or None, **limits)
