"""The GPU path, checked in one run of under 10 minutes on a machine with CUDA GPUs.

    python benchmarks/gpu_check.py [--out DIR] [--data-dir DIR]   # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick            # the same steps, tiny, on CPU

Needs a Python with objrec[torch] (``pip install -e '.[torch]'``; ``torchrun`` beside it).
Each step runs in its own process under a time limit, fails alone, and lands in
``OUT/gpu_check.json`` (default ``benchmarks/results/gpu_check.json``):

1. ``env``: PyTorch, CUDA and cuDNN versions, the GPUs, bf16 support.
2. ``steps``: training-step throughput (images/s) of simple_cnn and resnet_small on a fixed
   random batch of 512: fp32 NCHW, fp32 channels-last, and bf16 autocast in channels-last,
   which is what ``objrec train`` runs on CUDA (``--precision auto`` is bf16 there).
3. ``train``: ``objrec train digits --model simple_cnn`` on one GPU in bf16 (bundled data).
4. ``ddp``: with two or more GPUs (always on CPU), ``objrec train`` under
   ``torchrun --standalone --nproc_per_node 2`` (nccl on CUDA, gloo on CPU) in fp32, against
   one process taking the same global batches: the largest weight difference, small where
   the gradients are averaged right (under 1e-3 passes; TF32 convolutions and cuDNN's
   algorithms make it larger on a GPU than the 3e-8 measured on CPU).
5. ``airbench``: where ``objrec nets list`` has ``airbench``, ``objrec train cifar10 --model
   airbench`` with its recipe: training seconds and test accuracy (the time to 94%);
   skipped otherwise, and failing alone where the CIFAR-10 files are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's objrec, installed or not
WORKER = ROOT / "tests" / "training" / "torchrun_worker.py"
DIGITS = ["train", "digits", "--model", "simple_cnn", "--min-steps", "0", "--quiet"]
DDP_ARGS = [*DIGITS, "--limit", "512", "--epochs", "1", "--batch-size", "64",
            "--optimizer", "sgd", "--lr", "0.1", "--schedule", "constant", "--augment", "none",
            "--precision", "fp32", "--seed", "0"]  # fmt: skip


def run(args: list[str], timeout: float, env: dict | None = None) -> dict:
    """``args`` in a child process: exit status, seconds and the tail of its output."""
    t0 = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode() + (e.stderr or b"").decode()
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 1), "tail": out[-1500:]}


def env_info(device: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    if device == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info


def step_rates(device: str, seconds: float) -> list[dict]:
    """images/s of Adam training steps on one fixed batch, per network and format."""
    import contextlib

    import torch

    from objrec.nets import create_model

    rows = []
    for model, channels, side, batch in (("simple_cnn", 1, 28, 512), ("resnet_small", 3, 32, 512)):
        for fmt, nhwc, bf16 in (
            ("fp32 NCHW", False, False),
            ("fp32 channels-last", True, False),
            ("bf16 channels-last", True, True),
        ):
            torch.manual_seed(0)
            net = create_model(model, channels, 10, (side, side)).to(device)
            x = torch.randn(batch, channels, side, side, device=device)
            y = torch.randint(0, 10, (batch,), device=device)
            if nhwc:
                net = net.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            opt, loss_fn = torch.optim.Adam(net.parameters(), 1e-3), torch.nn.CrossEntropyLoss()
            cast = torch.autocast(device, torch.bfloat16) if bf16 else contextlib.nullcontext()

            def step(net=net, x=x, y=y, opt=opt, loss_fn=loss_fn, cast=cast):
                opt.zero_grad(set_to_none=True)
                with cast:
                    loss = loss_fn(net(x).float(), y)
                loss.backward()
                opt.step()

            def sync():
                if device == "cuda":
                    torch.cuda.synchronize()

            for _ in range(3):  # warm-up: cuDNN's algorithm search, allocations
                step()
            sync()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                step()
                n += 1
            sync()
            rate = n * batch / (time.perf_counter() - t0)
            rows.append({"model": model, "format": fmt, "batch": batch, "images_s": round(rate)})
            print(f"  {model:13s} {fmt:19s} {rate:10.0f} images/s", flush=True)
    return rows


def metrics_of(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    m = json.loads(path.read_text())
    return {k: m.get(k) for k in ("test_accuracy", "val_accuracy", "train_seconds", "epochs")}


def ddp_check(device: str, out: Path, quick: bool) -> dict:
    """2 ranks under torchrun against 1 process: the largest weight difference."""
    from safetensors.torch import load_file

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        return {"skipped": "torchrun not found beside this Python"}
    args = [*DDP_ARGS, "--device", device, *(["--threads", "1"] if device == "cpu" else [])]
    res = {}
    for name, launch in (
        ("one", [sys.executable]),
        ("ddp", [str(torchrun), "--standalone", "--nproc_per_node", "2"]),
    ):
        (out / name).mkdir(parents=True, exist_ok=True)
        cmd = [*launch, str(WORKER), str(out / name), *args, "--out", str(out / f"run-{name}")]
        res[name] = run(cmd, timeout=60 if quick else 150)
        if res[name]["rc"] != 0:
            return {**res, "rc": res[name]["rc"]}
    w = {n: load_file(str(out / n)) for n in
         ("one/rank0-end.safetensors", "ddp/rank0-end.safetensors", "ddp/rank1-end.safetensors")}  # fmt: skip
    one, r0, r1 = w.values()
    res["max_diff_ddp_vs_one"] = max((r0[k] - one[k]).abs().max().item() for k in one)
    res["ranks_equal"] = all((r0[k] == r1[k]).all().item() for k in one)
    res["metrics"] = metrics_of(out / "run-ddp")
    res["rc"] = 0 if res["ranks_equal"] and res["max_diff_ddp_vs_one"] < 1e-3 else 1
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--quick", action="store_true", help="a few seconds per step (a dry run)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--data-dir", help="folder holding CIFAR-10 for the airbench step")
    p.add_argument("--cifar", default="cifar10", help="dataset name or folder for airbench")
    a = p.parse_args()
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --device cpu for a dry run", file=sys.stderr)
        return 2
    work = a.out / "gpu_check_runs"
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"env": env_info(a.device), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(report["env"]), flush=True)

    print("steps: training-step throughput", flush=True)
    report["steps"] = step_rates(a.device, 1.0 if a.quick else 10.0)

    print("train: objrec train digits on one device", flush=True)
    one = [sys.executable, "-m", "objrec", *DIGITS, "--epochs", "2" if a.quick else "10"]
    one += ["--device", a.device, "--precision", "bf16" if a.device == "cuda" else "fp32"]
    report["train"] = run([*one, "--out", str(work / "digits"), "--overwrite"], timeout=180)
    report["train"]["metrics"] = metrics_of(work / "digits")

    gpus = torch.cuda.device_count() if a.device == "cuda" else 2
    print(f"ddp: {gpus} {a.device} device(s)", flush=True)
    if gpus >= 2:
        report["ddp"] = ddp_check(a.device, work / "ddp", a.quick)
    else:
        report["ddp"] = {"skipped": "one GPU"}

    from objrec.nets import list_models

    print("airbench: the CIFAR-10 recipe", flush=True)
    if "airbench" not in list_models():
        report["airbench"] = {"skipped": "no airbench in objrec nets list"}
    elif a.device != "cuda":
        report["airbench"] = {"skipped": "GPU only"}
    else:
        cmd = [sys.executable, "-m", "objrec", "train", a.cifar, "--model", "airbench"]
        cmd += ["--device", "cuda", "--quiet", "--out", str(work / "airbench"), "--overwrite"]
        cmd += ["--data-dir", a.data_dir] if a.data_dir else []
        report["airbench"] = run(cmd, timeout=240)
        report["airbench"]["metrics"] = metrics_of(work / "airbench")
        acc = report["airbench"]["metrics"].get("test_accuracy")
        report["airbench"]["reached_94"] = acc is not None and acc >= 0.94

    for name in ("train", "ddp", "airbench"):
        r = {k: v for k, v in report[name].items() if k not in ("tail", "one", "ddp")}
        print(f"{name}: {json.dumps(r, default=str)[:600]}", flush=True)
    path = a.out / ("gpu_check-cpu.json" if a.device == "cpu" else "gpu_check.json")
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"-> {path}")
    failed = [n for n in ("train", "ddp", "airbench") if report[n].get("rc") not in (None, 0)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
