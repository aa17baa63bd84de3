"""Uncertainty of accuracies: an accuracy is a count of correct images over a sample (torch-free).

- One accuracy: the Wilson score interval (Wilson 1927), right at small n and near 0 or 1.
- Two accuracies on the same images: McNemar's exact test on the images they disagree on.
- A mean over conditions (mean corruption accuracy): each image's mean over the conditions is one
  observation; a normal interval over images, and a paired one for a difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054
ALPHA = 0.05


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95 % Wilson score interval of k successes in n trials, as fractions."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for two correctness vectors over the same images."""
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n  # exact ints
    return min(1.0, 2 * tail)


def mean_interval(per_image: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """A normal 95 % interval for the mean of per-image values (each in [0, 1])."""
    n = len(per_image)
    if n < 2:
        return math.nan, math.nan
    m = float(per_image.mean())
    half = z * float(per_image.std(ddof=1)) / math.sqrt(n)
    return max(0.0, m - half), min(1.0, m + half)


def paired_differs(a: np.ndarray, b: np.ndarray, z: float = Z95) -> bool:
    """Whether two per-image means over the same images differ at 95 % (paired normal test; with
    the suites' hundreds of images the normal and t quantiles agree to 0.3 %)."""
    d = a.astype(float) - b.astype(float)
    if len(d) < 2:
        return False
    sd = float(d.std(ddof=1))
    if sd == 0:
        return bool(d.mean() != 0)
    return abs(float(d.mean())) > z * sd / math.sqrt(len(d))


def disjoint(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals do not overlap (the fallback test when images are not paired)."""
    return a[1] < b[0] or b[1] < a[0]


def tied_best(
    values: Sequence[float], higher: bool, differs: Callable[[int, int], bool]
) -> set[int]:
    """Positions of the best value and of every value not significantly different from it."""
    present = [i for i, v in enumerate(values) if not math.isnan(v)]
    if len(present) < 2:
        return set()
    best = (max if higher else min)(present, key=lambda i: values[i])
    return {best} | {i for i in present if i != best and not differs(best, i)}


def pct_interval(k: int, n: int) -> str:
    """An accuracy with its Wilson interval in percent, "48.5 (46.3–50.7)"; "–" without images."""
    if n <= 0:
        return "–"
    lo, hi = wilson(k, n)
    return f"{100 * k / n + 1e-9:.1f} ({100 * lo + 1e-9:.1f}–{100 * hi + 1e-9:.1f})"


def half_width(k: int, n: int) -> float:
    """The larger side of the Wilson interval, in fractions (for a table's caption); 0 without
    images."""
    if n <= 0:
        return 0.0
    lo, hi = wilson(k, n)
    return max(k / n - lo, hi - k / n)
