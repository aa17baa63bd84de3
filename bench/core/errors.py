"""The one exception users see: a single clear line, exit status 2."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, unwritable output."""

    exit_code = 2


def ensure_writable(folder: Path, what: str, hint: str = "") -> None:
    """Fail now, not at a later write: make `folder` and a file in it, else 'cannot write WHAT'."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise BenchError(f"cannot write {what}: {e.strerror or e}{hint}") from None


def first_line(e: BaseException) -> str:
    """The first line of an exception's message ('' if none): libraries' errors (torch's unpickler)
    run on for lines, and a BenchError is one line."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def unknown(kind: str, name: str, known: Iterable[str]) -> BenchError:
    """'unknown <kind> <name>; did you mean …? (known: …)': the one message for every lookup."""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    listed = ", ".join(known[:30]) + (f", … ({len(known)} in all)" if len(known) > 30 else "")
    return BenchError(f"unknown {kind} {name!r}{hint} (known: {listed or 'none'})")


class NonFiniteLogits(BenchError):
    """A model's logits turned NaN or Inf while being scored: argmax would count them a class."""

    def __init__(self, n_images: int) -> None:
        super().__init__(f"logits turned non-finite (NaN or Inf) for {n_images} image(s)")
        self.n_images = n_images
