"""A run that fails before its first results row leaves its output folder as it found it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.devices import distributed


def _entries(out: Path) -> set[Path]:
    return set(out.rglob("*")) if out.is_dir() else set()


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else -1


@contextmanager
def undone_on_failure(out: Path) -> Iterator[None]:
    """Entered while holding the folder: on an error before any results row was written, rank 0
    removes what the run created in `out` (data.json, checks, examples); all else stays."""
    main = distributed.world().main
    before, rows = _entries(out), _size(out / "results.csv")
    try:
        yield
    except Exception:
        if main and _size(out / "results.csv") == rows:
            for p in sorted(_entries(out) - before, key=lambda p: len(p.parts), reverse=True):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        raise


@contextmanager
def new_folders_removed_on_failure(out: Path) -> Iterator[None]:
    """On an error, rank 0 removes the folders the run created for `out` that are empty again
    (`--out a/b/c` creates a, b and c); a folder another run has written to is kept."""
    created = [p for p in [out, *out.parents] if not p.exists()]  # deepest first
    try:
        yield
    except Exception:
        if distributed.world().main:
            for p in created:
                try:
                    os.rmdir(p)
                except OSError:  # not empty, or not there
                    break
        raise
