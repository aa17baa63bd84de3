"""What produced a number: library versions, the harness commit, the time."""

from __future__ import annotations

import functools
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

BACKENDS = (
    "torch",
    "torchvision",
    "numpy",
    "fvcore",
    "pandas",
    "matplotlib",
    "timm",
    "robustbench",
)


@functools.cache
def versions() -> dict[str, str]:
    """Installed versions of Python and the libraries a number depends on."""
    out = {"python": sys.version.split()[0]}
    for pkg in BACKENDS:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = ""
    return out


@functools.cache
def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when it has local changes), or ''."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        sha = head.stdout.strip() if head.returncode == 0 else ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha[:12]}{'+dirty' if dirty else ''}" if sha else ""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
