"""Append-only CSV files written all-or-nothing (torch-free): results.csv and checks.csv."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from bench.core.errors import BenchError


def read_records(path: Path, columns: Sequence[str], what: str) -> list[list[str]]:
    """Records of a CSV whose header must equal `columns`; [] if the file does not exist."""
    if not path.exists():
        return []
    try:
        with _open(path, what) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return []
            if tuple(header) != tuple(columns):
                raise BenchError(
                    f"{path}: header does not match the {what} schema; "
                    "move the file away or choose another --out"
                )
            records = []
            for n, rec in enumerate(reader, start=2):
                if len(rec) != len(columns):
                    raise BenchError(
                        f"{path}:{n}: expected {len(columns)} fields, found {len(rec)}"
                    )
                records.append(rec)
            return records
    except (UnicodeDecodeError, csv.Error) as e:
        raise BenchError(f"{path}: cannot parse {what} file: {e}") from None


T = TypeVar("T")


def parse_records(
    path: Path, records: Iterable[Sequence[str]], build: Callable[[Sequence[str]], T], damaged: str
) -> list[T]:
    """build(record) for each record; a ValueError it raises is one error naming the file and line:
    the report and the runner fail on a damaged record here, not later."""
    out = []
    for line, rec in enumerate(records, start=2):
        try:
            out.append(build(rec))
        except ValueError as e:  # json.JSONDecodeError is one too
            raise BenchError(f"{path}:{line}: {damaged}: {e}") from None
    return out


def _open(path: Path, what: str) -> TextIO:
    try:
        return path.open(newline="")
    except OSError as e:
        raise BenchError(f"cannot read {what} file {path}: {e.strerror or e}") from None


def header(path: Path) -> tuple[str, ...] | None:
    """The first line's fields, or None for a missing or empty file."""
    if not path.exists():
        return None
    try:
        with _open(path, "CSV") as f:
            first = next(csv.reader(f), None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise BenchError(f"{path}: cannot parse CSV file: {e}") from None
    return None if first is None else tuple(first)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def append_records(
    path: Path, columns: Sequence[str], records: Iterable[Sequence[object]], replace: bool = False
) -> None:
    """Add records all-or-nothing (or, with `replace`, rewrite the file): a complete new file,
    fsync, rename.

    Floats are written with repr so they read back exactly.
    """
    records = list(records)
    if not records:
        return
    old = path.read_bytes() if path.exists() and not replace else b""
    # a file an editor saved without its last newline: keep rows apart
    if old and not old.endswith(b"\n"):
        old += b"\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not old:
        w.writerow(columns)
    for rec in records:
        # NumPy's float64 too
        w.writerow([repr(float(v)) if isinstance(v, float) else str(v) for v in rec])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp's is 0600
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(old + buf.getvalue().encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
