"""Inference and serving benchmark: simple_cnn batch inference (PyTorch eager against ONNX
Runtime) and the REST server under a bounded loopback load test.

    flock /tmp/objrec-bench.lock python benchmarks/serving.py [--requests 20000] [--concurrency 32]
    flock /tmp/objrec-bench.lock python benchmarks/serving.py --server-only --routes v1 v2 v2bin \
        --repeats 4

1. Trains ``simple_cnn`` for one epoch on 20,000 MNIST training images (../shared/data/mnist;
   the weights do not change the speed, the accuracy shows the model is a real one), saves it.
2. Batch inference on MNIST test images at batch 1 and 256: PyTorch eager (the network on
   pre-normalised tensors, ``torch.inference_mode``, 2 threads), an ONNX Runtime session on
   the exported graph (uint8 images in, preprocessing and softmax inside) given the whole
   batch with 1 and 2 intra-op threads, and objrec's ``Predictor`` (the path of
   ``objrec predict`` and ``objrec serve``: the batch shared out between 2 threads, each
   running a 1-thread session on its share in cache-sized chunks). The cells take turns
   in ``--rounds`` rounds over ``--seconds`` per cell, after warm-up; the table gives the
   median round and the best one.
3. ``objrec serve`` (1 and 2 worker processes, ONNX Runtime, 1 thread each) loaded with
   ``hey`` (Debian package ``hey``): ``--requests`` POST /v1/predict requests, each one
   28x28 PNG as multipart, ``--concurrency`` connections on 127.0.0.1; requests/s,
   p50/p99 latency and errors. ``--routes v1 v2`` loads each server with both APIs, one after
   the other: ``POST /v1/predict`` (the PNG as multipart) and the Open Inference Protocol's
   ``POST /v2/models/simple_cnn/infer`` (the same image decoded, as the JSON tensor a KServe
   or Triton client sends: ``{"inputs": [{"name": "images", "datatype": "UINT8", "shape":
   [1, 28, 28, 1], "data": [...]}]}``). ``v2bin`` sends that tensor in the binary tensor data
   extension instead, as ``tritonclient`` does by default (JSON header + raw bytes, the
   ``Inference-Header-Content-Length`` header, output asked for in binary). ``--repeats K``
   runs the routes K times per server, every other pass in reverse order.

``--server-only`` skips step 2 and writes the section ``## Serving: REST v1 against the
Open Inference Protocol v2`` instead (the batch tables stay as they are).

Writes ``benchmarks/results/serving.json`` and the ``## Inference and serving`` section of
BENCHMARKS.md. Records ``os.getloadavg()`` before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks_md import machine, write_section
from timing import interleaved_rates

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
RESULTS_V1_V2 = ROOT / "benchmarks" / "results" / "serving_v1_v2.json"


def command_line(argv: list[str]) -> str:
    """The command as run: with its ``flock`` prefix only when the parent process is that flock."""
    import shlex

    try:
        parent = [
            a.decode() for a in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
        ]
        lock = parent[1] if parent[0].endswith("flock") and len(parent) > 1 else None
    except (OSError, UnicodeDecodeError):
        lock = None
    shown = ["TEXT" if i > 0 and argv[i - 1] == "--notes" else a for i, a in enumerate(argv)]
    cmd = shlex.join(["python", "benchmarks/serving.py", *shown])
    return f"flock {shlex.quote(lock)} {cmd}" if lock else cmd


def batch_inference(est, X: np.ndarray, seconds: float, rounds: int) -> list[dict]:
    import torch

    from objrec.serving.export import onnx_session, to_onnx_bytes
    from objrec.serving.predictor import Predictor

    torch.set_num_threads(2)
    rows = []
    data = to_onnx_bytes(est, dynamic_batch=True)
    sessions = {t: onnx_session(data, threads=t) for t in (1, 2)}
    predictor = Predictor(est, backend="onnxruntime", threads=2)
    chunk = predictor.chunk_size
    for bs in (1, 256):
        xb = X[:bs]
        xt = est.to_tensor(xb)

        def eager(xt=xt):
            with torch.inference_mode():
                return est.model_(xt)

        cells = {
            "PyTorch eager (network only), 2 threads": eager,
            "PyTorch, predict_proba (uint8 in)": lambda xb=xb: est.predict_proba(xb),
        }
        for t, sess in sessions.items():
            name = f"ONNX Runtime session, whole batch (uint8 in), {t} thread{'s' * (t > 1)}"
            cells[name] = lambda xb=xb, s=sess: s.run(["probabilities"], {"images": xb})
        name = f"objrec Predictor: ONNX Runtime, 2 threads x 1, chunks of {chunk} (uint8 in)"
        cells[name] = lambda xb=xb: predictor.scores(xb)
        for name, r in interleaved_rates(cells, bs, seconds, rounds).items():
            rows.append({"runtime": name, "batch": bs, **r})
            print(
                f"  batch {bs:>3}  {name:<70} {r['images_per_s']:>9,.0f} images/s "
                f"(best round {r['best_images_per_s']:,.0f})"
            )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart_body(png: bytes, boundary: str = "objrecbenchboundary") -> tuple[bytes, str]:
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def v2_body(image: np.ndarray) -> tuple[bytes, str]:
    """An Open Inference Protocol v2 infer request for one uint8 image ``(H, W)`` or
    ``(H, W, C)``: a JSON tensor ``images`` of shape ``[1, H, W, C]``, and its content type."""
    x = np.asarray(image, np.uint8)
    x = x[None, ..., None] if x.ndim == 2 else x[None]
    request = {
        "inputs": [
            {
                "name": "images",
                "datatype": "UINT8",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ]
    }
    return json.dumps(request).encode(), "application/json"


def v2_binary_body(image: np.ndarray) -> tuple[bytes, str, int]:
    """The same infer request in the binary tensor data extension, as ``tritonclient`` sends
    it by default: a JSON header (the tensor's ``binary_data_size``, and the output asked for
    in binary) followed by the raw uint8 pixels. Returns the body, its content type and the
    header's length in bytes (the ``Inference-Header-Content-Length`` value)."""
    from objrec.serving.v2 import INPUT_NAME, OUTPUT_NAME

    x = np.asarray(image, np.uint8)
    x = x[None, ..., None] if x.ndim == 2 else x[None]
    raw = np.ascontiguousarray(x).tobytes()
    header = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "datatype": "UINT8",
                "shape": list(x.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return head + raw, "application/octet-stream", len(head)


def v2_binary_probabilities(response) -> list[float]:
    """The float32 probabilities of a binary-output infer response (``httpx.Response``)."""
    n = int(response.headers["inference-header-content-length"])
    return np.frombuffer(response.content[n:], np.float32).tolist()


def route_orders(routes: list[str], repeats: int) -> list[str]:
    """``repeats`` passes over ``routes``, every other pass reversed (v1 v2, v2 v1, ...), so
    that no route always runs first on a warm or a cold server."""
    out = []
    for k in range(repeats):
        out += routes if k % 2 == 0 else routes[::-1]
    return out


def parse_hey(text: str) -> dict:
    def num(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None

    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    err = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", text)
    n_err = sum(int(x) for x in re.findall(r"\[(\d+)\]", err.group(1))) if err else 0
    return {
        "requests_per_s": num(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": 1000 * (num(r"50%+ in ([\d.]+) secs") or float("nan")),
        "p90_ms": 1000 * (num(r"90%+ in ([\d.]+) secs") or float("nan")),
        "p99_ms": 1000 * (num(r"99%+ in ([\d.]+) secs") or float("nan")),
        "status_codes": codes,
        "non_200": sum(n for c, n in codes.items() if c != 200),
        "transport_errors": n_err,
    }


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root`` and all its descendants (Linux /proc)."""
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(f[1]), int(f[11]) + int(f[12]))  # ppid, utime + stime
    keep, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == parent and pid not in keep:
                keep.add(pid)
                frontier.append(pid)
    return sum(stats[p][1] for p in keep if p in stats) / os.sysconf("SC_CLK_TCK")


def load_test(
    model_dir: Path,
    png: bytes,
    workers: int,
    n: int,
    c: int,
    tmp: Path,
    *,
    routes=("v1",),
    image: np.ndarray | None = None,
    model_name: str = "simple_cnn",
) -> list[dict]:
    """``hey`` against one ``objrec serve`` with ``workers`` processes, once per route.

    ``routes``: "v1" (``png`` as multipart to /v1/predict), "v2" (``image``, the decoded
    PNG, as a JSON tensor to /v2/models/``model_name``/infer) and/or "v2bin" (the same tensor
    in the binary tensor data extension, output in binary too); a route may appear several
    times (:func:`route_orders`), each a row of its own with its ``repeat`` number. Each row
    gets a warm-up of ``min(n, 2000)`` requests, then ``n`` timed ones at concurrency ``c``.
    """
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / f"server-{workers}.log", "w")
    cmd = [sys.executable, "-m", "objrec", "serve", str(model_dir), "--port", str(port)]
    cmd += ["--workers", str(workers), "--threads", "1", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        up = 0
        while up < 20:  # every worker answers before the clock starts
            try:
                up += httpx.get(url + "/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.3)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / f"server-{workers}.log").read_text())
        results, seen = [], {}
        for route in routes:
            headers = {}
            if route == "v1":
                body, ctype = multipart_body(png)
                target = url + "/v1/predict"
            elif route == "v2":
                body, ctype = v2_body(image)
                target = f"{url}/v2/models/{model_name}/infer"
            elif route == "v2bin":
                body, ctype, head = v2_binary_body(image)
                headers = {"Inference-Header-Content-Length": str(head)}
                target = f"{url}/v2/models/{model_name}/infer"
            else:
                raise ValueError(f"unknown route {route!r}; use v1, v2 or v2bin")
            seen[route] = seen.get(route, 0) + 1
            (tmp / "body.bin").write_bytes(body)
            check = httpx.post(target, content=body, headers={"content-type": ctype, **headers})
            assert check.status_code == 200, check.text
            hey = ["hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", ctype]
            hey += [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
            hey += ["-D", str(tmp / "body.bin")]
            subprocess.run(
                [*hey[:2], str(min(n, 2000)), *hey[3:], target], capture_output=True, check=True
            )
            cpu0, hey0 = tree_cpu_seconds(proc.pid), os.times()
            out = subprocess.run([*hey, target], capture_output=True, text=True, check=True).stdout
            hey1 = os.times()
            server_cpu = tree_cpu_seconds(proc.pid) - cpu0
            hey_cpu = (
                hey1.children_user
                + hey1.children_system
                - hey0.children_user
                - hey0.children_system
            )
            res = {"workers": workers, "route": route, "repeat": seen[route]}
            res.update({"position": len(results), "requests": n, "concurrency": c})
            res.update(parse_hey(out))
            res["request_bytes"] = len(body)
            res["server_cpu_ms_per_request"] = 1000 * server_cpu / n
            res["client_cpu_ms_per_request"] = 1000 * hey_cpu / n
            if route == "v1":
                res["prediction"] = check.json()["predictions"][0]["top_k"][0]
            elif route == "v2bin":
                proba = v2_binary_probabilities(check)
                res["prediction"] = {"index": int(np.argmax(proba)), "probability": max(proba)}
            else:
                proba = check.json()["outputs"][0]["data"]
                res["prediction"] = {"index": int(np.argmax(proba)), "probability": max(proba)}
            results.append(res)
        return results
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


V1_V2_HEADING = "Serving: REST v1 against the Open Inference Protocol v2"


def v1_v2_section(res: dict) -> str:
    """The ``## Serving: REST v1 against the Open Inference Protocol v2`` section."""
    la0, la1 = res["loadavg_before"], res["loadavg_after"]
    lines = [
        f"## {V1_V2_HEADING}",
        "",
        f"Command: `{res['command']}`"
        + ("" if res["command"].startswith("flock") else " (not under the benchmark lock)")
        + f" ({res['date']}, git {res['git'] or '?'}). Load average (1/5/15 min) before "
        f"{la0[0]:.1f}/{la0[1]:.1f}/{la0[2]:.1f}, after {la1[0]:.1f}/{la1[1]:.1f}/{la1[2]:.1f} "
        f"on this shared machine: {res.get('machine', 'not recorded')}. Model: `simple_cnn` "
        f"trained 1 epoch on {res['train_size']:,} MNIST images (test accuracy "
        f"{res['test_accuracy']:.2%}), served by `objrec serve` (ONNX Runtime, 1 thread per "
        f"worker). `hey`: {res['requests']:,} requests per row after a warm-up, concurrency "
        f"{res['concurrency']}, loopback. v1: `POST /v1/predict`, one 28x28 PNG as multipart "
        "(the server decodes it, answers top-k, label and OOD score as JSON). v2: `POST "
        "/v2/models/simple_cnn/infer`, the same image as a JSON tensor, UINT8 `[1, 28, 28, 1]` "
        "(no decode; answers the 10 probabilities as a JSON tensor). v2bin: the same request "
        "in the binary tensor data extension (tritonclient's default: a JSON header, then the "
        "784 raw bytes; the probabilities answered as raw float32). All routes of a worker "
        "count hit the same server process(es); with several repeats the order alternates "
        "(v1 v2 v2bin, then v2bin v2 v1, ...).",
        "",
        "| workers | route | repeat | request bytes | requests/s | p50 ms | p90 ms | p99 ms "
        "| non-200 | transport errors | server CPU ms/request | hey CPU ms/request |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["server"]:
        lines.append(
            f"| {r['workers']} | {r['route']} | {r.get('repeat', 1)} | {r['request_bytes']:,} | "
            f"{r['requests_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['non_200']} | {r['transport_errors']} "
            f"| {r['server_cpu_ms_per_request']:.2f} | {r['client_cpu_ms_per_request']:.2f} |"
        )
    lines.append("")
    for w in sorted({r["workers"] for r in res["server"]}):
        med = route_medians([r for r in res["server"] if r["workers"] == w])
        if "v1" not in med:
            continue
        v1 = med["v1"]
        parts = [
            f"{route} / v1 requests/s {m['requests_per_s'] / v1['requests_per_s']:.2f}x, "
            f"p99 {m['p99_ms'] / v1['p99_ms']:.2f}x, server CPU per request "
            f"{m['server_cpu_ms_per_request'] / v1['server_cpu_ms_per_request']:.2f}x"
            for route, m in med.items()
            if route != "v1"
        ]
        n = max(m["n"] for m in med.values())
        lines.append(
            f"- {w} worker(s), medians of {n} repeat(s): "
            + ", ".join(f"{route} {m['requests_per_s']:,.0f} req/s" for route, m in med.items())
            + "; "
            + "; ".join(parts)
            + "."
        )
    lines.append("")
    if res.get("notes"):
        lines += [res["notes"], ""]
    return "\n".join(lines)


def route_medians(rows: list[dict]) -> dict:
    """Per route (in first-seen order): the median requests/s, p99 and server CPU per request
    over that route's rows, and ``n``, the number of rows."""
    out = {}
    for route in dict.fromkeys(r["route"] for r in rows):
        mine = [r for r in rows if r["route"] == route]
        out[route] = {
            k: float(np.median([r[k] for r in mine]))
            for k in ("requests_per_s", "p99_ms", "server_cpu_ms_per_request")
        }
        out[route]["n"] = len(mine)
    return out


def section(res: dict) -> str:
    la0, la1 = res["loadavg_before"], res["loadavg_after"]
    lines = [
        "## Inference and serving",
        "",
        f"Command: `{res['command']}`"
        + ("" if res["command"].startswith("flock") else " (not under the benchmark lock)")
        + " "
        f"({res['date']}, git {res['git'] or '?'}). Load average (1/5/15 min) before "
        f"{la0[0]:.1f}/{la0[1]:.1f}/{la0[2]:.1f}, after {la1[0]:.1f}/{la1[1]:.1f}/{la1[2]:.1f} "
        f"on this shared machine: {res.get('machine', 'not recorded')}. Model: `simple_cnn` trained 1 epoch on {res['train_size']:,} MNIST "
        f"images, test accuracy {res['test_accuracy']:.2%} (speed does not depend on the weights).",
        "",
        "### Batch inference (MNIST test images, 1x28x28)",
        "",
        f"{res['batch'][0]['rounds']} rounds in turn per cell; images/s of the median round "
        "and of the best one.",
        "",
        "| runtime | batch | images/s (median round) | best round | median ms per call |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in res["batch"]:
        lines.append(
            f"| {r['runtime']} | {r['batch']} | {r['images_per_s']:,.0f} "
            f"| {r['best_images_per_s']:,.0f} | {r['median_ms']:.3f} |"
        )
    best = {
        bs: max(
            r["images_per_s"] for r in res["batch"] if r["batch"] == bs and "ONNX" in r["runtime"]
        )
        for bs in (1, 256)
    }
    eager = {
        bs: next(
            r["images_per_s"] for r in res["batch"] if r["batch"] == bs and "eager" in r["runtime"]
        )
        for bs in (1, 256)
    }
    target = 20_000
    verdict = (
        "met"
        if best[256] >= target
        else f"missed by {target - best[256]:,.0f} images/s ({best[256] / target:.0%} of it)"
    )
    lines += [
        "",
        f"ONNX Runtime / PyTorch eager: {best[1] / eager[1]:.1f}x at batch 1, "
        f"{best[256] / eager[256]:.1f}x at batch 256. Target >= 20,000 images/s on the ONNX "
        f"Runtime path at batch 256 (median round): {verdict}.",
        "",
        f"### REST server under load (`hey`, {res['requests']:,} single-image POST /v1/predict "
        f"requests, concurrency {res['concurrency']}, loopback)",
        "",
        "| workers | requests/s | p50 ms | p90 ms | p99 ms | non-200 | transport errors "
        "| server CPU ms/request | hey CPU ms/request |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (r for r in res["server"] if r.get("route", "v1") == "v1"):
        lines.append(
            f"| {r['workers']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['non_200']} | {r['transport_errors']} "
            f"| {r['server_cpu_ms_per_request']:.2f} | {r['client_cpu_ms_per_request']:.2f} |"
        )
    best = max(
        (r for r in res["server"] if r.get("route", "v1") == "v1"),
        key=lambda r: r["requests_per_s"],
    )
    cpu = best["server_cpu_ms_per_request"] + best["client_cpu_ms_per_request"]
    ok = (
        best["requests_per_s"] >= 1000
        and best["p99_ms"] <= 50
        and best["non_200"] + best["transport_errors"] == 0
    )
    lines += [
        "",
        f"Targets >= 1,000 requests/s, p99 <= 50 ms, zero errors: {'met' if ok else 'not met'} "
        f"(best: {best['workers']} worker(s), {best['requests_per_s']:,.0f} requests/s, p99 "
        f"{best['p99_ms']:.1f} ms). Server and load generator together spend {cpu:.2f} ms of "
        f"CPU per request, so 2 cores can carry at most about {2000 / cpu:,.0f} requests/s "
        "with nothing else running.",
    ]
    lines.append("")
    if res.get("notes"):
        lines += [res["notes"], ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=6.0, help="timing per batch-inference cell")
    p.add_argument("--rounds", type=int, default=12, help="turns the batch-inference cells take")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--notes", default="", help="text added under the tables")
    p.add_argument("--train-size", type=int, default=20_000, help="MNIST images for the 1 epoch")
    p.add_argument(
        "--routes",
        nargs="+",
        choices=("v1", "v2", "v2bin"),
        default=["v1"],
        help="APIs to load: v1 (/v1/predict, multipart PNG), v2 (Open Inference Protocol "
        "infer, JSON uint8 tensor), v2bin (the same, binary tensor data extension)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="passes over the routes per server, every other one in reverse order",
    )
    p.add_argument(
        "--server-only",
        action="store_true",
        help="skip batch inference; write the v1-against-v2 section instead",
    )
    p.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    p.add_argument(
        "--only-write", action="store_true", help="rewrite the section from the saved results"
    )
    args = p.parse_args()
    results = RESULTS_V1_V2 if args.server_only else RESULTS
    if args.only_write:
        saved = json.loads(results.read_text())
        if args.server_only:
            write_section(V1_V2_HEADING, v1_v2_section(saved), keep="Reading")
        else:
            write_section("Inference and serving", section(saved), keep="Reading")
        return 0
    if shutil.which("hey") is None:
        sys.exit("benchmarks/serving.py needs hey: apt-get install hey")

    import datetime

    import objrec
    from objrec.data import load_dataset
    from objrec.runs import git_hash
    from objrec.serving.preprocess import to_model_input  # noqa: F401  (import cost outside timing)

    res = {
        "loadavg_before": os.getloadavg(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": (git_hash(ROOT) or "")[:10],
        "requests": args.requests,
        "concurrency": args.concurrency,
        "notes": args.notes,
        "command": command_line(sys.argv[1:]),
        "machine": machine(),
    }
    ds = load_dataset("mnist", data_dir=DATA, download=False, progress=False)
    n = args.train_size
    res["train_size"] = n
    print(f"training simple_cnn for 1 epoch on {n:,} MNIST images ...")
    est = objrec.make_method("simple_cnn", epochs=1, verbose=False, seed=0)
    est.fit(ds.train.X[:n], ds.train.y[:n], ds.val.X[:2000], ds.val.y[:2000])
    res["test_accuracy"] = float(est.score(ds.test.X, ds.test.y))
    print(f"test accuracy {res['test_accuracy']:.4f}")
    if not args.server_only:
        print("batch inference:")
        res["batch"] = batch_inference(est, ds.test.X, args.seconds, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = objrec.save(est, tmp / "model", dataset="mnist", class_names=ds.classes)
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(ds.test.X[0]).save(buf, format="PNG")
        res["server"] = []
        for w in args.workers:
            rows = load_test(
                model_dir,
                buf.getvalue(),
                w,
                args.requests,
                args.concurrency,
                tmp,
                routes=route_orders(args.routes, args.repeats),
                image=ds.test.X[0],
            )
            for r in rows:
                print(
                    f"  server, {w} worker(s), {r['route']}: {r['requests_per_s']:,.0f} req/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"non-200 {r['non_200']}, errors {r['transport_errors']}"
                )
            res["server"] += rows
    res["loadavg_after"] = os.getloadavg()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(res, indent=2) + "\n")
    text = v1_v2_section(res) if args.server_only else section(res)
    print(text)
    if not args.no_write:
        if args.server_only:
            write_section(V1_V2_HEADING, text, keep="Reading")
        else:
            write_section("Inference and serving", text, keep="Reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
