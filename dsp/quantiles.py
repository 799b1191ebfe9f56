"""A percentile of a small array, as numpy's default (linear) method computes it, without its
per-call overhead: the detector takes several per half-second step, and `np.percentile` spent
~0.15 ms each on argument handling, a fifth of the whole pipeline's CPU (measured, cProfile)."""
from __future__ import annotations

import numpy as np


def percentile(a: np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of a non-empty 1-D array; equal to `np.percentile(a, q)`."""
    n = len(a)
    pos = q / 100.0 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    part = np.partition(a, (lo, hi)) if hi != lo else np.partition(a, lo)
    x, y, t = float(part[lo]), float(part[hi]), pos - lo
    # numpy's lerp: from the nearer end, so that t = 1 gives y exactly
    return y - (y - x) * (1.0 - t) if t >= 0.5 else x + (y - x) * t
