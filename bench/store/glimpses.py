"""glimpses.csv: where a glimpse model looks, each exit's box on a few example images (torch-free).

bench/evaluation/glimpses.py records the boxes and the inputs (examples/glimpses/*.png); the report
draws them from these files alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.store.csvfile import append_records, parse_records, read_records

COLUMNS = (
    "model",
    "weights",
    "dataset",
    "condition",
    "image",
    "label",
    "exit",
    "predicted",
    "x0",
    "y0",
    "x1",
    "y1",
    "inputs",
)


@dataclass(frozen=True, slots=True)
class Glimpse:
    """One exit's box (fractions of width and height) on one example image under one condition."""

    model: str
    weights: str
    dataset: str
    condition: str  # clean | <corruption>-<severity> | pgd-linf-4/255
    image: int  # data set index
    label: int
    exit: int
    predicted: int  # the exit's prediction on this input
    x0: float
    y0: float
    x1: float
    y1: float
    inputs: str  # PNG strip of this condition's inputs, relative to the run folder


def read(path: Path) -> list[Glimpse]:
    """Stored glimpse rows ([] when the run has none)."""
    ints = {"image", "label", "exit", "predicted"}
    floats = {"x0", "y0", "x1", "y1"}
    return parse_records(
        path,
        read_records(path, COLUMNS, "glimpses"),
        lambda rec: Glimpse(
            **{
                c: int(v) if c in ints else float(v) if c in floats else v
                for c, v in zip(COLUMNS, rec)
            }
        ),
        "damaged glimpse record",
    )


def append(path: Path, rows: Iterable[Glimpse]) -> None:
    """Add glimpse rows atomically."""
    append_records(path, COLUMNS, [[getattr(r, c) for c in COLUMNS] for r in rows])
