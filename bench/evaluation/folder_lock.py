"""One run writes a results folder at a time.

Two would each rewrite results.csv from what they read and lose the other's rows. Holding the
folder also makes it safe to remove what a killed run left half-written.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.core.errors import BenchError
from bench.devices import distributed

LOCK = ".bench.lock"
# Temporary files renamed into place when complete: the results, per-image, checks and glimpse CSVs,
# data.json, and AutoAttack's per-cell progress (no rank writes one before every rank has planned,
# after the lock is taken).
LEFTOVERS = (".*.csv.*.tmp", ".*.json.*.tmp", ".state/.*.tmp")


@contextmanager
def hold(out: Path) -> Iterator[None]:
    """Rank 0 holds `out` and removes leftovers of killed runs.

    The kernel lets go if the process dies. When the folder is taken, every rank raises the same
    error, so none is left waiting at a barrier.
    """
    fd = _lock(out / LOCK) if distributed.world().main else None
    refused = ""
    if distributed.world().main and fd is None:
        refused = (
            f"another bench run is writing to {out}; wait for it to finish or use another --out"
        )
    refused = next((r for r in distributed.gather(refused) if r), "")
    try:
        if refused:
            raise BenchError(refused)
        if fd is not None:
            for pattern in LEFTOVERS:
                for f in out.glob(pattern):
                    f.unlink(missing_ok=True)
        yield
    finally:
        if fd is not None:
            (out / LOCK).unlink(missing_ok=True)  # the folder keeps no trace of the lock
            os.close(fd)


def _lock(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on `path`, or None when another process holds it.

    The lock file is removed when a run ends, so a lock taken on a file another run has just
    unlinked is let go and taken again on the file now at `path`.
    """
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    return None
