"""schemathesis against the server's OpenAPI schema: generated requests, schema-valid ones
and ones that break it, to every operation, checked by every built-in check.

The schema can say that ``file``/``images`` hold binary or base64 data, not that the data
is a decodable image; so for the formats ``binary`` and ``byte`` the generator makes real
image files (random sizes, colour modes, formats and pixels), and a schema-valid request
must then be answered 200. Undecodable bytes (422) are the fuzz tests' and
test_app_limits.py's business.
"""

import base64
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import formats

from crafted_files import square_and_ring

KEY = "test-key"


def _encode(spec) -> bytes:
    from PIL import Image

    (h, w), mode, fmt, seed = spec
    rng = np.random.default_rng(seed)
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), np.uint8))
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, len(mode)), np.uint8), mode=mode)
    if fmt in ("JPEG", "BMP") and mode == "RGBA":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


image_files = st.tuples(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from(["L", "RGB", "RGBA"]),
    st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]),
    st.integers(0, 2**32 - 1),
).map(_encode)


@pytest.fixture(scope="module", autouse=True)
def image_formats():
    """``binary`` and ``byte`` strings generated as image files while this module runs."""
    saved = {name: formats.STRING_FORMATS.get(name) for name in ("binary", "byte")}
    schemathesis.openapi.format("binary", image_files)
    schemathesis.openapi.format("byte", image_files.map(lambda b: base64.b64encode(b).decode()))
    yield
    for name, strategy in saved.items():
        if strategy is None:
            formats.unregister_string_format(name)
        else:
            formats.STRING_FORMATS[name] = strategy
    formats._invalidate_caches()


def _app(api_key=None):
    from sklearn.datasets import load_digits

    import objrec
    from objrec.serving.app import create_app
    from objrec.serving.predictor import Predictor

    d = load_digits()  # 8x8 digits: a real model in a fraction of a second
    X = (d.images[:300] * (255 / 16)).round().astype(np.uint8)
    est = objrec.make_method("pixels-logreg").fit(X, d.target[:300])
    predictor = Predictor(est, metadata={"method": "pixels-logreg"}, backend="native")
    return create_app(predictor, api_key=api_key, max_images=4, max_body_bytes=200_000)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(api_key=KEY))
# schema-valid requests and ones that break it (wrong types, missing fields, bad headers)
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@schema.auth()
class _ApiKey:
    def get(self, case, ctx):
        return KEY

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "X-API-Key": data}


def _check(case):
    from schemathesis.generation.meta import TestPhase
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    # The coverage phase sends the schema's boundary values ("" for a file, "A" for base64),
    # valid to the schema, never an image: 422 there is right, every other check still runs
    boundary = case.meta is not None and case.meta.phase.name == TestPhase.COVERAGE
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if boundary else None)


@schema.parametrize()
# derandomized: the same examples on every run, so CI fails only on a change of the server
@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_api(case):
    _check(case)


def _segment_app(api_key=None):
    """A forest segmenter fit on 8 small scenes (a second in all), served."""
    from objrec.data.scenes import render_scenes
    from objrec.segmentation import make_segmenter
    from objrec.serving.app import create_app
    from objrec.serving.segment import SegmentPredictor

    X = square_and_ring()
    tr = render_scenes(X, np.array([0, 1]), 8, seed=0, size=32, max_objects=3)
    seg = make_segmenter("forest", n_estimators=3, pixels_per_image=100, scales=(1.0,), n_jobs=1)
    predictor = SegmentPredictor(seg.fit(tr.images, tr.semantic), metadata={"method": "forest"})
    return create_app(predictor, api_key=api_key, max_body_bytes=200_000)


segment_schema = schemathesis.openapi.from_asgi("/openapi.json", _segment_app(api_key=KEY))
segment_schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@segment_schema.auth()
class _SegmentApiKey(_ApiKey):
    pass


@segment_schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_segment_api(case):
    _check(case)
