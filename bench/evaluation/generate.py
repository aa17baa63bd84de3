"""Before any cell: cache every reference corruption of the run, and draw the example grid."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.data import subset_indices
from bench.devices import distributed
from bench.evaluation.setup import Setup


def _generate(setup: Setup, out: Path, examples: bool) -> None:
    """Check the image size, then generate the run's reference corruptions in worker processes."""
    made = [
        c
        for c in setup.cells
        if c.condition.kind == "corruption" and c.condition.source != "rendered"
    ]
    if not made:
        return
    from bench.corruptions.base import check_size

    shape = setup.images.get(0)[0].shape
    check_size(shape[0], shape[1])
    wanted: dict[bytes, tuple[np.ndarray, list[tuple[str, int]]]] = {}
    for c in made:
        if c.condition.source == "reference":
            idx, _ = subset_indices(len(setup.images), c.n_images)
            wanted.setdefault(idx.tobytes(), (idx, []))[1].append(
                (c.condition.name, c.condition.severity)
            )
    total = sum(len(v[1]) for v in wanted.values())
    with tqdm(total=total, desc="corruptions", unit="cond", leave=False, disable=None) as bar:
        setup.corrupted.prepare(wanted, progress=lambda name, sev: bar.update(1))
    if examples:
        conds = dict.fromkeys(dataclasses.replace(c.condition, severity=1) for c in made)
        setup.corrupted.example_grid(out / "examples" / "corruptions.png", list(conds))


def generate(setup: Setup, out: Path) -> None:
    """Rank 0 makes and caches the corruptions (and example grid); other ranks then read them."""
    distributed.on_main(lambda: _generate(setup, out, examples=True))
    if not distributed.world().main:
        _generate(setup, out, examples=False)
    distributed.barrier()
