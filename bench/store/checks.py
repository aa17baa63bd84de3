"""checks.csv: model sanity checks and attack libraries' flags, one row per check (torch-free).

Each check name has an entry in docs/checks.md: when it is raised, what it means, what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from bench.store.csvfile import append_records, parse_records, read_records


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRow:
    """One check of one model (and exit, 0 = the whole model)."""

    model: str
    weights: str
    dataset: str
    exit: int
    check: str
    status: str  # ok | warn
    value: float
    detail: str
    created: str


CHECK_COLUMNS = tuple(f.name for f in fields(CheckRow))


def read_checks(path: Path) -> list[CheckRow]:
    """Rows of checks.csv ([] if absent)."""
    return parse_records(
        path,
        read_records(path, CHECK_COLUMNS, "checks"),
        lambda rec: CheckRow(
            **{
                c: (float(v) if c == "value" else int(v) if c == "exit" else v)
                for c, v in zip(CHECK_COLUMNS, rec)
            }
        ),
        "damaged check record",
    )


def append_checks(path: Path, rows: Iterable[CheckRow]) -> None:
    """Atomic append, like results.csv."""
    append_records(path, CHECK_COLUMNS, [astuple(r) for r in rows])
