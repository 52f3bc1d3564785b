"""Writing one benchmark's section of BENCHMARKS.md, leaving the others as they are."""

from __future__ import annotations

import re
from pathlib import Path

from objrec.cpu import usable_cores

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in first.splitlines())}


def _fp32_lanes_per_fma(info: dict) -> tuple[int, str]:
    """fp32 results per FMA unit and cycle, with the vector width's name."""
    flags = set(info.get("flags", "").split())
    if "avx512f" in flags:
        # AMD Zen 4 (family 25) runs 512-bit instructions on 256-bit units in two halves.
        if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25":
            return 8, "AVX-512 on 256-bit units"
        return 16, "AVX-512"
    return (8, "AVX2") if "avx2" in flags else (4, "SSE")


def _caches() -> str:
    """The first core's L2 and L3 sizes from sysfs, e.g. "2048K L2 per core, 307200K L3".

    /proc/cpuinfo's "cache size" is the L2 on AMD but the L3 on Intel, so sysfs is read instead.
    """
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            sizes.setdefault(level, (index / "size").read_text().strip())
        except OSError:
            continue
    parts = [f"{sizes['2']} L2 per core"] if "2" in sizes else []
    parts += [f"{sizes['3']} L3"] if "3" in sizes else []
    return ", ".join(parts) or "caches unknown"


def machine() -> str:
    """One line naming the CPU the benchmark ran on: model, family, usable cores, clock, ISA."""
    info = _cpuinfo()
    if not info:
        return f"{usable_cores()} usable cores (no /proc/cpuinfo)"
    _, isa = _fp32_lanes_per_fma(info)
    return (
        f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model "
        f"{info.get('model', '?')}, {isa}), {usable_cores()} usable cores at "
        f"{float(info.get('cpu MHz', 0)) / 1000:.2f} GHz, {_caches()}"
    )


def cpu_peak_flops() -> tuple[float, str]:
    """Peak FP32 FLOP/s of the usable cores, with the assumption spelled out."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    mhz = float(info.get("cpu MHz", 0))
    cores = usable_cores()
    lanes, isa = _fp32_lanes_per_fma(info)
    fma = 2 if "fma" in flags else 1
    peak = cores * mhz * 1e6 * 2 * lanes * fma  # 2 FMA pipes per core
    return peak, (
        f"{info.get('model name', '?')}: {cores} cores x {mhz / 1000:.2f} GHz x 2 FMA units x "
        f"{lanes} fp32 lanes ({isa}) x {fma} FLOP per FMA = {peak / 1e9:.0f} GFLOP/s "
        "(assumes 2 FMA pipes per core, as on AMD Zen 2+ and Intel Haswell+, at the reported clock)"
    )


def write_section(heading: str, text: str, *, keep: str | bool | None = None) -> None:
    """Replace the ``## heading`` section of BENCHMARKS.md with ``text`` (append it when
    the section is new). ``keep``: the title of a ``### keep`` block inside the old section
    (e.g. a written reading of the numbers) that is carried over, with every block after
    it, to the end of the new one; ``True``: every ``###`` block of the old section (for
    a generated part without ``###`` headings of its own).
    """
    doc = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    m = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", doc, flags=re.S | re.M)
    section = text.rstrip() + "\n"
    if m and keep:
        title = r".*" if keep is True else re.escape(keep)
        kept = re.search(rf"^### {title}\n.*", m.group(0), flags=re.S | re.M)
        if kept:
            section += "\n" + kept.group(0).rstrip() + "\n"
    if m:
        rest = doc[m.end() :]
        doc = doc[: m.start()] + section + ("\n" if rest else "") + rest
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(doc)
