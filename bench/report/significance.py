"""Which headline accuracies differ significantly: paired on the same images where per_image.csv
has their records, else by non-overlapping intervals (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bench.report import stats
from bench.store.per_image import Record, Records

CORRUPTION = "mean corruption acc (%)"


def _record(images: Records, key: object) -> Record | None:
    """A row's per-image record, sorted by image index (None if the run folder lacks it)."""
    if not isinstance(key, str) or key not in images:
        return None
    idx, ok = images[key]
    order = np.argsort(idx, kind="stable")
    return idx[order], ok[order]


def per_image_mean(keys: tuple[str, ...], images: Records) -> Record | None:
    """(indices, each image's accuracy over the rows): the unit a mean over conditions varies by."""
    records = [_record(images, k) for k in keys]
    if not records or any(r is None for r in records):
        return None
    idx = records[0][0]
    if any(not np.array_equal(r[0], idx) for r in records):
        return None
    return idx, np.mean([r[1] for r in records], axis=0)


def corruption_interval(row: pd.Series, images: Records) -> tuple[float, float]:
    """The 95 % interval of a row's mean corruption accuracy (NaN without per-image records)."""
    got = per_image_mean(tuple(row[f"row_key {CORRUPTION}"]), images)
    return stats.mean_interval(got[1]) if got else (math.nan, math.nan)


Differs = Callable[[int, int], bool]


def _count_test(
    k: Sequence[float], n: Sequence[float], keys: Sequence[object], images: Records
) -> Differs:
    """differs(i, j) for accuracies: McNemar on the same images, else disjoint intervals."""
    recs = [_record(images, key) for key in keys]

    def differs(i: int, j: int) -> bool:
        a, b = recs[i], recs[j]
        if a is not None and b is not None and np.array_equal(a[0], b[0]):
            return stats.mcnemar(a[1], b[1]) < stats.ALPHA
        return stats.disjoint(
            stats.wilson(int(k[i]), int(n[i])), stats.wilson(int(k[j]), int(n[j]))
        )

    return differs


def _corruption_test(means: Sequence[Record | None]) -> Differs:
    """differs(i, j) for mean corruption accuracy: a paired test over images, else intervals."""

    def differs(i: int, j: int) -> bool:
        a, b = means[i], means[j]
        assert a is not None and b is not None
        if np.array_equal(a[0], b[0]):
            return stats.paired_differs(a[1], b[1])
        return stats.disjoint(stats.mean_interval(a[1]), stats.mean_interval(b[1]))

    return differs


def _unless_all(tied: set[int], values: Sequence[float]) -> set[int]:
    """The tied best, or nothing where every value is tied (no entry stands out)."""
    return set() if len(tied) == sum(not math.isnan(v) for v in values) else tied


def bold_counts(
    k: Sequence[float], n: Sequence[float], keys: Sequence[object], images: Records
) -> set[int]:
    """Positions of the accuracies to show in bold: the best and those tied with it."""
    values = [float(a) / float(b) if b == b and b else math.nan for a, b in zip(k, n)]
    return _unless_all(stats.tied_best(values, True, _count_test(k, n, keys, images)), values)


def bold_corruption(
    values: Sequence[float], keys: Sequence[tuple[str, ...]], images: Records
) -> set[int]:
    """Positions of the mean corruption accuracies to show in bold; none where a compared row has
    no per-image records (no interval, so no difference can be called)."""
    values = [float(v) for v in values]
    means = [per_image_mean(tuple(k), images) for k in keys]
    if any(m is None for m, v in zip(means, values) if not math.isnan(v)):
        return set()
    return _unless_all(stats.tied_best(values, True, _corruption_test(means)), values)
