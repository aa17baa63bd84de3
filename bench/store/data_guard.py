"""The data a results folder's rows were measured on (data.json): a run on other images under the
same data set name (another --data-root, --corruption-root or --skip-corrupt-files) is refused, so
stored rows are never resumed or mixed with rows of other data."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from bench.core.errors import BenchError
from bench.data import ImageSet, fingerprint

FILE = "data.json"


def identity(images: ImageSet, fp: str = "") -> dict:
    """What tells two image sets apart: their size and fingerprint (array bytes, or file names and
    sizes); `fp` is that fingerprint where the caller has it already."""
    return {
        "images": len(images),
        "classes": len(images.classes),
        "fingerprint": fp or fingerprint(images),
    }


def rendered_name(dataset: str, corruption: str, severity: int) -> str:
    """The data.json entry of one pre-rendered corruption folder."""
    return f"{dataset}-c/{corruption}/{severity}"


def measured(rows: Iterable, dataset: str) -> set[str]:
    """The entries stored rows depend on: the data set's test images and rendered folders read."""
    names: set[str] = set()
    for r in rows:
        if r.dataset == dataset:
            names.add(dataset)
            if r.kind == "corruption" and r.source == "rendered":
                names.add(rendered_name(dataset, r.condition, r.severity))
    return names


# What most likely changed when a data set's images did, by data set (the default: its folder).
_LIKELY = {"cluttered_fmnist": "Fashion-MNIST copy (BENCH_FMNIST_DIR) or cluttered-set build"}


def check(out: Path, current: dict[str, dict], stored: set[str], write: bool = True) -> set[str]:
    """Refuse a run whose data differs from what the folder's stored rows were measured on; record
    the rest.

    Returns the entries whose recorded data changed (allowed: no stored row depends on them)."""
    path = out / FILE
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(known, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise BenchError(
            f"{path} is damaged ({e}); remove it to record this run's data afresh"
        ) from None
    changed = {name for name, now in current.items() if known.get(name) not in (None, now)}
    for name in sorted(changed & stored):
        what = (
            "--corruption-root or --skip-corrupt-files"
            if "/" in name
            else _LIKELY.get(name, "--data-root")
        )
        raise BenchError(
            f"{out} holds rows measured on other {name} data ({_describe(known[name])}) than this "
            f"run's ({_describe(current[name])}): another {what}? Write to another --out, or "
            f"remove {out} to start over"
        )
    merged = {**known, **current}
    if write and merged != known:
        tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
    return changed


def _describe(entry: dict) -> str:
    return f"{entry.get('images')} images, fingerprint {entry.get('fingerprint')}"
