"""Using a trained model: preprocessing of raw images, top-k prediction, export to
ONNX/TorchScript with parity checks, and the REST server with its web page.

Nothing heavy is imported here; ``objrec.serving.export`` imports PyTorch/ONNX and
``objrec.serving.app`` FastAPI only when used.
"""
