"""The tidy results table: one row per (model, weights, data, condition, exit, seed), appended
atomically.

Torch-free: the report reads this module's schema without importing torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

from bench.core.errors import BenchError
from bench.store.csvfile import append_records, header, parse_records, read_records

SCHEMA_VERSION = 4
# Bumped whenever the harness would give a stored cell another outcome for the same key (what counts
# as robust, random starts, corruption rendering). Rows of an older scoring are never reused on
# resume, and a table shows a cell's row of the newest scoring.
# 1: the first versioned scoring (2026-11-28).
# 2: cells of the torchattacks backend score their adversarial images in eval mode (torchattacks
#    left the model in training mode, so batch norm used, and overwrote, batch statistics).
# 3: batched contrast takes its channel means as NumPy sums them (it missed the reference by one
#    grey level on images whose mean is a whole grey level), and the evaluated copy's fold is
#    checked in its channels_last layout.
SCORING = 3


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
    scoring: int  # the harness's SCORING when the row was measured
    # outcome
    n_images: int
    n_correct: int
    accuracy: float
    # cost
    gmacs: float  # multiply-accumulates of one image up to this exit, in 1e9 (fvcore convention)
    params_m: float  # inference parameters in millions
    input_size: int
    flops_uncounted: str  # JSON {op: occurrences} the counter skipped
    # this row's share of the cell's wall time: its own where exits are attacked one by one
    seconds: float
    n_forward: int  # images passed forward through the evaluated model to produce this row
    n_backward: int  # images passed backward (input gradients)
    # clean rows: median batch-1 latency up to this exit on `device`; NaN elsewhere
    latency_ms: float
    throughput: float  # clean rows: best images/s over batch sizes 1, 2, 4, ...; NaN elsewhere
    throughput_batch: int  # the batch size that reached `throughput` (0 when not measured)
    # model FLOPs/s over the device's peak at `precision` (bench/cost/mfu.py); NaN where the peak is
    # unknown
    mfu: float
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
KEY_FIELDS: tuple[str, ...] = COLUMNS[: COLUMNS.index("scoring") + 1]
_TYPES = {f.name: f.type for f in fields(Row)}


# read by the report: a damaged one must fail here, with the line
_JSON = ("params", "flops_uncounted", "versions")


def _parse(name: str, text: str) -> object:
    t = _TYPES[name]
    if t == "int":
        return int(text)
    if t == "float":
        return float(text)
    if name in _JSON and not isinstance(json.loads(text), dict):
        raise ValueError(f"{name} is not a JSON object: {text[:40]!r}")
    # the last column: a line cut inside it still has every field
    if name == "created" and not _is_timestamp(text):
        raise ValueError(
            f"created is not a time as runs write it (e.g. 2026-11-28T13:43:58+00:00): {text!r}"
        )
    return text


def _row(rec: Sequence[str]) -> Row:
    """A consistent results row: accuracy = n_correct / n_images, 0 <= n_correct <= n_images."""
    row = Row(**{c: _parse(c, v) for c, v in zip(COLUMNS, rec)})
    if not 0 <= row.n_correct <= row.n_images or not math.isclose(
        row.accuracy, row.n_correct / max(row.n_images, 1), rel_tol=1e-12, abs_tol=1e-12
    ):
        raise ValueError(
            f"accuracy {row.accuracy} is not n_correct / n_images = {row.n_correct} / "
            f"{row.n_images}"
        )
    return row


def _is_timestamp(text: str) -> bool:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return False
    return t.tzinfo is not None and t.isoformat(timespec="seconds") == text


def _check_schema(path: Path) -> None:
    """Refuse a file an older harness wrote (its columns a subset of today's): rows measured
    without today's columns cannot be resumed or compared."""
    head = header(path)
    if head is not None and tuple(head) != COLUMNS and set(head) < set(COLUMNS):
        raise BenchError(
            f"{path} was written by an older harness (results schema before v{SCHEMA_VERSION}): "
            "run into a new folder (--out), or remove the file"
        )


def read_rows(path: Path) -> list[Row]:
    """All rows of a results CSV; a damaged, foreign or older file is an error, never guessed
    around."""
    _check_schema(path)
    try:
        records = read_records(path, COLUMNS, f"results v{SCHEMA_VERSION}")
        return parse_records(path, records, _row, "cannot parse results row")
    except ValueError as e:
        raise BenchError(f"{path}: cannot parse results file: {e}") from None


def append_rows(path: Path, rows: Iterable[Row]) -> None:
    """Add rows all-or-nothing: a killed run loses at most the cell in flight."""
    _check_schema(path)
    append_records(path, COLUMNS, [astuple(r) for r in rows])
