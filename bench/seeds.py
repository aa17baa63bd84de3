"""Per-image randomness: a seed from (run seed, image index, what it is for), never from batch or rank."""
from __future__ import annotations

import zlib

import numpy as np


def image_seed(seed: int, index: int, *tags: str | int) -> int:
    """A 31-bit seed that depends only on its arguments (so batch size and order do not matter)."""
    words = [seed & 0xFFFFFFFF, index & 0xFFFFFFFF]
    words += [zlib.crc32(t.encode()) if isinstance(t, str) else t & 0xFFFFFFFF for t in tags]
    return int(np.random.SeedSequence(words).generate_state(1)[0] >> 1)


def image_seeds(seed: int, indices: np.ndarray, *tags: str | int) -> np.ndarray:
    """image_seed for each index, as int64."""
    return np.array([image_seed(seed, int(i), *tags) for i in indices], dtype=np.int64)
