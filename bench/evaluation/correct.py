"""One cell's per-image correctness per exit, with its passes and time; merged across ranks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# (exit, check, images raising it, images counted over): attack-failure indicators of a cell
Indicators = tuple[tuple[int, str, int, int], ...]


Tally = dict[tuple[int, str], tuple[int, int]]  # (exit, check) -> (images raising it, counted)


def tally(found: Tally, t: int, check: str, k: int, n: int) -> None:
    """Add one count of an attack-failure indicator to a running tally."""
    k0, n0 = found.get((t, check), (0, 0))
    found[t, check] = (k0 + k, n0 + n)


@dataclass(frozen=True)
class Correct:
    """Per-image correctness: index (N,), correct (E,N) bool; plus the passes and time it cost."""

    index: np.ndarray
    correct: np.ndarray
    seconds: float
    n_forward: np.ndarray  # (E,) images forward through the model that produced each exit's row
    n_backward: np.ndarray  # (E,)
    notes: tuple[
        tuple[int, str], ...
    ] = ()  # (exit, message) raised by the attack library's own checks
    # (E,) each exit's share of `seconds` where exits are attacked one by one; None where one pass
    # serves all
    exit_seconds: np.ndarray | None = None
    # AutoAttack: (exit, attack, images still robust after it) on these images, for the Square check
    # over a cell
    robust_after: tuple[tuple[int, str, int], ...] = ()
    indicators: Indicators = ()
    # (2, E, N) per-exit confidences (bench/store/confidence.py) of a multi-exit model's clean,
    # corruption or early-exit attack cell; None elsewhere
    confidence: np.ndarray | None = None

    def seconds_of(self, t: int, n_rows: int) -> float:
        """Seconds on exit t's row: its measured share, else an even split over the cell's rows."""
        return (
            float(self.exit_seconds[t - 1])
            if self.exit_seconds is not None
            else self.seconds / n_rows
        )


def shares(per_exit: np.ndarray, total: float) -> np.ndarray:
    """Per-exit times scaled to sum to the cell's wall time (load and score split in proportion)."""
    measured = float(per_exit.sum())
    return per_exit * (total / measured) if measured > 0 else per_exit


def merge(
    parts: Sequence[tuple[np.ndarray, Correct | None]], indices: np.ndarray, n_exits: int
) -> Correct:
    """One cell's Correct from the ranks' shares: (positions in `indices`, that share's result)."""
    correct = np.zeros((n_exits, len(indices)), dtype=bool)
    n_fwd, n_bwd = np.zeros(n_exits, dtype=np.int64), np.zeros(n_exits, dtype=np.int64)
    seconds, notes = 0.0, []
    exit_seconds: np.ndarray | None = None
    robust_after: dict[tuple[int, str], int] = {}
    found: Tally = {}
    conf: np.ndarray | None = None
    for pos, part in parts:
        if part is None:
            continue
        correct[:, pos] = part.correct
        n_fwd += part.n_forward
        n_bwd += part.n_backward
        # ranks run side by side: the cell took the slowest one's time
        seconds = max(seconds, part.seconds)
        notes += [n for n in part.notes if n not in notes]
        for t, name, k in part.robust_after:
            robust_after[t, name] = robust_after.get((t, name), 0) + k
        for t, check, k, n in part.indicators:
            tally(found, t, check, k, n)
        if part.confidence is not None:
            if conf is None:
                conf = np.zeros((part.confidence.shape[0], n_exits, len(indices)), np.float32)
            conf[:, :, pos] = part.confidence
        if part.exit_seconds is not None:
            exit_seconds = (
                part.exit_seconds
                if exit_seconds is None
                else np.maximum(exit_seconds, part.exit_seconds)
            )
    if exit_seconds is not None:
        exit_seconds = shares(exit_seconds, seconds)
    # AutoAttack's Square check, on the whole cell's counts as one process would take them
    if robust_after:
        from bench.attacks.autoattack import square_flags

        for t in sorted({t for t, _ in robust_after}):
            counts = {name: k for (e, name), k in robust_after.items() if e == t}
            notes += [
                (t, m)
                for m in dict.fromkeys(square_flags(counts, len(indices)))
                if (t, m) not in notes
            ]
    return Correct(
        indices,
        correct,
        seconds,
        n_fwd,
        n_bwd,
        tuple(notes),
        exit_seconds,
        tuple((t, name, k) for (t, name), k in robust_after.items()),
        tuple((t, c, k, n) for (t, c), (k, n) in sorted(found.items())),
        conf,
    )
