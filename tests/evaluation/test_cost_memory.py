"""Peak memory per method does not depend on the order the methods ran in."""

import numpy as np
import pytest

from objrec.evaluation.cost import _TRIM, PeakMemory, current_rss

pytestmark = pytest.mark.skipif(current_rss() is None, reason="needs /proc/self/statm")

_survivors: list[np.ndarray] = []


def _work(mib: int) -> int:
    """Allocate ``mib`` MiB in 100 KiB buffers (below glibc's mmap threshold, so from the
    heap) next to small allocations that outlive the work, as a training loop does
    (history, caches): the freed heap cannot shrink by itself."""
    keep = []
    for _ in range(mib * 10):
        keep.append(np.ones(102_400, np.uint8))
        _survivors.append(np.ones(64, np.uint8))
    return sum(int(k[0]) for k in keep)


def _peak(mib: int) -> float:
    with PeakMemory() as pm:
        _work(mib)
    return pm.peak_mib


@pytest.mark.skipif(_TRIM is None, reason="needs glibc's malloc_trim")
def test_peak_after_a_larger_method_is_its_own():
    big = _peak(300)
    small = _peak(200)  # reuses nothing the 300 MiB run left behind
    _survivors.clear()
    small_first = _peak(200)
    _survivors.clear()
    assert 250 <= big <= 330
    # 2000 buffers of 100 KiB are 195 MiB
    assert 160 <= small <= 230, small
    assert abs(small - small_first) < 25, (small, small_first)
