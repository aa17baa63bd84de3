"""Per-image correctness behind every results row (torch-free), so rows can be compared image by
image.

per_image.csv holds one record per results row: the row's key hash, the image indices and a 0/1
string of correctness in the same order. Sanity checks use it to compare attacks run on different
subsets on the images they share (subsets are prefixes of one fixed permutation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from bench.store.csvfile import append_records, parse_records, read_records
from bench.store.results import Row

COLUMNS = ("row_key", "indices", "correct")


def row_key(row: Row) -> str:
    """A stable hash of a results row's key columns."""
    return hashlib.sha256(repr(row.key()).encode()).hexdigest()[:20]


def append(path: Path, items: Iterable[tuple[Row, np.ndarray, np.ndarray]]) -> None:
    """Store (row, indices, correct) triples atomically."""
    append_records(
        path,
        COLUMNS,
        [
            (
                row_key(r),
                " ".join(map(str, idx.tolist())),
                "".join("1" if c else "0" for c in ok.tolist()),
            )
            for r, idx, ok in items
        ],
    )


Record = tuple[np.ndarray, np.ndarray]  # (image indices, correct)
Records = dict[str, Record]  # row_key -> its record


def read(path: Path) -> Records:
    """row_key -> (indices, correct bool); the latest record wins."""

    def record(rec: Sequence[str]) -> tuple[str, Record]:
        key, idx, ok = rec
        fields = idx.split()
        if not all(f.isdigit() for f in fields) or len(ok) != len(fields) or set(ok) - {"0", "1"}:
            raise ValueError(
                f"{len(fields)} image indices, {len(ok)} correctness flags; move the file away or "
                "choose another --out"
            )
        return key, (np.array(fields, dtype=np.int64), np.array([c == "1" for c in ok], dtype=bool))

    return dict(
        parse_records(
            path, read_records(path, COLUMNS, "per-image"), record, "damaged per-image record"
        )
    )
