"""Network forward and training steps with glibc's default allocator and with objrec's.

    python benchmarks/allocator.py [--rounds 2]

``objrec.cpu.keep_freed_memory`` (applied by the ``objrec`` command) keeps freed memory in
the heap. This times, in child processes that take turns, EfficientNet-Lite0 (random
weights: the cost does not depend on them) on 2 threads: the forward pass of a batch of 32
at 224x224 and at 160x160 (inference, as in feature extraction and evaluation) and a
training step (AdamW, batch 32, channels-last, BatchNorm frozen as in fine-tuning) at
160x160 and at 224x224 (batch 16), with glibc's defaults and with ``keep_freed_memory``.
Prints a Markdown table of the medians (ms per image) and the ratio, and each child's
peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchmarks_md import machine

CHILD = r"""
import json, resource, sys, time
if sys.argv[1] == "kept":
    from objrec.cpu import keep_freed_memory
    assert keep_freed_memory()
import torch
from objrec.nets.registry import create_model
torch.set_num_threads(2)

def net(side):
    return create_model("efficientnet_lite0", 3, 10, (side, side), image_size=side)

def forward(side, batch=32, reps=3):
    m = net(side).eval()
    x = torch.randn(batch, 3, side, side)
    with torch.no_grad():
        m(x)
        t = time.perf_counter()
        for _ in range(reps):
            m(x)
    return (time.perf_counter() - t) / reps / batch * 1e3

def step(side, batch, reps=4):
    m = net(side).to(memory_format=torch.channels_last).train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eval()
    opt = torch.optim.AdamW(m.parameters(), 1e-3)
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) / batch * 1e3

import statistics
out = {
    "forward 224, batch 32": forward(224),
    "forward 160, batch 32": forward(160),
    "train step 160, batch 32": step(160, 32),
    "train step 224, batch 16": step(224, 16),
    "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}
print(json.dumps(out))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    runs: dict[str, list[dict]] = {"default": [], "kept": []}
    for r in range(args.rounds):
        for mode in ("default", "kept") if r % 2 == 0 else ("kept", "default"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(out.stderr[-2000:])
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(mode, runs[mode][-1], flush=True)
    print(f"\n{machine()}; load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| measure | glibc defaults | kept (objrec) | ratio |\n|---|---|---|---|")
    for key in runs["default"][0]:
        a = statistics.median(x[key] for x in runs["default"])
        b = statistics.median(x[key] for x in runs["kept"])
        unit = "" if "RSS" in key else " ms/img"
        print(f"| {key} | {a:.1f}{unit} | {b:.1f}{unit} | {b / a:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
