"""confidence.csv: the per-image confidence behind each exit's row of a multi-exit model, so an
early-exit policy can be evaluated at any threshold without running the model again (torch-free).

One record per clean, corruption or early-exit attack row of a model with several exits (for an
attack, the confidences on the attacked images): the row's key hash, then one fixed-width string
per measure, in the image order of the row's per_image.csv record. A measure is
a confidence c in [0, 1] (`msp`: the largest softmax probability; `entropy`: 1 − the softmax
entropy over log K), stored as floor(1000·c) in 3 digits, capped at 999. Thresholds therefore
resolve to 0.001, and τ = 1 never stops early. Size: 6 bytes per image and exit (docs/protocol.md
gives the default run's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bench.store.csvfile import append_records, parse_records, read_records
from bench.store.per_image import row_key
from bench.store.results import Row

MEASURES = ("msp", "entropy")
COLUMNS = ("row_key", *MEASURES)
WIDTH = 3  # digits per image: floor(1000·c), capped at 999


def encode(c: np.ndarray) -> str:
    """Confidences in [0, 1] as concatenated 3-digit codes."""
    codes = np.clip(np.floor(np.asarray(c, dtype=np.float64) * 1000), 0, 999).astype(int)
    return "".join(f"{k:03d}" for k in codes.tolist())


def decode(text: str) -> np.ndarray:
    """3-digit codes back to confidences (each the lower end of its 0.001 bin)."""
    if len(text) % WIDTH or (text and not text.isdigit()):
        raise ValueError(f"{len(text)} characters are not whole {WIDTH}-digit codes")
    return np.array([int(text[i : i + WIDTH]) for i in range(0, len(text), WIDTH)]) / 1000


def append(path: Path, items: Iterable[tuple[Row, np.ndarray]]) -> None:
    """Store (row, confidences (len(MEASURES), N)) pairs atomically."""
    append_records(path, COLUMNS, [(row_key(r), *(encode(c) for c in conf)) for r, conf in items])


def read(path: Path) -> dict[str, np.ndarray]:
    """row_key -> confidences (len(MEASURES), N); the latest record wins; {} without the file."""

    def record(rec: Sequence[str]) -> tuple[str, np.ndarray]:
        key, *measures = rec
        values = [decode(m) for m in measures]
        if len({len(v) for v in values}) != 1:
            raise ValueError("measures of different lengths; move the file away")
        return key, np.stack(values)

    return dict(
        parse_records(
            path, read_records(path, COLUMNS, "confidence"), record, "damaged confidence record"
        )
    )
