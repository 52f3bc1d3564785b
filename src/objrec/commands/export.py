"""``objrec export MODEL --format onnx|torchscript|executorch|tflite|triton``: a portable
model, checked against the original."""

from __future__ import annotations

from pathlib import Path

from objrec.cli_types import opset, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX, TorchScript, ExecuTorch, LiteRT or a Triton "
        "repository (with a parity check)",
        description="Export a model with its preprocessing inside: the exported model takes raw "
        "uint8 images at the model's input size and returns class probabilities. Every export "
        "is checked on real test images (max |difference| of probabilities <= 1e-4 and the same "
        "top-1 class, ONNX Runtime and OpenCV's cv2.dnn against the original) and fails, writing "
        "nothing, when the check does not hold.",
    )
    p.add_argument("model", metavar="MODEL", help="run folder or model folder")
    p.add_argument(
        "--format",
        choices=("onnx", "torchscript", "executorch", "triton", "tflite", "archive"),
        default="onnx",
        help="executorch: an XNNPACK-delegated .pte (pip install 'objrec[executorch]'); "
        "triton: a Triton model repository (NAME/1/model.onnx, NAME/config.pbtxt); "
        "tflite: LiteRT, batch 1 (from the environment `make litert-env` builds); "
        "archive: the objrec model itself as one zip file (every command accepts it)",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        help="file to write (default: MODEL/model.onnx, model.pt, model.pte or model.tflite; "
        "triton: the "
        "repository folder, default MODEL/triton)",
    )
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batch 1)")
    p.add_argument("--opset", type=opset, default=17, help="ONNX opset version (default 17)")
    p.add_argument(
        "--check-data",
        default=None,
        help="images for the parity check: a dataset name, a folder or an image file "
        "(default: the test split of the dataset the model was trained on)",
    )
    p.add_argument(
        "--data-dir", default=None, help="where datasets are found (for --check-data names)"
    )
    p.add_argument(
        "--check-size",
        type=positive_int,
        default=None,
        help="number of check images (default 256; with --quantize the whole test split)",
    )
    p.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="int8 (CNNs): static quantisation calibrated on training images (ONNX and "
        "triton: ONNX Runtime's; executorch: XNNPACK's PT2E quantiser; tflite: litert-torch's "
        "PT2E quantiser); the export fails unless the int8 model gives the float model's "
        "top-1 class on >= 99%% of the test split and loses <= 0.5 points of test accuracy",
    )
    p.add_argument(
        "--calibration-size",
        type=positive_int,
        default=512,
        help="training images the int8 activation ranges are measured on (default 512)",
    )
    p.add_argument(
        "--tolerance", type=positive_float, default=1e-4, help="largest allowed |difference|"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def check_images_for(est, meta, source: str | None, n: int, data_dir=None):
    """Up to ``n`` real uint8 images at the model's input shape for the parity check."""
    import numpy as np

    from objrec.errors import InputError, ObjrecError
    from objrec.serving.export import input_images
    from objrec.serving.preprocess import decode_image, find_images

    source = source or meta.dataset  # meta: the model's ModelMetadata
    if source is None:
        raise ObjrecError(
            "the model's metadata names no dataset to check the export on; "
            "pass --check-data DATASET|FOLDER (real images the model is meant for)"
        )
    path = Path(source)
    if path.exists():
        files = find_images([path])[: max(n * 4, n)]
        rng = np.random.default_rng(0)
        if len(files) > n:
            files = [files[i] for i in sorted(rng.choice(len(files), n, replace=False))]
        images = []
        for f in files:
            try:
                images.append(decode_image(f))
            except (InputError, OSError):
                continue  # unreadable files are skipped; the others still check the export
        if not images:
            raise ObjrecError(f"--check-data {source}: no readable images found there")
        return input_images(est, images, meta)  # the model's own decode and image spec
    try:
        from objrec.data import load_dataset
    except ImportError as e:
        raise ObjrecError(
            f"cannot load dataset {source!r} for the parity check ({e}); pass --check-data FOLDER"
        ) from e
    kwargs = {"data_dir": data_dir} if data_dir else {}
    from objrec.serving.preprocess import spec_for_model

    spec = spec_for_model(meta, est.input_shape_)
    ds = load_dataset(
        source, progress=False, size=spec.size, color=spec.color, fit=spec.fit, **kwargs
    )
    return input_images(est, ds.test.X[:n], meta)


def quantization_data(est, meta, source: str | None, n: int | None, n_calib: int, data_dir=None):
    """(test images, test labels, training images) of the model's dataset for an int8 export.

    Test images uint8 ``(N, *input_shape)`` (the first ``n`` of the test split, all when
    None), their labels ``(N,)``, and ``n_calib`` training images spread over the split.
    """
    import numpy as np

    from objrec.errors import ObjrecError
    from objrec.serving.export import input_images
    from objrec.serving.preprocess import spec_for_model

    source = source or meta.dataset
    if source is None or Path(source).is_file():
        raise ObjrecError(
            "--quantize int8 needs the model's dataset (training images to calibrate on, "
            "labelled test images to check it on): pass --check-data DATASET"
        )
    from objrec.data import load_dataset

    kwargs = {"data_dir": data_dir} if data_dir else {}
    spec = spec_for_model(meta, est.input_shape_)
    ds = load_dataset(
        source, progress=False, size=spec.size, color=spec.color, fit=spec.fit, **kwargs
    )
    if len(ds.test.X) == 0 or len(ds.train.X) == 0:
        raise ObjrecError(f"{source}: --quantize int8 needs a training and a test split")
    pick = np.linspace(0, len(ds.train.X) - 1, min(n_calib, len(ds.train.X))).round().astype(int)
    test = slice(0, n)
    return (
        input_images(est, ds.test.X[test], meta),
        np.asarray(ds.test.y[test]),
        input_images(est, ds.train.X[pick], meta),
    )


def run(args) -> int:
    import objrec
    from objrec.artifact import resolve
    from objrec.io import write_json
    from objrec.serving.export import export, latency_ms, runner

    folder = resolve(args.model)
    if args.format == "archive":
        from objrec.artifact import pack

        out = pack(folder, args.output)
        print(f"objrec: wrote {out} ({out.stat().st_size / 1024:.1f} KiB)")
        return 0
    est = objrec.load(folder)
    meta = est.objrec_metadata_
    if meta.task == "segment":
        from objrec.errors import ObjrecError

        raise ObjrecError(
            f"{args.model}: a segmentation model ({meta.method}); export a U-Net with "
            f"objrec segment export {args.model} (ONNX, with its parity check)"
        )
    # an archive unpacks into a temporary folder: write beside the archive instead
    home = folder if Path(args.model).is_dir() else Path(args.model).parent
    default_name = {
        "onnx": "model.onnx",
        "torchscript": "model.pt",
        "executorch": "model.pte",
        "triton": "triton",
        "tflite": "model.tflite",
    }
    out = Path(args.output) if args.output else home / default_name[args.format]
    labels = calib = None
    if args.quantize:
        X, labels, calib = quantization_data(
            est, meta, args.check_data, args.check_size, args.calibration_size, args.data_dir
        )
    else:
        X = check_images_for(est, meta, args.check_data, args.check_size or 256, args.data_dir)
    result = export(
        est,
        out,
        format=args.format,
        check_images=X,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        tolerance=args.tolerance,
        quantize=args.quantize,
        calibration_images=calib,
        check_labels=labels,
    )
    side = {
        **result.as_dict(),
        "input": {
            "name": "images",
            "dtype": "uint8",
            "shape": [
                "batch"
                if (args.dynamic_batch or args.format != "onnx") and args.format != "tflite"
                else 1,
                *est.input_shape_,
            ],
            "meaning": "raw pixels 0..255, (N, H, W) grey or (N, H, W, C) RGB, resized to the model's input",
        },
        "output": {"name": "probabilities", "shape": ["batch", len(est.classes_)]},
        "classes": list(meta.classes),
        "method": meta.method,
        "preprocessing": "inside the graph",
    }
    written = result.path
    if args.format == "triton":  # the ONNX file inside the repository
        written = result.path / "1" / "model.onnx"
        side["triton"] = {"repository": str(out), "model": result.path.name}
        print(f"objrec: wrote {result.path / 'config.pbtxt'}")
    write_json(written.with_name(written.name + ".json"), side)
    print(f"objrec: wrote {written} ({written.stat().st_size / 1024:.1f} KiB)")
    for r in result.reports:
        print(f"  parity {r}")
    if result.quantization is not None:
        print(f"  {result.quantization}")
    run_as = "onnx" if args.format == "triton" else args.format
    ms = latency_ms(runner(written, run_as), X[:1])
    print(f"  latency of one image: {ms:.3f} ms (median of 50 runs)")
    return 0
