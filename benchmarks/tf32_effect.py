"""TF32 against strict fp32: how many attack outcomes change, and how much time TF32 would save.

The harness runs every cell with TF32 off (bench/fast/precision.py strict_fp32): FGSM and PGD step
along sign(gradient), and TF32's 10-bit mantissa can flip the sign of small gradient coordinates.
This measures what that choice protects and costs: the same cells (clean, FGSM and PGD-10 L∞ at each
ε) through the harness's own evaluation and on the model as it evaluates it, once with TF32 off and
once on, same seeds, in alternating order. Per exit it prints the images whose outcome differs and
the wall times. TF32 exists only on NVIDIA GPUs: elsewhere both passes run the same kernels, the
script says so and writes no row.

Usage: python benchmarks/tf32_effect.py [--models resnet_small mgnet_small] [--n 1000] [--eps 4/255
8/255] Needs trained checkpoints (`make bench`), or specs with weights (NAME@random runs but says
little).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.core.conditions import CLEAN, Condition, fgsm, pgd
from bench.core.config import parse_eps
from bench.data import cache_dir, load_split, subset_indices
from bench.devices.device import device_name, resolve_device
from bench.evaluation.scoring import evaluate
from bench.fast import precision
from bench.fast.runtime_copy import runtime_copy
from bench.load.specs import expand, load

REPO = Path(__file__).resolve().parent.parent


def set_tf32(on: bool) -> None:
    """TF32 for matmuls and cuDNN convolutions, on or off (off is the harness's strict fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def tf32_exists(device: torch.device) -> bool:
    """Whether TF32 can matter: an NVIDIA GPU of compute capability 8.0 (Ampere) or later."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def both(
    net: torch.nn.Module,
    images,
    idx: np.ndarray,
    cond: Condition,
    device: torch.device,
    batch_size: int,
    tf32_first: bool,
) -> dict[bool, tuple[np.ndarray, float]]:
    """{tf32: (per-exit correctness (E, N), seconds)} of one cell, run with TF32 off and on."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = {}
    for on in (True, False) if tf32_first else (False, True):
        set_tf32(on)
        sync()
        t0 = time.perf_counter()
        c = evaluate(net, images, idx, cond, seed=0, batch_size=batch_size, device=device)
        sync()
        out[on] = (c.correct, time.perf_counter() - t0)
    precision.strict_fp32()
    return out


def main() -> None:
    from perf import append, row  # benchmarks/ is on the path when this file runs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet_small", "mgnet_small"])
    p.add_argument("--data", default="cluttered_fmnist")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--eps", nargs="+", default=["4/255", "8/255"], help="L∞ radii, e.g. 4/255")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=REPO / "results" / "perf" / "perf.csv")
    a = p.parse_args()
    dev = resolve_device(a.device)
    radii = [parse_eps(e) for e in a.eps]
    conds = [CLEAN] + [c for e in radii for c in (fgsm(e), pgd(e))]
    images = load_split(a.data, "test")
    idx, _ = subset_indices(len(images), a.n)
    real = tf32_exists(dev)
    print(
        f"{device_name(dev)}, {len(idx)} images of {a.data}"
        + (
            ""
            if real
            else ": no TF32 on this device, both passes run the same kernels (smoke run, no rows)"
        )
    )
    rows = []
    for spec in a.models:
        lm = load(expand(spec)[0], a.data, cache_dir())
        net = runtime_copy(lm.model, lm.card.input_size).to(dev)
        # warm-up: kernels, loaders
        both(net, images, idx[: a.batch_size], CLEAN, dev, a.batch_size, False)
        for k, cond in enumerate(conds):
            res = both(net, images, idx, cond, dev, a.batch_size, tf32_first=k % 2 == 1)
            (strict, t_strict), (tf32, t_tf32) = res[False], res[True]
            exits = range(1, strict.shape[0] + 1)
            changed = {t: int((strict[t - 1] != tf32[t - 1]).sum()) for t in exits}
            acc = {t: (100 * strict[t - 1].mean(), 100 * tf32[t - 1].mean()) for t in exits}
            print(
                f"{lm.card.name:14s} {cond.label():28s} strict {t_strict:7.2f} s, TF32 "
                f"{t_tf32:7.2f} s (TF32 {t_strict / t_tf32:.2f}x as fast); images changed per exit "
                + ", ".join(
                    f"{t}: {changed[t]} ({acc[t][0]:.1f} % -> {acc[t][1]:.1f} %)" for t in exits
                )
            )
            rows.append(
                row(
                    f"TF32 vs strict fp32: {cond.label()}",
                    lm.card.name,
                    len(idx),
                    t_strict,
                    t_tf32,
                    None,
                    "ours = strict fp32 (the harness), peer = TF32; outcomes changed "
                    + "; ".join(
                        f"exit {t}: {changed[t]} of {len(idx)}, {acc[t][0]:.1f} % vs "
                        f"{acc[t][1]:.1f} %"
                        for t in exits
                    ),
                    dev,
                )
            )
        lm.model.cpu()
    if real:
        append(a.out, rows)
        print(f"appended {len(rows)} rows to {a.out}")


if __name__ == "__main__":
    main()
