"""``objrec compare`` end to end, timed: the README's main job and the full comparisons.

    flock /tmp/objrec-bench.lock python benchmarks/compare.py digits
    flock /tmp/objrec-bench.lock python benchmarks/compare.py mnist --data-dir ../shared/data/mnist
    flock /tmp/objrec-bench.lock python benchmarks/compare.py fashion-mnist --budget full

Each run executes the CLI exactly as a user types it (a fresh process: imports, data
loading, every fit, the evaluation and the report included), records wall time, peak
resident memory of the process, and the load average before and after (the machine is
shared), saves ``benchmarks/results/compare-DATASET-BUDGET.json`` and rewrites the
``## Comparison`` section of BENCHMARKS.md from every saved result.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {("digits", "quick"): 120.0, ("fashion-mnist", "full"): 3600.0}  # seconds
ORDER = ["digits", "mnist", "fashion-mnist"]


def run(
    dataset: str, data_dir: str | None, budget: str, methods: list[str] | None, unlocked: bool
) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"compare-{dataset}-"))
    cmd = [str(Path(sys.executable).parent / "objrec"), "compare", dataset, "--budget", budget]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if methods:
        cmd += ["--methods", *methods]
    cmd += ["--out", str(out), "--quiet"]
    shown = "objrec compare " + " ".join(
        a for a in cmd[2:] if not a.startswith(str(out)) and a != "--out" and a != "--quiet"
    )
    git = subprocess.run(  # the code the run starts with
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{shown} failed with status {proc.returncode}")
    print(proc.stdout)
    table = json.loads((out / "comparison.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "command": shown,
        "unlocked": unlocked,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "dataset": dataset,
        "budget": budget,
        "seconds": seconds,
        "target_seconds": TARGETS.get((dataset, budget)),
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "loadavg_before": load0,
        "loadavg_after": load1,
        "cpus": os.cpu_count(),
        "n_train": config["n_train"],
        "n_val": config["n_val"],
        "n_test": config["n_test"],
        "best_on_val": metrics["best_method"],
        "table": table,
        "report_bytes": (out / "report.html").stat().st_size,
        "run_folder": str(out),
        "git": git,
    }


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def markdown(results: list[dict]) -> str:
    lines = [
        "## Comparison",
        "",
        "`objrec compare` end to end (fresh process: imports, data loading, every fit, one",
        "evaluation on the test split, the model files and report.html), run by",
        "`benchmarks/compare.py` (under `flock /tmp/objrec-bench.lock` unless noted). Accuracy in %; fit and",
        "wall times in seconds; throughput in test images/s at batch 256; latency of one image",
        "in ms; peak = resident memory above the start of the fit (MiB, sampled). The machine",
        "is shared: the load average (1 min) before and after each run is given.",
    ]
    for r in results:
        target = r.get("target_seconds")
        verdict = ""
        if target:
            ok = r["seconds"] <= target
            verdict = f" (target < {target / 60:.0f} min: {'met' if ok else 'MISSED'})"
        lines += [
            "",
            f"### {r['dataset']}, budget {r['budget']}",
            "",
            ("`" if r.get("unlocked") else "`flock /tmp/objrec-bench.lock ")
            + f"python benchmarks/compare.py {r['dataset']}"
            + (f" --budget {r['budget']}" if r["budget"] != "quick" else "")
            + (" --data-dir ../shared/data/mnist" if "--data-dir" in r["command"] else "")
            + (" --unlocked" if r.get("unlocked") else "")
            + f"`, i.e. `{r['command']}`"
            + (
                f" (run outside the lock, allowed for a job under 1 CPU-minute: it used "
                f"{r['cpu_seconds']:.0f} CPU-s; other benchmarks were running, so the wall time "
                "is an upper bound)"
                if r.get("unlocked")
                else f" ({r.get('cpu_seconds', 0):.0f} CPU-s)"
            ),
            "",
            f"{r['n_train']:,} train / {r['n_val']:,} val / {r['n_test']:,} test images. "
            f"Wall time **{r['seconds']:.0f} s**{verdict}, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"load average {r['loadavg_before'][0]:.2f} before / {r['loadavg_after'][0]:.2f} after, "
            f"git {r['git']}. Best on validation: {r['best_on_val']}.",
            "",
            "| # | method | approach | test acc | bal acc | macro F1 | val acc | ECE | fit s | img/s | 1-img ms | model | fit peak MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, row in enumerate(r["table"], 1):
            ece = row.get("ece")
            lines.append(
                f"| {i} | {row['method']} | {row['approach']} | {_pct(row['test_accuracy'])} | "
                f"{_pct(row['balanced_accuracy'])} | {row['macro_f1']:.4f} | {_pct(row['val_accuracy'])} | "
                f"{'-' if ece is None else f'{ece:.3f}'} | {row['fit_seconds']:.1f} | "
                f"{row['images_per_second']:,.0f} | {row['latency_ms']:.2f} | "
                f"{row['model_bytes'] / 2**20:.2f} MiB | {row['fit_peak_mib']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "dataset", nargs="?", help="digits, mnist, fashion-mnist (omit with --only-write)"
    )
    p.add_argument("--data-dir")
    p.add_argument("--budget", choices=("quick", "full"), default="quick")
    p.add_argument("--methods", nargs="+")
    p.add_argument(
        "--unlocked",
        action="store_true",
        help="record that the run did not hold the benchmark lock (jobs under 1 CPU-minute)",
    )
    p.add_argument(
        "--only-write", action="store_true", help="rewrite BENCHMARKS.md from saved results"
    )
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.only_write:
        if not args.dataset:
            p.error("name a dataset")
        res = run(args.dataset, args.data_dir, args.budget, args.methods, args.unlocked)
        name = RESULTS / f"compare-{args.dataset}-{args.budget}.json"
        name.write_text(json.dumps(res, indent=2) + "\n")
        print(
            f"{res['command']}: {res['seconds']:.1f} s (load {res['loadavg_before'][0]:.2f} -> {res['loadavg_after'][0]:.2f})"
        )
    saved = [json.loads(f.read_text()) for f in sorted(RESULTS.glob("compare-*.json"))]
    saved.sort(
        key=lambda r: (ORDER.index(r["dataset"]) if r["dataset"] in ORDER else 99, r["budget"])
    )
    write_section("Comparison", markdown(saved), keep="Reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
