"""The one exception users see: a single clear line, exit status 2."""
from __future__ import annotations

from typing import Iterable


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, unwritable output."""

    exit_code = 2


def unknown(kind: str, name: str, known: "Iterable[str]") -> BenchError:
    """'unknown <kind> <name>; did you mean …? (known: …)': the one message for every lookup."""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listed = ", ".join(known[:30]) + (f", … ({len(known)} in all)" if len(known) > 30 else "")
    return BenchError(f"unknown {kind} {name!r}{hint} (known: {listed or 'none'})")
