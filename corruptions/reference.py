"""The reference corruptions: imagecorruptions-imaug 1.1.5, one image at a time, seeded per image.

The library draws from NumPy's global RNG (most corruptions) or from a `seed=` keyword
(impulse_noise, glass_blur). Each call here seeds both from a per-image seed and restores the
global state afterwards, so an image's corruption depends only on (seed, index, corruption,
severity): not on batch size, worker count or order. The global RNG is per process and not
thread-safe, so parallel generation uses processes.
"""

from __future__ import annotations

import functools

import numpy as np

from bench.core.seeds import image_seeds
from bench.corruptions.base import CORRUPTION_ID, check_name, check_severity, check_size

OWN_SEED = ("impulse_noise", "glass_blur")
SOURCE = "reference"


def seeds_for(seed: int, indices: np.ndarray, name: str, severity: int) -> np.ndarray:
    """The one per-image seed of a corruption, for each image index (int64)."""
    return image_seeds(seed, indices, CORRUPTION_ID[name], severity)


def corrupt(img: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt one uint8 HxWx3 image with the reference implementation; returns uint8 HxWx3."""
    from imagecorruptions import corrupt as _corrupt

    check_name(name)
    check_severity(severity)
    check_size(img.shape[0], img.shape[1])
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        kw = {"seed": seed} if name in OWN_SEED else {}
        out = _corrupt(np.ascontiguousarray(img), severity=severity, corruption_name=name, **kw)
    finally:
        np.random.set_state(state)
    if out.shape != img.shape:  # the library may return other sizes for non-square inputs
        raise ValueError(f"{name} returned {out.shape} for an input of {img.shape}")
    return out


def corrupt_many(
    images: np.ndarray, indices: np.ndarray, name: str, severity: int, seed: int
) -> np.ndarray:
    """Corrupt a stack of images whose dataset indices are `indices`."""
    check_name(name)
    return np.stack(
        [
            corrupt(im, name, severity, int(s))
            for im, s in zip(images, seeds_for(seed, indices, name, severity))
        ]
    )


# The libraries whose arithmetic makes the reference images (a new release can move a pixel).
COMPUTED_BY = (
    "imagecorruptions-imaug",
    "numpy",
    "scipy",
    "scikit-image",
    "opencv-python-headless",
    "opencv-python",
    "Pillow",
    "Wand",
)


@functools.lru_cache(maxsize=1)
def version() -> str:
    """The versions behind the reference images, for cache keys and provenance."""
    from importlib import metadata

    found = []
    for dist in COMPUTED_BY:
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found) if found else "imagecorruptions (unknown version)"
