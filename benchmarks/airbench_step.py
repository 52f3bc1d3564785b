"""Where one training step of the ``airbench`` recipe spends its time, by operator, and
what a plain matrix product reaches on the same cores.

    python benchmarks/airbench_step.py --threads 2

1. ``--steps`` steps of the airbench network (batch 1,024, 32x32 RGB, bf16 autocast,
   channels-last, the recipe's optimiser and loss; ``cifar_cnn.train_step``) are timed
   whole, then again with every ATen operator timed by a ``TorchDispatchMode``
   (``perf_counter`` around each call; on a CPU each operator finishes before it
   returns). FLOPs per image: ``cifar_cnn.train_flops_per_image``. The operators are summed by kind
   (convolution forward and backward, max pool, GELU, BatchNorm, dtype copies, the rest)
   and listed by operator and input shape. The images are random: the time of a step does
   not depend on its pixels.
2. A square matrix product of ``--matmul`` rows in bf16 and fp32: the rate oneDNN reaches
   on these cores without a convolution's shapes, the reference for the step's
   throughput next to the nominal peaks of ``benchmarks/cifar_cnn.py``.

torch.profiler is not used: on 2 cores it charged the max pool backward's zero fill of a
(1024, 64, 31, 31) tensor 140-200 ms per step, which timed here costs 8 ms.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks_md import machine
from cifar_cnn import train_flops_per_image, train_step
from objrec.cpu import keep_freed_memory
from objrec.nets import create_model
from objrec.nets.airbench import WIDTHS
from objrec.training import airbench
from objrec.training.recipes import AIRBENCH_RECIPE


def kind(op: str) -> str:
    if op == "convolution_backward":
        return "convolution backward"
    if op == "convolution":
        return "convolution forward"
    for prefix, name in (("max_pool", "max pool"), ("gelu", "GELU")):
        if op.startswith(prefix):
            return name + " (forward + backward)"
    if "batch_norm" in op:
        return "BatchNorm (forward + backward)"
    if op in ("_to_copy", "copy_", "clone"):
        return "dtype and layout copies"
    return "the rest"


class OpTimer(TorchDispatchMode):
    """Seconds per (operator, shape of its first tensor argument)."""

    def __init__(self):
        super().__init__()
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        shape = next((tuple(a.shape) for a in args if isinstance(a, torch.Tensor)), ())
        key = (func.overloadpacket.__name__, shape)
        self.seconds[key] += time.perf_counter() - t
        self.calls[key] += 1
        return out


def make_step(batch: int):
    torch.manual_seed(0)
    net = create_model("airbench", in_channels=3, num_classes=10, input_size=(32, 32))
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    net.init_whitening(x[:500])
    net.to(memory_format=torch.channels_last)
    net.whiten.bias.requires_grad_(True)  # as in the recipe's first epochs
    rec = AIRBENCH_RECIPE
    opt = airbench.make_optimizer(net, rec["lr"], rec["weight_decay"], batch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=rec["label_smoothing"], reduction="none")

    return lambda: train_step(net, opt, loss_fn, x, y, amp=True)


def matmul_rate(n: int, dtype: torch.dtype, repeats: int = 7) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / sorted(times)[repeats // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=AIRBENCH_RECIPE["batch_size"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--matmul", type=int, default=2048)
    p.add_argument("--top", type=int, default=12, help="operators listed by shape")
    args = p.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    print(machine(), f"| torch {torch.__version__}, {args.threads} threads")
    step = make_step(args.batch)
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - t) / args.steps
    timer = OpTimer()
    t = time.perf_counter()
    with timer:
        for _ in range(args.steps):
            step()
    timed = (time.perf_counter() - t) / args.steps
    total = sum(timer.seconds.values()) / args.steps
    rate = train_flops_per_image(WIDTHS) * args.batch / wall
    print(
        f"step, batch {args.batch}: {wall:.3f} s ({rate / 1e12:.3f} TFLOP/s); with the "
        f"operators timed {timed:.3f} s, of which the operators {total:.3f} s"
    )
    kinds = defaultdict(float)
    for (op, _), s in timer.seconds.items():
        kinds[kind(op)] += s / args.steps
    for name, s in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:34s} {1000 * s:7.1f} ms  {100 * s / total:4.1f}%")
    print("largest operators (ms per step, calls per step, first input's shape):")
    top = sorted(timer.seconds.items(), key=lambda kv: -kv[1])[: args.top]
    for (op, shape), s in top:
        n = timer.calls[(op, shape)] // args.steps
        print(f"  {1000 * s / args.steps:7.1f} ms  x{n}  {op} {shape}")
    for dtype in (torch.bfloat16, torch.float32):
        r = matmul_rate(args.matmul, dtype)
        print(f"{args.matmul}^3 matrix product, {dtype}: {r / 1e12:.2f} TFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
