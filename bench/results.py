"""The tidy results table: one row per (model, weights, data, condition, exit, seed), appended atomically.

Torch-free: the report reads this module's schema without importing torch.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Iterable

from bench.errors import BenchError

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured cell at one exit. Units are in the names; ε and accuracy are fractions."""

    # key
    model: str
    weights: str  # sha256 prefix of the checkpoint, official:<sha>, or "random"
    dataset: str
    subset: str  # "all" or perm0:<n>
    kind: str
    condition: str
    source: str
    protocol: str
    severity: int
    norm: str
    epsilon: float
    steps: int
    step_size: float
    restarts: int
    params: str
    exit: int
    seed: int
    precision: str
    # outcome
    n_images: int
    n_correct: int
    accuracy: float
    # cost
    gmacs: float  # multiply-accumulates of one image up to this exit, in 1e9 (fvcore convention)
    params_m: float  # inference parameters in millions
    input_size: int
    flops_uncounted: str  # JSON {op: occurrences} the counter skipped
    seconds: float  # wall time of the cell's evaluation, split evenly over its exit rows
    # provenance
    family: str
    exits_total: int
    device: str
    torch: str
    versions: str  # JSON of the backends' versions
    code: str  # git commit of the harness, "" when not a checkout
    created: str  # UTC ISO-8601

    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in KEY_FIELDS)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Row))
KEY_FIELDS: tuple[str, ...] = COLUMNS[:COLUMNS.index("precision") + 1]
_TYPES = {f.name: f.type for f in fields(Row)}


def _fmt(v: object) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _parse(name: str, text: str) -> object:
    t = _TYPES[name]
    if t == "int":
        return int(text)
    if t == "float":
        return float(text)
    return text


def read_rows(path: Path) -> list[Row]:
    """All rows of a results CSV; a damaged or foreign file is an error, never guessed around."""
    if not path.exists():
        return []
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return []
            if tuple(header) != COLUMNS:
                raise BenchError(f"{path}: header does not match results schema v{SCHEMA_VERSION}; "
                                 "move the file away or choose another --out")
            rows = []
            for n, rec in enumerate(reader, start=2):
                if len(rec) != len(COLUMNS):
                    raise BenchError(f"{path}:{n}: expected {len(COLUMNS)} fields, found {len(rec)}")
                rows.append(Row(**{c: _parse(c, v) for c, v in zip(COLUMNS, rec)}))
            return rows
    except (ValueError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot parse results file: {e}") from None


def append_rows(path: Path, rows: Iterable[Row]) -> None:
    """Add rows all-or-nothing: write a complete new file beside the old one, fsync, rename."""
    rows = list(rows)
    if not rows:
        return
    old = path.read_bytes() if path.exists() else b""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not old:
        w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_fmt(v) for v in astuple(r)])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + buf.getvalue().encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def canonical_json(obj: object) -> str:
    """Stable JSON for key columns (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
