"""Serve an objrec model through NVIDIA's Triton Inference Server, by PyTriton.

``nvidia-pytriton`` ships the Triton server binary and runs a Python callable as a Triton
model: Triton answers HTTP (KServe v2 / Open Inference Protocol), gRPC and metrics, does
the dynamic batching, and hands each batch to :func:`infer_function`, which runs objrec's
:class:`~objrec.serving.predictor.Predictor` (the path of ``objrec serve``). It needs
``numpy < 2`` and its own environment (``make triton-env``). Triton's Python backend stub
embeds a Python: ``LD_LIBRARY_PATH`` must name the folder of this interpreter's
``libpython3.X.so`` (:func:`python_lib_dir`; ``objrec serve --engine triton`` sets it), else
the stub runs this interpreter's standard library on another libpython and the model fails
to load (here, pyenv's 3.11.7: ``AttributeError: '_thread.RLock' object has no attribute
'_recursion_count'`` in ``multiprocessing.resource_tracker``, then ``load failed for model``).
A stopping server waits up to its exit timeout (30 s) while a client keeps a connection open.

The model, named after its method (``simple_cnn``): input ``images`` UINT8, shape
``[N, *input_shape]`` (``[N, H, W]`` grey, ``[N, H, W, C]`` colour: already at the model's
input size; resize elsewhere), output ``probabilities`` FP32 ``[N, K]``, column ``k`` for
``classes[k]``; batches up to :data:`MAX_BATCH` images.
"""

from __future__ import annotations

import sysconfig

import numpy as np

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
#: The largest batch Triton's dynamic batcher hands to the model.
MAX_BATCH = 256


def python_lib_dir() -> str:
    """The folder of this Python's shared library (``libpython3.X.so``), which the Triton
    server binary that PyTriton starts must find (``LD_LIBRARY_PATH``)."""
    return str(sysconfig.get_config_var("LIBDIR"))


def model_name(predictor) -> str:
    """Triton's name for the model: its method, letters, digits, ``-`` and ``_`` only."""
    import re

    raw = str(predictor.metadata.get("method") or "model")
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw) or "model"


def infer_function(predictor):
    """The callable Triton runs per batch: ``images`` uint8 ``(N, *input_shape)`` ->
    ``{"probabilities": float32 (N, K)}``, by ``predictor.scores`` (PyTriton's ``@batch``
    wraps it: Triton's batch arrives as one array)."""
    from pytriton.decorators import batch

    shape = tuple(predictor.input_shape)

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        X = np.ascontiguousarray(inputs[INPUT_NAME], dtype=np.uint8)
        if tuple(X.shape[1:]) != shape:  # Triton checks shapes; this is a second guard
            raise ValueError(f"images must be {shape}, got {tuple(X.shape[1:])}")
        return {OUTPUT_NAME: np.ascontiguousarray(predictor.scores(X), np.float32)}

    return infer


def bind(triton, predictor, *, name: str | None = None, max_batch_size: int = MAX_BATCH) -> str:
    """Bind ``predictor`` to a ``pytriton.triton.Triton`` as model ``name`` (default
    :func:`model_name`) with dynamic batching; returns the name."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    name = name or model_name(predictor)
    triton.bind(
        model_name=name,
        infer_func=infer_function(predictor),
        inputs=[Tensor(name=INPUT_NAME, dtype=np.uint8, shape=tuple(predictor.input_shape))],
        outputs=[Tensor(name=OUTPUT_NAME, dtype=np.float32, shape=(predictor.n_classes,))],
        config=ModelConfig(
            max_batch_size=int(max_batch_size),
            batcher=DynamicBatcher(max_queue_delay_microseconds=2000),
        ),
        strict=True,
    )
    return name


def triton_config(
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    exit_timeout_s: int | None = None,
):
    """A ``pytriton.triton.TritonConfig``: HTTP, gRPC and metrics on these ports, bound to
    ``host`` (127.0.0.1 unless told otherwise, as ``objrec serve``; Triton's own default
    is every interface). ``exit_timeout_s``: how long a stopping server waits for
    in-flight requests (None: Triton's default, 30 s)."""
    from pytriton.triton import TritonConfig

    return TritonConfig(
        http_address=host,
        http_port=http_port,
        grpc_address=host,
        grpc_port=grpc_port,
        metrics_address=host,
        metrics_port=metrics_port,
        exit_timeout_secs=exit_timeout_s,
    )
