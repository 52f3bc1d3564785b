"""Training steps with PyTorch's looped optimiser update against its fused one, on the CPU.

    python benchmarks/optimizer_step.py [--seconds 24] [--rounds 4]

For each case (a network with the optimiser, batch and input size it trains with in
``compare``'s quick budget on a folder of photos at 64x64): whole training steps (forward,
cross-entropy, backward, update) on a fixed random batch, 2 threads, the update either
PyTorch's CPU default (``fused=None``: a Python loop over the parameter tensors) or
``fused=True`` (one kernel over all of them), the two taking turns in ``--rounds`` rounds
(``timing.interleaved_rates``). The figures behind ``methods.cnn._make_optimizer``'s fused
update. Prints a Markdown table and appends it to ``benchmarks/results/optimizer_step.md``.
"""

from __future__ import annotations

from pathlib import Path

import train_step
from timing import append_results, command_line, interleaved_rates, turns_args

RESULTS = Path(__file__).resolve().parent / "results" / "optimizer_step.md"
# network, optimiser, batch, model arguments (the quick budget's on 64x64 colour images)
CASES = (
    ("simple_cnn", "adam", 64, {}),
    ("resnet_small", "sgd", 128, {}),
    ("efficientnet_lite0", "adamw", 16, {"image_size": (160, 160)}),
)


def stepper(model: str, optimizer: str, batch: int, model_args: dict, fused: bool):
    """A function doing one NHWC training step of ``model`` on a fixed (batch, 3, 64, 64)
    batch, ``optimizer`` built as ``CNNClassifier`` builds it, updating looped (PyTorch's
    CPU default) or ``fused``."""
    from objrec.methods.cnn import _make_optimizer

    def make(params):
        return _make_optimizer(optimizer, [{"params": list(params), "lr": 1e-4}], 0.01, fused=fused)

    return train_step.stepper(
        model, batch, True, shape=(3, 64, 64), model_args=model_args, make_optimizer=make
    )


def main() -> int:
    args = turns_args(__doc__, 24.0, "case and update")
    from benchmarks_md import machine

    lines = [
        command_line("optimizer_step.py", args, machine()),
        "",
        "| network | optimiser | batch | looped ms/step | fused ms/step | fused / looped time |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for model, opt, batch, margs in CASES:
        cells = {f: stepper(model, opt, batch, margs, f == "fused") for f in ("looped", "fused")}
        r = interleaved_rates(cells, batch, args.seconds, args.rounds)
        a, b = (1000 * batch / r[f]["images_per_s"] for f in ("looped", "fused"))
        lines.append(f"| {model} | {opt} | {batch} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
        print(lines[-1], flush=True)
    append_results(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
