"""Per-image seeds: the batched hashing equals NumPy's SeedSequence image by image."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bench.core.seeds import image_seed, image_seeds


@pytest.mark.parametrize(
    "seed,tags",
    [
        (0, ()),
        (0, ("perf",)),
        (7, (3, 5)),
        (2**33 + 5, ("pgd|linf|{}", 2)),
        (123, ("a", "b", 1, 2, 3)),
    ],
)
def test_image_seeds_equal_seed_sequence_per_index(seed: int, tags: tuple) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(1)
    idx = np.concatenate([np.arange(300), rng.integers(0, 2**40, 300), [0, 2**32 - 1, 2**32, -1]])
    words = [t if isinstance(t, int) else zlib.crc32(t.encode()) for t in tags]
    # what the seeds are defined as
    want = np.array(
        [
            np.random.SeedSequence([seed & 0xFFFFFFFF, int(i) & 0xFFFFFFFF, *words]).generate_state(
                1
            )[0]
            >> 1
            for i in idx
        ]
    )
    got = image_seeds(seed, idx, *tags)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert image_seed(seed, int(idx[0]), *tags) == want[0]
    assert 0 <= got.min() and got.max() < 2**31 and len(set(got[:300].tolist())) == 300
