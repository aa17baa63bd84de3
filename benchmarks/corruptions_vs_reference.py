"""Corruption generation speed: batched torch implementations against imagecorruptions-imaug.

Usage: python benchmarks/corruptions_vs_reference.py [--n 16] [--sizes 64 224] [--device cpu] Same
images for both (cluttered Fashion-MNIST test images, resized), all five severities, warm (every
reference severity runs once first: glass_blur compiles on first use). Prints ms per image per
corruption (mean over severities) for the reference in one process and the torch path, the ratio,
and totals over the corruptions that have a torch implementation and over all 15 as run by default
(torch where parity is tested, reference elsewhere).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
from PIL import Image

from bench.corruptions import fast, reference
from bench.corruptions.base import COMMON, PARITY
from bench.data import load_split
from bench.devices.device import device_name, resolve_device


def _images(n: int, side: int) -> np.ndarray:
    imgs = load_split("cluttered_fmnist", "test").images[:n]  # type: ignore[attr-defined]
    return (
        imgs
        if side == imgs.shape[1]
        else np.stack(
            [np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in imgs]
        )
    )


def _batched(images: np.ndarray, idx: np.ndarray, name: str, s: int, dev: torch.device) -> None:
    """The batched path on every image, finished (a GPU's queue drained)."""
    fast.corrupt_batch(images, idx, name, s, 0, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _ms(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    dev = resolve_device(a.device)
    print(
        f"device for the torch path: {device_name(dev)}; reference: one process; {a.n} images; "
        f"ms/image, mean over severities 1-5"
    )
    for side in a.sizes:
        images = _images(a.n, side)
        idx = np.arange(len(images))
        for name in COMMON:  # warm-up: numba compile, caches
            reference.corrupt(images[0], name, 1, 0)
            if name in PARITY:
                fast.corrupt_batch(images[:2], idx[:2], name, 1, 0, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        print(f"\n{side} px")
        print(f"{'corruption':18s} {'reference':>10s} {'torch':>8s} {'ratio':>7s}")
        tot_ref = tot_fast_only = tot_ref_only = tot_default = 0.0
        for name in COMMON:
            ref = np.mean(
                [
                    _ms(partial(reference.corrupt_many, images, idx, name, s, 0), a.n)
                    for s in range(1, 6)
                ]
            )
            tot_ref += ref
            if name in PARITY:
                run = partial(_batched, images, idx, name, dev=dev)
                f = float(np.mean([_ms(partial(run, s), a.n) for s in range(1, 6)]))
                tot_ref_only += ref
                tot_fast_only += f
                tot_default += f
                print(f"{name:18s} {ref:10.2f} {f:8.2f} {ref / f:6.1f}x")
            else:
                tot_default += ref
                print(f"{name:18s} {ref:10.2f} {'–':>8s} {'':>7s}")
        print(
            f"{'with torch impl.':18s} {tot_ref_only:10.2f} {tot_fast_only:8.2f} "
            f"{tot_ref_only / tot_fast_only:6.1f}x"
        )
        print(
            f"{'all 15 (x5 sev.)':18s} {5 * tot_ref:10.1f} {5 * tot_default:8.1f} "
            f"{tot_ref / tot_default:6.1f}x   (default mix: torch where parity is tested)"
        )


if __name__ == "__main__":
    main()
