"""Per-image randomness: seeds from (run seed, image index, purpose), never from batch or rank."""

from __future__ import annotations

import zlib

import numpy as np

# NumPy's SeedSequence constants (numpy/random/bit_generator.pyx): pool of 4 words, 32-bit hash
# mixing.
_POOL, _SHIFT = 4, np.uint32(16)
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)


def image_seed(seed: int, index: int, *tags: str | int) -> int:
    """A 31-bit seed that depends only on its arguments (so batch size and order do not matter)."""
    return int(image_seeds(seed, np.array([index]), *tags)[0])


def image_seeds(seed: int, indices: np.ndarray, *tags: str | int) -> np.ndarray:
    """image_seed for each index, as int64: NumPy's SeedSequence([seed, index,
    *tags]).generate_state(1)[0] >> 1.

    Strings enter as their CRC-32, integers as their low 32 bits; the hashing runs on all indices at
    once.
    """
    words = [zlib.crc32(t.encode()) if isinstance(t, str) else t & 0xFFFFFFFF for t in tags]
    entropy = np.empty((len(indices), 2 + len(words)), np.uint32)
    entropy[:, 0] = seed & 0xFFFFFFFF
    entropy[:, 1] = np.asarray(indices, dtype=np.int64) & 0xFFFFFFFF
    entropy[:, 2:] = words
    return (_first_state_word(entropy) >> np.uint32(1)).astype(np.int64)


def _first_state_word(entropy: np.ndarray) -> np.ndarray:
    """SeedSequence(row).generate_state(1)[0] per row; each row holds one seed's uint32 entropy."""
    const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal const
        value = value ^ np.uint32(const)
        const = (const * _MULT_A) & 0xFFFFFFFF
        value = value * np.uint32(const)
        return value ^ (value >> _SHIFT)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = _MIX_L * x - _MIX_R * y
        return r ^ (r >> _SHIFT)

    n, width = entropy.shape
    zero = np.zeros(n, np.uint32)
    pool = [hashmix(entropy[:, i] if i < width else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, width):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[:, src]))
    out = pool[0] ^ np.uint32(_INIT_B)
    out = out * np.uint32((_INIT_B * _MULT_B) & 0xFFFFFFFF)
    return out ^ (out >> _SHIFT)
