"""Corruption metrics derived from results rows: mean accuracy, CE / mCE, relative mCE (torch-free).

E_{s,c}(f) = top-1 error of f on corruption c at severity s. CE_c(f) = Σ_s E_{s,c}(f) / Σ_s
E_{s,c}(ref); mCE = 100 × mean of CE_c over the 15 common corruptions. Relative CE_c(f) = Σ_s
(E_{s,c}(f) − E_clean(f)) / Σ_s (E_{s,c}(ref) − E_clean(ref)); a denominator ≤ 0 gives NaN
(reported, never divided). ref is a baseline of the same run (ImageNet-C's AlexNet table below
applies only to ImageNet-1k evaluations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from bench.core.corruption_names import COMMON

# AlexNet top-1 error (%) on ImageNet-C, severities 1-5 (hendrycks/robustness; timm, DINOv3 tables).
ALEXNET_ERR: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (69.528, 82.542, 93.554, 98.138, 99.452),
    "shot_noise": (71.224, 85.108, 93.574, 98.182, 99.146),
    "impulse_noise": (78.374, 89.808, 94.870, 98.720, 99.548),
    "defocus_blur": (65.624, 73.202, 85.036, 91.364, 94.714),
    "glass_blur": (64.308, 75.054, 88.806, 91.622, 93.344),
    "motion_blur": (58.430, 70.048, 82.108, 89.750, 92.638),
    "zoom_blur": (70.008, 76.992, 80.784, 84.198, 87.198),
    "snow": (71.726, 88.392, 86.468, 91.870, 94.952),
    "frost": (61.390, 79.734, 88.790, 89.942, 93.430),
    "fog": (67.474, 76.050, 84.378, 87.260, 94.500),
    "brightness": (45.140, 48.502, 54.048, 62.166, 72.440),
    "contrast": (64.548, 76.150, 88.874, 97.760, 99.270),
    "elastic_transform": (52.596, 70.116, 55.686, 64.076, 80.554),
    "pixelate": (52.218, 54.620, 73.728, 87.092, 91.262),
    "jpeg_compression": (51.002, 54.718, 57.294, 65.458, 74.778),
    "speckle_noise": (66.192, 74.440, 90.246, 94.548, 97.268),
    "gaussian_blur": (54.732, 70.444, 82.574, 89.864, 95.940),
    "spatter": (47.196, 62.194, 75.052, 84.132, 90.182),
    "saturate": (59.342, 65.514, 51.174, 70.834, 82.260),
}
ALEXNET_CLEAN_ERR = 43.48


def errors(acc: pd.DataFrame) -> dict[str, dict[int, float]]:
    """{corruption: {severity: error}} from rows with condition, severity and accuracy."""
    out: dict[str, dict[int, float]] = {}
    for r in acc.itertuples():
        out.setdefault(r.condition, {})[int(r.severity)] = 1.0 - float(r.accuracy)
    return out


def mce(
    err: Mapping[str, Mapping[int, float]],
    ref: Mapping[str, Mapping[int, float]],
    names: tuple[str, ...] = COMMON,
) -> tuple[float, dict[str, float]]:
    """(mCE × 100, {corruption: CE_c}) against a reference model; NaN if a corruption is missing."""
    ce = {}
    for c in names:
        if c not in err or c not in ref or len(err[c]) != 5 or len(ref[c]) != 5:
            return math.nan, {}
        den = sum(ref[c].values())
        ce[c] = sum(err[c].values()) / den if den > 0 else math.nan
    return 100 * sum(ce.values()) / len(ce), ce


def relative_mce(
    err: Mapping[str, Mapping[int, float]],
    clean_err: float,
    ref: Mapping[str, Mapping[int, float]],
    ref_clean_err: float,
    names: tuple[str, ...] = COMMON,
) -> tuple[float, str]:
    """(relative mCE × 100, reason when NaN)."""
    vals = []
    for c in names:
        if c not in err or c not in ref or len(err[c]) != 5 or len(ref[c]) != 5:
            return math.nan, f"{c} missing"
        den = sum(e - ref_clean_err for e in ref[c].values())
        if den <= 0:
            return math.nan, f"the reference loses no accuracy on {c} (denominator {den:.3g} ≤ 0)"
        vals.append(sum(e - clean_err for e in err[c].values()) / den)
    return 100 * sum(vals) / len(vals), ""


def alexnet_reference() -> tuple[dict[str, dict[int, float]], float]:
    """The AlexNet table as errors in [0,1], for mCE of ImageNet-1k evaluations."""
    return (
        {c: {s + 1: v / 100 for s, v in enumerate(row)} for c, row in ALEXNET_ERR.items()},
        ALEXNET_CLEAN_ERR / 100,
    )
