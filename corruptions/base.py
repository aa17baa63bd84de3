"""The ImageNet-C corruptions by name: the 15 of mCE, the 4 held-out extras, groups, checks."""

from __future__ import annotations

import numpy as np

from bench.core.corruption_names import ALL, COMMON, EXTRA, check_name  # noqa: F401  (re-exported)
from bench.core.errors import BenchError

CORRUPTION_ID = {name: i for i, name in enumerate(ALL)}  # imagecorruptions' corruption_number
GROUP = {
    **{n: "noise" for n in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")},
    **{
        n: "blur"
        for n in ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur")
    },
    **{n: "weather" for n in ("snow", "frost", "fog", "brightness", "spatter")},
    **{
        n: "digital"
        for n in ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate")
    },
}
SEVERITIES = (1, 2, 3, 4, 5)
# Corruptions with a batched implementation (corruptions/fast.py), each tested to give the
# reference's uint8 output pixel for pixel (tests/test_fast_corruptions.py); they run by default.
# Pixelate and JPEG stay on PIL through the reference; spatter has no batched path.
PARITY = frozenset(ALL) - {"pixelate", "jpeg_compression", "spatter"}
MIN_SIDE = 32  # imagecorruptions refuses smaller images


def check_severity(severity: int) -> int:
    if (
        isinstance(severity, bool)
        or not isinstance(severity, (int, np.integer))
        or severity not in SEVERITIES
    ):
        raise BenchError(f"severity must be an integer in 1..5, got {severity!r}")
    return severity


def check_size(height: int, width: int) -> None:
    if min(height, width) < MIN_SIDE:
        raise BenchError(
            f"images of {height}x{width} px are too small for the ImageNet-C corruptions "
            f"(at least {MIN_SIDE} px a side)"
        )
