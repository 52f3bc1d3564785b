"""Segmentation methods side by side on a scene set: mIoU, PQ, mask AP, fit time,
predict speed and peak memory.

    python benchmarks/segmentation.py --sizes 10000,100,1000 --forest-train 800

The U-Net's options default to the segmenter's own (``UNetSegmenter()``'s parameters), with
at most 40 epochs and a 900 s training cap, the issue's 15 minutes.

Runs in one process on this machine's cores, saves
``benchmarks/results/segmentation-DATASET.json`` and rewrites the data part of the
``## Segmentation`` section of BENCHMARKS.md (its written ``###`` blocks are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from benchmarks_md import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-scenes")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--sizes", default="1500,100,300", help="TRAIN,VAL,TEST scenes")
    p.add_argument("--forest-train", type=int, default=800, help="scenes the forest fits on")
    p.add_argument("--forest-trees", type=int, default=30)
    p.add_argument("--slic-train", type=int, default=800, help="scenes SLIC fits on")
    p.add_argument("--slic-segments", type=int, default=300, help="SLIC superpixels per scene")
    from objrec.segmentation.unet import PRECISIONS, UNetSegmenter

    unet = UNetSegmenter().get_params()  # the segmenter's defaults are the benchmark's
    p.add_argument("--unet-width", type=int, default=unet["width"])
    p.add_argument("--unet-depth", type=int, default=unet["depth"])
    p.add_argument("--unet-epochs", type=int, default=40, help="at most; --unet-seconds caps")
    p.add_argument("--unet-seconds", type=float, default=900.0, help="training time cap")
    p.add_argument("--unet-batch", type=int, default=unet["batch_size"])
    p.add_argument("--unet-precision", default=unet["precision"], choices=PRECISIONS)
    p.add_argument("--unet-grouping", default=unet["grouping"], choices=["centers", "watershed"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=["forest", "slic", "unet"],
                   help="methods to run; the others' saved results are kept")  # fmt: skip
    args = p.parse_args()

    import torch

    from objrec.commands.segment import measure
    from objrec.cpu import keep_freed_memory
    from objrec.data.scenes import load_scene_set
    from objrec.evaluation.cost import PeakMemory
    from objrec.segmentation import make_segmenter

    keep_freed_memory()  # as the objrec command does: large activations, ~2x faster steps
    torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    data = load_scene_set(args.dataset, data_dir=args.data_dir, sizes=sizes)
    build_s = time.perf_counter() - t0
    tr = data.train
    runs = {
        "forest": (make_segmenter("forest", n_estimators=args.forest_trees, n_jobs=args.threads),
                   args.forest_train),
        "slic": (make_segmenter("slic", n_segments=args.slic_segments), args.slic_train),
        "unet": (make_segmenter("unet", width=args.unet_width, depth=args.unet_depth,
                                epochs=args.unet_epochs, max_seconds=args.unet_seconds,
                                batch_size=args.unet_batch,
                                precision=args.unet_precision, grouping=args.unet_grouping,
                                progress=True), len(tr)),
    }  # fmt: skip
    saved = RESULTS / f"segmentation-{args.dataset}.json"
    results = json.loads(saved.read_text())["results"] if saved.is_file() else {}
    for name, (seg, n) in runs.items():
        if name not in args.methods:
            continue
        load0 = os.getloadavg()[0]
        with PeakMemory() as fit_mem:  # resident memory above the start (the scenes held)
            t = time.perf_counter()
            if name == "unet":
                seg.fit(tr.images[:n], tr.semantic[:n], instances=tr.instances[:n])
            else:
                seg.fit(tr.images[:n], tr.semantic[:n])
            fit_s = time.perf_counter() - t
        with PeakMemory() as predict_mem:
            m = measure(seg, data.test, data.n_labels)
        m.update(fit_seconds=fit_s, train_scenes=n, params=seg.get_params(),
                 fit_peak_mib=fit_mem.peak_mib, predict_peak_mib=predict_mem.peak_mib,
                 load=[load0, os.getloadavg()[0]], sizes=sizes, machine=machine(),
                 command="python benchmarks/segmentation.py " + " ".join(sys.argv[1:]))  # fmt: skip
        if name == "unet":
            m["history"] = seg.history_
        results[name] = m
        s, pq, ap = m["semantic"], m["panoptic"], m["mask_ap"]
        print(f"{name}: mIoU {s['miou']:.3f} PQ {pq['pq']:.3f} AP {ap['ap']:.3f} fit {fit_s:.0f}s",
              flush=True)  # fmt: skip
    out = {
        "dataset": args.dataset,
        "sizes": sizes,
        "backgrounds": data.backgrounds,
        "scene_build_seconds": build_s,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads,
        "machine": machine(),
        "results": results,
        "command": "python benchmarks/segmentation.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(out, indent=1) + "\n")
    write_section("Segmentation", render(out), keep=True)  # every ### block
    print(render(out))
    return 0


def _mib(v) -> str:
    """A table cell for a memory figure in MiB ("-" where it was not measured)."""
    return "-" if v is None else f"{v:,.0f}"


def render(r: dict) -> str:
    la, lb = r["load_before"], r["load_after"]
    lines = [
        "## Segmentation",
        "",
        f"`{r['command']}` (last run) on {r.get('machine', 'Intel Xeon (AVX-512, AVX512-BF16, AMX)')}"
        f" (load average {la[0]:.1f} before, {lb[0]:.1f} after), {r['threads']} threads. "
        f"{r['dataset']} scaled down to {r['sizes'][0]:,} / {r['sizes'][1]:,} / "
        f"{r['sizes'][2]:,} train / val / test scenes (96x96, 1-6 objects, backgrounds: "
        f"{r['backgrounds'].split(' (')[0]} + scikit-image photos); scenes built in "
        f"{r['scene_build_seconds']:.0f} s; peak RSS {r['peak_rss_mib']:.0f} MiB. Metrics on the "
        "test scenes after the same post-processing (components, label vote, watershed) for the "
        "classic methods; the U-Net's objects are grouped as its `grouping` parameter says "
        "(recorded in the results JSON). Peak memory: resident memory above its level when "
        "the fit (or the prediction of the test scenes) began, sampled; '-' where a run "
        "predates the measurement.",
        "",
        "| method | train / test scenes | mIoU | pixel acc | PQ | PQ things | SQ | RQ | mask AP | AP50 "
        "| fit (s) | predict (ms/scene) | fit peak (MiB) | predict peak (MiB) | load before/after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, m in r["results"].items():
        s, p, a = m["semantic"], m["panoptic"], m["mask_ap"]
        lines.append(
            f"| {name} | {m['train_scenes']:,} / {m.get('sizes', r['sizes'])[2]:,} | {s['miou']:.3f} | {s['pixel_accuracy']:.3f} | "
            f"{p['pq']:.3f} | {p['pq_things']:.3f} | {p['sq']:.3f} | {p['rq']:.3f} | "
            f"{a['ap']:.3f} | {a['ap50']:.3f} | {m['fit_seconds']:.0f} | "
            f"{m['predict_ms_per_image']:.1f} | "
            + " | ".join(_mib(m.get(k)) for k in ("fit_peak_mib", "predict_peak_mib"))
            + " | "
            + ("/".join(f"{v:.1f}" for v in m["load"]) if "load" in m else "-")
            + " |"
        )
    lines.append("")
    lines += [
        f"- {name}: `{m.get('command', r['command'])}`"
        + (f" ({m['machine']})" if "machine" in m else "")
        for name, m in r["results"].items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
