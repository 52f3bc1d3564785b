"""Training-step throughput of objrec's networks: NCHW against NHWC (channels-last), and
NHWC in bf16 autocast where the CPU computes bf16 in hardware (AMX or AVX512-BF16).

    flock /tmp/objrec-bench.lock python benchmarks/train_step.py [--seconds 4] [--rounds 3]

For each network and memory format: Adam steps (forward, cross-entropy, backward, update)
on a fixed random batch of 1x28x28 float images on 2 threads, the two formats taking turns
in ``--rounds`` rounds over ``--seconds`` per format (``timing.interleaved_rates``);
images/s of the median round. The figures behind ``CNNClassifier``'s choice of NHWC and
behind ``precision="bf16"``.
Prints a Markdown table and appends it to ``benchmarks/results/train_step.md``.
"""

from __future__ import annotations

from pathlib import Path

from timing import append_results, command_line, interleaved_rates, turns_args

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.md"
CASES = (("simple_cnn", 128), ("simple_cnn", 256), ("lenet5", 128), ("resnet_small", 128))


def stepper(
    model: str,
    batch: int,
    channels_last: bool,
    bf16: bool = False,
    *,
    shape: tuple[int, int, int] = (1, 28, 28),
    model_args: dict | None = None,
    make_optimizer=None,
):
    """A function doing one training step of ``model`` on a fixed random batch of
    ``shape`` (C, H, W) images; ``make_optimizer(parameters)`` builds the optimiser (Adam
    at 1e-3 when None)."""
    import contextlib

    import torch

    from objrec.nets import create_model

    torch.manual_seed(0)
    c, h, w = shape
    net = create_model(model, c, 10, (h, w), **(model_args or {})).train()
    x, y = torch.randn(batch, c, h, w), torch.randint(0, 10, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = net.parameters()
    opt = make_optimizer(params) if make_optimizer else torch.optim.Adam(params, 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = loss_fn(net(x).float(), y)
        loss.backward()
        opt.step()

    return step


def main() -> int:
    from objrec.training.runtime import native_bf16

    args = turns_args(__doc__, 12.0, "network and format")
    formats = ("NCHW", "NHWC", "NHWC bf16") if native_bf16() else ("NCHW", "NHWC")
    lines = [
        command_line("train_step.py", args),
        "",
        "| network | batch | NCHW images/s | NHWC images/s | NHWC / NCHW "
        "| NHWC bf16 images/s | bf16 / fp32 (NHWC) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, batch in CASES:
        cells = {f: stepper(model, batch, "NHWC" in f, "bf16" in f) for f in formats}
        r = interleaved_rates(cells, batch, args.seconds, args.rounds)
        a, b = r["NCHW"]["images_per_s"], r["NHWC"]["images_per_s"]
        c = r.get("NHWC bf16", {}).get("images_per_s")
        bf16 = f"{c:,.0f} | {c / b:.2f}x" if c else "- (no native bf16) | -"
        lines.append(f"| {model} | {batch} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {bf16} |")
        print(lines[-1], flush=True)
    append_results(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
