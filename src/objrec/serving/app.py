"""The REST server: FastAPI app around a :class:`~objrec.serving.predictor.Predictor`.

Endpoints::

    POST /v1/predict   images as multipart form field ``file`` (repeat it for several), or
                       JSON ``{"images": ["<base64>", ...], "top_k": 5}``; returns the
                       top-k labels with probabilities per image
    POST /v1/segment   segmentation models only: one image as multipart form field ``file``
                       (or JSON ``{"image": "<base64>"}``); returns the semantic mask and
                       the instance map as PNGs (base64) and the objects (id, label, score,
                       area, bbox) as JSON, or with ``Accept: image/png`` the mask PNG
                       alone (see :mod:`objrec.serving.segment`)
    GET  /v1/health    liveness: {"status": "ok", "task": "classify" | "segment", ...}
    GET  /v1/model     the model's metadata (classes, input shape, metrics, backend)
    GET  /docs         OpenAPI documentation (Swagger UI served from the package, no CDN;
                       ReDoc at /redoc, schema at /openapi.json)
    GET  /             a web page: upload an image or draw one, see the top-k as bars
    GET  /favicon.ico  the page's icon

A server runs one model: a classifier answers /v1/predict (and the /v2 protocol), a
segmenter /v1/segment; the other route answers 400 saying which one to use.

Each prediction also carries ``label`` (the top class, or ``"unknown"`` when its
probability is below the server's ``reject_below``), ``ood`` (``max_probability``, the
out-of-distribution score; ``unknown``; ``warning`` when the image's background differs
from the training images', see :mod:`objrec.serving.ood`) and, with the query parameter
``input_image=1``, ``input_image``: the image as the model sees it (its input size and
colour), a PNG data URL.

With an API key, /v1/predict and /v1/model need it; /v1/health, /, /static, /docs, /redoc
and /openapi.json stay open. /v1/model never shows absolute server paths.

Every error is JSON ``{"error": "<what was wrong and how to fix it>", "status": code}``:
415 wrong content type, 413 body over ``max_body_bytes``, an image over ``max_pixels`` or
images adding up to more than ``max_total_pixels`` (checked from the image headers before
anything is decoded), 422 corrupt/empty/unreadable image or a malformed field (``top_k``
outside 1..10,000 included), 400 no image or more than ``max_images`` images, 401 missing
or wrong API key (when one is set), 405 wrong method (with ``Allow``), 408 a client too
slow to send its request (see :mod:`objrec.serving.protocol`), 500 for anything unexpected
(logged on the server with its traceback, never sent to the client).

Images are decoded and classified on the event loop only when the request is small (at
most ``INLINE_IMAGES`` images of ``INLINE_PIXELS`` in all, a fraction of a millisecond);
larger requests run in worker threads, so ``/v1/health`` answers while they decode.
"""

import base64
import binascii
import json
import logging
import os
import secrets
from importlib import resources

from objrec.errors import InputError, ObjrecError
from objrec.serving.limits import DEFAULT_MAX_TOTAL_PIXELS, MAX_TOP_K, hide_paths, parse_top_k
from objrec.serving.predictor import Predictor
from objrec.serving.preprocess import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    OpenedImage,
    bomb_warning_ignored,
    open_image,
)

log = logging.getLogger("objrec.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB per request
DEFAULT_MAX_IMAGES = 64  # images per request
DEFAULT_TOP_K = 5
INLINE_IMAGES = 8  # requests with at most this many images ...
INLINE_PIXELS = 65_536  # ... of at most this many pixels in all run on the event loop


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


_FORMATS = "PNG, JPEG, BMP, GIF, TIFF, WebP, PNM"


def _image_body(form: dict, json_field: str, json_schema: dict, extra: dict) -> dict:
    """An OpenAPI ``requestBody`` of image files: multipart ``file`` (``form``: its array
    schema) or JSON ``json_field`` (``json_schema``), each with the ``extra`` properties."""
    file = {"type": "array", "items": {"type": "string", "format": "binary"}, **form}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": file, **extra},
                    "required": ["file"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {json_field: json_schema, **extra},
                    "required": [json_field],
                }
            },
        },
    }


