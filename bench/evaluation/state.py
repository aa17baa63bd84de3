"""In-flight cell progress (.state/): AutoAttack's per-image flags, kept until rows are written."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def state_path(out: Path, key: dict) -> Path:
    """A cell's resumable state file, named by the key of its first row (ranks add a suffix)."""
    return out / ".state" / hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def remove_state(state: Path) -> None:
    """Remove a cell's progress files, every rank's, of any world size an interrupted launch had."""
    for f in state.parent.glob(f"{state.name}*"):
        f.unlink(missing_ok=True)  # another rank may remove the same file


def clear(out: Path) -> None:
    """Remove all progress: it was made on test images that have changed since."""
    for f in (out / ".state").glob("*"):
        f.unlink(missing_ok=True)


def tell_stale(out: Path, planned: set[str]) -> None:
    """Name the progress files of cells this run did not plan: an interrupted run with other
    settings left them, and only that run, given again, resumes from them."""
    stale = {f.name[:16] for f in (out / ".state").glob("[!.]*")} - planned
    if stale:
        log.warning(
            "%s holds the progress of %d interrupted cell(s) this run does not have (another "
            "suite, radius or option); rerun those settings to resume them, or remove the folder",
            out / ".state",
            len(stale),
        )
