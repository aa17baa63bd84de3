"""A run that fails before its first results row leaves its output folder as it found it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.devices import distributed

log = logging.getLogger(__name__)


def _entries(out: Path) -> set[Path]:
    return set(out.rglob("*")) if out.is_dir() else set()


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else -1


@contextmanager
def undone_on_failure(out: Path) -> Iterator[None]:
    """On an error before any results row was written (rank 0): remove what the run created in
    `out` (data.json, checks, examples, the folder itself if it was new); keep all otherwise."""
    main = distributed.world().main
    existed, before = out.is_dir(), _entries(out)
    rows = _size(out / "results.csv")
    try:
        yield
    except Exception:
        if main and _size(out / "results.csv") == rows:
            _remove_new(out, before, existed)
        raise


def _remove_new(out: Path, before: set[Path], existed: bool) -> None:
    """Files and folders under `out` that were not there before, deepest first."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in sorted(_entries(out) - before, key=lambda p: len(p.parts), reverse=True):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