def _predict_body(max_images: int) -> dict:
    """The OpenAPI ``requestBody`` of ``POST /v1/predict``."""
    count = {"minItems": 1, "maxItems": max_images}
    return _image_body(
        {**count, "description": f"one or more image files ({_FORMATS})"},
        "images",
        {
            "type": "array",
            "items": {"type": "string", "format": "byte"},
            **count,
            "description": "base64-encoded image files (data: URLs accepted)",
        },
        {"top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K}},
    )


def _segment_body() -> dict:
    """The OpenAPI ``requestBody`` of ``POST /v1/segment``."""
    return _image_body(
        {"minItems": 1, "maxItems": 1, "description": f"one image file ({_FORMATS})"},
        "image",
        {
            "type": "string",
            "format": "byte",
            "description": "a base64-encoded image file (data: URL accepted)",
        },
        {},
    )


def _segment_operation(errors: dict) -> dict:
    """The OpenAPI entry of ``POST /v1/segment``."""
    errors = {**errors, "400": "no image, more than one, or a classification model's server"}
    return {
        "post": {
            "summary": "Semantic mask, instance map and objects of one image",
            "operationId": "segment",
            "parameters": [
                {
                    "name": "input_image",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(FLAG_VALUES)},
                    "description": "1: also return the image as the model sees it "
                    "(input_image, a PNG data URL)",
                }
            ],
            "requestBody": _segment_body(),
            "responses": {
                "200": {
                    "description": "JSON: segmentation (file, width and height of the masks, "
                    "image_width and image_height of the upload, mask: the semantic mask as a "
                    "base64 palette PNG whose pixel values are label indices into classes, "
                    "instance_mask: object ids as a base64 PNG, instances: id, label, index, "
                    "score, area and bbox [x, y, width, height] in mask pixels), classes, "
                    "colors (the palette, one per class). With 'Accept: image/png': the "
                    "semantic mask PNG alone.",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **{c: {"description": d} for c, d in errors.items()},
            },
        }
    }


def create_app(
    predictor: Predictor,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS,
    max_images: int = DEFAULT_MAX_IMAGES,
    default_top_k: int = DEFAULT_TOP_K,
    reject_below: float | None = None,
):
    """The FastAPI application serving ``predictor``: a :class:`Predictor` (classifier) or a
    :class:`~objrec.serving.segment.SegmentPredictor` (segmenter).

    ``reject_below`` (0..1): a prediction whose top probability is below it is answered
    with label ``"unknown"`` (its top-k are still given).

    ``max_pixels`` bounds one image (width x height), ``max_total_pixels`` all images of one
    request together; both are checked on the image headers before decoding.
    """
    import anyio
    import anyio.to_thread
    from fastapi import Depends, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from fastapi_offline import FastAPIOffline
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    from objrec import __version__
    from objrec.cpu import usable_cores
    from objrec.serving.v2 import v2_router

    info = predictor.info()
    task = getattr(predictor, "task", "classify")
    what = "Semantic and instance segmentation" if task == "segment" else "Image classification"
    # Swagger UI and ReDoc from fastapi-offline's bundled files: /docs works without internet
    app = FastAPIOffline(
        title="objrec model server",
        version=__version__,
        description=f"{what} with an objrec model ({info.get('method', '?')}, "
        f"{predictor.n_classes} classes, input {'x'.join(map(str, predictor.input_shape))}).",
        static_url="/docs-assets",
    )
    app.state.predictor = predictor
    # requests too big to run on the event loop: at most this many decode at once, so the
    # memory of decoded images stays within a few times ``max_total_pixels``
    workers = anyio.CapacityLimiter(max(2, usable_cores()))

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        headers = dict(headers or {})
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse({"error": message, "status": status}, status, headers=headers or None)

    @app.exception_handler(RequestError)
    async def _request_error(request, exc: RequestError):
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        # keeps the exception's headers: ``Allow`` on 405
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = [
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request, exc):
        log.info("objrec: client left during %s %s", request.method, request.url.path)
        return error(400, "client disconnected before the request was complete")

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
            if top is not None and not isinstance(top, str):
                raise RequestError(422, "form field top_k must be text (a number), not a file")
            return items, _top_k(top, "form field")
        if ctype == "application/json":
            try:
                payload = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(422, f"body is not valid JSON ({e})") from e
            except RecursionError as e:  # e.g. 100,000 nested '['
                raise RequestError(422, "body is not valid JSON (nested too deeply)") from e
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
            return items, _top_k(payload.get("top_k"), "JSON field", text=False)
        raise RequestError(
            415,
            f"unsupported content type {ctype or '(none)'!r}; send images as multipart/form-data "
            "(field 'file') or application/json with base64 ('images')",
        )

    from objrec.serving.ood import check_threshold
    from objrec.serving.preprocess import to_model_input

    reject_below = check_threshold(reject_below, "reject_below")

    def open_checked(items: list[tuple[str, bytes]], opened: list[OpenedImage]) -> int:
        """Open every image of ``items`` (appended to ``opened``, which the caller closes),
        checking each one's pixels and their sum against the limits from the headers alone;
        returns the sum. Call it inside ``bomb_warning_ignored()``."""
        known = 0
        for name, data in items:
            try:
                im = open_image(data, max_pixels=None, name=name)
            except ImageTooLargeError as e:  # over Pillow's decompression-bomb guard
                raise RequestError(413, str(e)) from e
            except InputError as e:
                raise RequestError(422, str(e)) from e
            opened.append(im)
            if im.pixels > max_pixels:
                raise RequestError(
                    413,
                    f"{name}: image too large: {im.pixels:,} pixels, over the limit of "
                    f"{max_pixels:,}; resize it before sending",
                )
            known += im.pixels
        if known > max_total_pixels:
            raise RequestError(413, _too_many_pixels(known, max_total_pixels))
        return known

    def wrong_route(route: str) -> RequestError:
        if task == "segment":
            return RequestError(
                400,
                f"this server serves a segmentation model ({info.get('method', '?')}), which "
                f"has no {route}; POST the image to /v1/segment (multipart field 'file')",
            )
        return RequestError(
            400,
            f"this server serves a classification model ({info.get('method', '?')}), which "
            f"has no {route}; POST images to /v1/predict (multipart field 'file')",
        )

    async def request_images(request: Request, route: str, wanted: str, limit: int, how: str):
        """The uploaded images of a POST to ``route``, and the body's ``top_k`` (or None):
        the API key checked, the model's task checked against ``wanted`` ("classify" or
        "segment"), and 400 when there is no image (``how``: what to send instead) or more
        than ``limit``."""
        await check_key(request)
        if task != wanted:
            raise wrong_route(route)
        items, body_k = await read_images(request)
        if not items:
            raise RequestError(400, f"no image in the request: send {how}")
        if len(items) > limit:
            raise RequestError(
                400,
                _too_many(len(items), limit)
                if limit > 1
                else f"{len(items)} images in one request; {route} takes one per request",
            )
        return items, body_k

    async def run_model(fn, arg, images: int, pixels: int):
        """``fn(arg)`` for a request of ``images`` images, ``pixels`` in all: on the event
        loop when it is small (a thread hop costs more than its inference), else on a
        worker thread, ``workers`` at a time."""
        if images <= INLINE_IMAGES and pixels <= INLINE_PIXELS:
            return fn(arg)
        return await anyio.to_thread.run_sync(fn, arg, limiter=workers)

    def decode_and_predict(
        opened: list[OpenedImage], k: int, with_input: bool = False
    ) -> list[dict]:
        """Decode every opened image and classify them: per image its ``file`` (name),
        ``top_k``, ``label``, ``ood`` and (``with_input``) ``input_image``."""
        arrays = []
        for im in opened:
            try:
                arrays.append(im.decode())
            except InputError as e:
                raise RequestError(422, str(e)) from e
        try:
            X = to_model_input(arrays, predictor.input_shape, predictor.image_spec)
            proba = predictor.scores(X)
            tops = predictor.format_top_k(proba, k)
            checks = predictor.assess(X, proba, reject_below, tops)
        except ObjrecError as e:
            raise RequestError(422, str(e)) from e
        out = []
        for i, (im, tk, ood) in enumerate(zip(opened, tops, checks, strict=True)):
            rec = {
                "file": im.name,
                "top_k": tk,
                "label": "unknown" if ood["unknown"] else tk[0]["label"],
                "ood": ood,
            }
            if with_input:
                rec["input_image"] = _png_data_url(X[i])
            out.append(rec)
        return out

    async def predict(request: Request):
        """POST /v1/predict, a plain Starlette endpoint: FastAPI's parameter machinery costs
        about 0.1 ms per request here; the OpenAPI entry is added in :func:`openapi` below."""
        top_k = _top_k(request.query_params.get("top_k"), "query parameter")
        with_input = _flag(request.query_params.get("input_image"), "input_image")
        items, body_k = await request_images(
            request, "/v1/predict", "classify", max_images,
            "one or more files in the multipart field 'file' (or JSON 'images')",
        )  # fmt: skip
        k = next(v for v in (top_k, body_k, default_top_k) if v is not None)
        # the pixel budget, from the headers alone: a request of many huge (but small to
        # send) images is refused before any of them is decoded. Each file is opened once:
        # the handle that read its header decodes it.
        opened: list[OpenedImage] = []
        try:
            result = None
            # one warnings block for the whole request (entering one copies the filter list)
            with bomb_warning_ignored():
                known = open_checked(items, opened)
                if len(opened) <= INLINE_IMAGES and known <= INLINE_PIXELS:
                    result = decode_and_predict(opened, k, with_input)
            if result is None:  # decoded on a worker thread (its own warnings block)
                result = await anyio.to_thread.run_sync(
                    decode_and_predict, opened, k, with_input, limiter=workers
                )
        finally:
            for im in opened:
                im.close()
        # a JSONResponse directly: plain JSON types already, no jsonable_encoder pass needed
        return JSONResponse(
            {
                "predictions": result,
                "model": info.get("method"),
                "backend": predictor.backend,
                "reject_below": reject_below,
            }
        )

    def decode_and_segment(im: OpenedImage, with_input: bool) -> dict:
        """Decode one opened image, bring it to the model's input and segment it."""
        try:
            X = to_model_input([im.decode()], predictor.input_shape, predictor.image_spec)
            rec = predictor.segment(X)[0]
        except ObjrecError as e:
            raise RequestError(422, str(e)) from e
        rec.update(file=im.name, image_width=im.width, image_height=im.height)
        if with_input:
            rec["input_image"] = _png_data_url(X[0])
        return rec

    async def segment(request: Request):
        """POST /v1/segment: one image in; its masks (PNG) and objects out."""
        from fastapi.responses import Response

        with_input = _flag(request.query_params.get("input_image"), "input_image")
        items, _ = await request_images(
            request, "/v1/segment", "segment", 1,
            "one file in the multipart field 'file' (or JSON 'image')",
        )  # fmt: skip
        opened: list[OpenedImage] = []
        try:
            with bomb_warning_ignored():
                open_checked(items, opened)
            rec = await anyio.to_thread.run_sync(
                decode_and_segment, opened[0], with_input, limiter=workers
            )
        finally:
            for im in opened:
                im.close()
        accept = request.headers.get("accept", "").lower()
        if "image/png" in accept and "application/json" not in accept:
            return Response(rec["mask"], media_type="image/png")
        rec["mask"] = base64.b64encode(rec["mask"]).decode("ascii")
        rec["instance_mask"] = base64.b64encode(rec["instance_mask"]).decode("ascii")
        return JSONResponse(
            {
                "segmentation": rec,
                "classes": predictor.classes,
                "colors": predictor.colors,
                "model": info.get("method"),
                "backend": predictor.backend,
            }
        )

    app.add_route("/v1/predict", predict, methods=["POST"])
    # first in the router: a prediction is matched before the docs' and assets' routes
    app.router.routes.insert(0, app.router.routes.pop())
    app.add_route("/v1/segment", segment, methods=["POST"])
    app.router.routes.insert(1, app.router.routes.pop())

    errors = {
        "400": "no image, or more than the image limit",
        "401": "missing or wrong API key (when the server has one)",
        "408": "the client took too long to send its request",
        "413": "body over the size limit, an image over the pixel limit, or images adding "
        "up to more than the request's pixel limit",
        "415": "content type is neither multipart/form-data nor application/json",
        "422": "corrupt, empty or unreadable image; malformed field; top_k out of range",
    }

    def openapi() -> dict:
        from fastapi.openapi.utils import get_openapi

        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            served = "/v1/segment" if task == "segment" else "/v1/predict"
            if task == "segment":
                schema["paths"][served] = _segment_operation(errors)
            else:
                schema["paths"][served] = {
                    "post": {
                        "summary": "Top-k classes for one or several images",
                        "operationId": "predict",
                        "parameters": [
                            {
                                "name": "top_k",
                                "in": "query",
                                "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
                                "description": "classes per image (capped at the class count)",
                            },
                            {
                                "name": "input_image",
                                "in": "query",
                                "required": False,
                                "schema": {"type": "string", "enum": list(FLAG_VALUES)},
                                "description": "1: return each image as the model sees it "
                                "(input_image, a PNG data URL)",
                            },
                        ],
                        "requestBody": _predict_body(max_images),
                        "responses": {
                            "200": {
                                "description": "per image: file name, the top-k classes "
                                "(label, index, probability) best first, label (the top class "
                                "or 'unknown' below the server's reject_below) and ood "
                                "(max_probability, unknown, warning)"
                            },
                            **{c: {"description": d} for c, d in errors.items()},
                        },
                    }
                }
            if api_key is not None:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                    "bearer": {"type": "http", "scheme": "bearer"},
                }
                for path in (served, "/v1/model"):
                    for op in schema["paths"][path].values():
                        op["security"] = [{"apiKey": []}, {"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    if task == "classify":  # the Open Inference Protocol's tensors are class probabilities
        app.include_router(v2_router(predictor, dependencies=[check_key], max_images=max_images, max_total_pixels=max_total_pixels, run=run_model))  # fmt: skip

    @app.get("/v1/health", summary="Liveness and the model being served")
    async def health():
        return {
            "status": "ok",
            "task": task,
            "model": info.get("method"),
            "backend": predictor.backend,
            "auth": api_key is not None,
        }

    # the model's metadata holds the paths it was trained with (run folder, checkpoints,
    # data): cut to their last part, so a client learns nothing of the server's disks
    public_info = hide_paths(info)

    @app.get(
        "/v1/model",
        dependencies=[Depends(check_key)],
        summary="Model metadata",
        responses={401: {"description": errors["401"]}},
    )
    async def model_info():
        return {
            **public_info,
            "limits": {
                "max_body_bytes": max_body_bytes,
                "max_pixels": max_pixels,
                "max_total_pixels": max_total_pixels,
                "max_images": max_images,
            },
        }

    static = resources.files("objrec.serving") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    icon = (static / "favicon.ico").read_bytes()

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        from fastapi.responses import Response

        return Response(icon, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if max_body_bytes:
        app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _top_k(value, where: str, *, text: bool = True) -> int | None:
    try:
        return parse_top_k(value, where, text=text)
    except InputError as e:
        raise RequestError(422, str(e)) from e


# A query flag's values, exactly as the OpenAPI schema lists them ("": the bare flag).
FLAG_VALUES = {
    "1": True,
    "true": True,
    "yes": True,
    "0": False,
    "false": False,
    "no": False,
    "": False,
}


def _flag(value: str | None, name: str) -> bool:
    """A query flag: absent, or one of :data:`FLAG_VALUES`; 422 for anything else."""
    if value is None:
        return False
    if value in FLAG_VALUES:
        return FLAG_VALUES[value]
    raise RequestError(422, f"query parameter {name} must be 1 or 0 (true or false), got {value!r}")


def _png_data_url(image) -> str:
    """A uint8 (H, W) or (H, W, 3) image as a ``data:image/png;base64,...`` URL."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _too_many_pixels(n: int, limit: int) -> str:
    return (
        f"the images of this request add up to {n:,} pixels, over the limit of {limit:,} "
        "per request; send fewer or smaller images per request"
    )


def _too_many(n: int, limit: int) -> str:
    return f"{n} images in one request, the limit is {limit}; split them over several requests"


# Environment variables read by :func:`app_from_env` (``objrec serve --workers N`` starts
# N processes, each building its app from these).
ENV_MODEL = "OBJREC_SERVE_MODEL"
ENV_API_KEY = "OBJREC_SERVE_API_KEY"
ENV_BACKEND = "OBJREC_SERVE_BACKEND"
ENV_THREADS = "OBJREC_SERVE_THREADS"
ENV_LIMITS = "OBJREC_SERVE_LIMITS"  # JSON: max_body_bytes, max_pixels, max_total_pixels, ...
ENV_REJECT_BELOW = "OBJREC_SERVE_REJECT_BELOW"  # probability under which the answer is "unknown"


def load_predictor(path, *, backend: str = "auto", threads: int | None = None):
    """The predictor for the model at ``path`` (``objrec.load``): a
    :class:`~objrec.serving.segment.SegmentPredictor` for a segmenter (which runs natively),
    else a :class:`Predictor` with ``backend`` and ``threads``."""
    import objrec

    est = objrec.load(path)
    if getattr(est, "task", "classify") == "segment":
        from objrec.serving.segment import SegmentPredictor

        return SegmentPredictor(est)
    return Predictor(est, backend=backend, threads=threads)


def app_from_env():
    """App factory for uvicorn (``objrec.serving.app:app_from_env``), configured by env vars."""
    threads = os.environ.get(ENV_THREADS)
    predictor = load_predictor(
        os.environ[ENV_MODEL],
        backend=os.environ.get(ENV_BACKEND, "auto"),
        threads=int(threads) if threads else None,
    )
    limits = json.loads(os.environ.get(ENV_LIMITS, "{}"))
    reject = os.environ.get(ENV_REJECT_BELOW)
    return create_app(
        predictor,
        api_key=os.environ.get(ENV_API_KEY) or None,
        reject_below=float(reject) if reject else None,
        **limits,
    )
