"""Corrupted copies of an image subset: generated in worker processes and cached on disk as uint8.

Cache entries are keyed by the data set's fingerprint, the image indices, corruption, severity,
seed and the source's version, so a second run (or another model) reuses them; a damaged entry is
regenerated, never trusted. `prepare` fills the cache for many conditions with one process pool
when there is enough work to pay for starting the workers (imports and numba compilation take
seconds); `corrupted` reads one condition back.
Workers are spawned, not forked (forking a process that has run torch's thread pools can hang
it), and read the clean images from a memory-mapped .npy instead of receiving copies.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.corruptions import reference

CODE_VERSION = 1  # bump when this module's seeding or output changes
# Below this many clean bytes x conditions (some seconds of reference work) no workers are started.
WORKER_BYTES = 200_000_000


def cache_path(
    cache: Path, fingerprint: str, indices: np.ndarray, name: str, severity: int, seed: int
) -> Path:
    h = hashlib.sha256()
    for part in (
        fingerprint,
        name,
        str(severity),
        str(seed),
        reference.version(),
        str(CODE_VERSION),
    ):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    return cache / f"{name}-s{severity}-{h.hexdigest()[:24]}.npy"


def _load(path: Path, shape: tuple[int, ...], mapped: bool = False) -> np.ndarray | None:
    """A cache entry of this shape, else None (a damaged one removed); `mapped` checks it without
    reading the pixels (header and file length), for `prepare`, which only asks whether it is there.
    """
    if not path.is_file():
        return None
    try:
        out = np.load(path, mmap_mode="r" if mapped else None)
        if out.shape == shape and out.dtype == np.uint8:
            return out
    except (OSError, ValueError):
        pass
    path.unlink(missing_ok=True)  # damaged: regenerate
    return None


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


def _job(task: tuple[str, int, int, str, str, str]) -> tuple[str, int]:
    name, severity, seed, path, images_path, indices_path = task
    images = np.load(images_path, mmap_mode="r")
    indices = np.load(indices_path)
    _save(Path(path), reference.corrupt_many(np.asarray(images), indices, name, severity, seed))
    return name, severity


def uses_workers(images: np.ndarray, n_conditions: int, workers: int) -> bool:
    """Whether `prepare` starts worker processes: only for enough work to pay for their start-up."""
    return workers > 1 and n_conditions > 1 and images.nbytes * n_conditions >= WORKER_BYTES


def prepare(
    images: np.ndarray,
    indices: np.ndarray,
    conditions: Sequence[tuple[str, int]],
    seed: int,
    *,
    cache: Path,
    fingerprint: str,
    workers: int = 0,
    progress: Callable[[str, int], None] | None = None,
) -> None:
    """Make sure every (corruption, severity) of `conditions` is in the cache for these images."""
    paths = [
        (n, s, str(cache_path(cache, fingerprint, indices, n, s, seed))) for n, s in conditions
    ]
    paths = [p for p in paths if _load(Path(p[2]), images.shape, mapped=True) is None]
    if not paths:
        return
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".clean-") as tmp:
        np.save(Path(tmp) / "images.npy", images)
        np.save(Path(tmp) / "indices.npy", indices)
        todo = [
            (n, s, seed, p, str(Path(tmp) / "images.npy"), str(Path(tmp) / "indices.npy"))
            for n, s, p in paths
        ]
        if uses_workers(images, len(todo), workers):
            with ProcessPoolExecutor(
                min(workers, len(todo)), mp_context=mp.get_context("spawn")
            ) as pool:
                for name, severity in pool.map(_job, todo):
                    if progress:
                        progress(name, severity)
        else:
            for t in todo:
                _job(t)
                if progress:
                    progress(t[0], t[1])


def corrupted(
    images: np.ndarray,
    indices: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    *,
    cache: Path,
    fingerprint: str,
    workers: int = 0,
) -> np.ndarray:
    """uint8 (N,H,W,3) corrupted images of one condition (generated now if not cached)."""
    path = cache_path(cache, fingerprint, indices, name, severity, seed)
    out = _load(path, images.shape)
    if out is None:
        prepare(
            images,
            indices,
            [(name, severity)],
            seed,
            cache=cache,
            fingerprint=fingerprint,
            workers=workers,
        )
        out = _load(path, images.shape)
        assert out is not None
    return out
