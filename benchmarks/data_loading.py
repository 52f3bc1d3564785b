"""Folder loading speed: 60,000 CIFAR-10 JPEGs, first load (decoding) vs cached load.

    flock /tmp/objrec-bench.lock python benchmarks/data_loading.py

Extracts ``../shared/data/cifar10-jpg.tar.gz`` into a temporary folder (not timed as
loading), then times ``objrec.data.load_dataset(folder)`` with an empty cache using every
CPU, again with one decoding process, and a third time with the cache written by the
first run. Also times reading MNIST's gzip IDX files. Records the load average (the
machine is shared) and rewrites the ``## Data loading`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks_md import write_section

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TARGET_FIRST_S = 60.0  # "seconds, not minutes"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--archive", default=str(SHARED / "cifar10-jpg.tar.gz"))
    p.add_argument("--no-serial", action="store_true", help="skip the one-process run")
    p.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="objrec-bench-data-"))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # an empty, private cache
    from objrec.data import load_dataset
    from objrec.data.folders import _n_workers

    try:
        load_before = os.getloadavg()
        _, t_extract = timed(lambda: tarfile.open(args.archive).extractall(work, filter="data"))
        folder = work / "cifar10-jpg"
        ds, t_first = timed(lambda: load_dataset(folder, progress=False))
        n = sum(len(s) for s in ds.splits.values())
        if not args.no_serial:
            from objrec.data.folders import load_folder

            _, t_serial = timed(lambda: load_folder(folder, workers=1, cache=False, progress=False))
        else:
            t_serial = float("nan")
        ds2, t_cached = timed(lambda: load_dataset(folder, progress=False))
        assert all((ds.splits[k].X == ds2.splits[k].X).all() for k in ds.splits)
        mnist = None
        if (SHARED / "mnist").is_dir():
            mnist, t_mnist = timed(lambda: load_dataset("mnist", data_dir=SHARED / "mnist"))
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    workers = _n_workers(None)
    lines = [
        "## Data loading",
        "",
        "`flock /tmp/objrec-bench.lock python benchmarks/data_loading.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores)",
        "",
        f"CIFAR-10 as {n:,} JPEG files (32x32 RGB, `root/{{train,test}}/<class>/`), "
        "`load_dataset(folder)`; files freshly extracted, so in the OS page cache.",
        "",
        "| step | seconds | images/s |",
        "| --- | ---: | ---: |",
        f"| extract the archive (not part of loading) | {t_extract:.1f} | |",
        f"| first load, {workers} decoding processes, empty cache | {t_first:.1f} | {n / t_first:,.0f} |",
    ]
    if not args.no_serial:
        lines.append(f"| first load, 1 process, no cache | {t_serial:.1f} | {n / t_serial:,.0f} |")
    lines.append(
        f"| second load (decoded arrays from the .npz cache) | {t_cached:.2f} | {n / t_cached:,.0f} |"
    )
    if mnist is not None:
        lines.append(
            f"| MNIST, four gzip IDX files (70,000 images) | {t_mnist:.2f} | {70000 / t_mnist:,.0f} |"
        )
    verdict = "met" if t_first <= TARGET_FIRST_S else "NOT met"
    lines += [
        "",
        f'Target "seconds, not minutes" for the first load (<= {TARGET_FIRST_S:.0f} s): {verdict}. '
        f"Cached load is {t_first / t_cached:.0f}x faster than the first.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Data loading", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
