"""Model FLOP utilisation: achieved FLOP/s over the device's dense peak at the row's precision."""

from __future__ import annotations

import math

# Dense peak throughput in TFLOP/s by device name fragment and precision (vendor data sheets; bf16
# and fp32 without sparsity). MFU is left empty for a device not listed here.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 80GB HBM3": {"fp32": 66.9, "bf16": 989.4},  # SXM5
    "H100 PCIe": {"fp32": 51.2, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "bf16": 835.0},
    "H200": {"fp32": 66.9, "bf16": 989.4},
    "A100": {"fp32": 19.5, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "bf16": 362.1},
    "L40": {"fp32": 90.5, "bf16": 181.0},
    "L4": {"fp32": 30.3, "bf16": 121.0},
}


def peak_tflops(device_name: str, precision: str, override: float = 0.0) -> float:
    """The device's dense peak for `precision` (TFLOP/s); `override` (the user's figure for that
    precision) wins; NaN when unknown. An NVL board matches only an NVL entry: its clocks and peaks
    are lower than the SXM part's."""
    if override > 0:
        return override
    for fragment in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "L40S" before "L40" before "L4"
        if "NVL" in device_name and "NVL" not in fragment:
            continue
        if fragment in device_name:
            return PEAK_TFLOPS[fragment]["bf16" if precision == "bf16" else "fp32"]
    return math.nan


def mfu(
    gmacs: float,
    peak: float,
    *,
    throughput: float = math.nan,
    n_forward: int = 0,
    n_backward: int = 0,
    seconds: float = 0.0,
) -> float:
    """Model FLOP utilisation: achieved model FLOP/s over `peak` TFLOP/s; NaN when either is
    unknown.

    2 FLOPs per MAC. With a measured `throughput` (clean rows: images/s at the best batch size) the
    model's own rate; otherwise the cell's passes over its wall time, a backward pass counted at
    twice the forward cost (the usual convention; attacks need input gradients only, so for attack
    rows this is an upper bound on the work done).
    """
    if not peak > 0:
        return math.nan
    if throughput > 0:
        return 2e9 * gmacs * throughput / (peak * 1e12)
    if seconds <= 0:
        return math.nan
    return 2e9 * gmacs * (n_forward + 2 * n_backward) / seconds / (peak * 1e12)
