"""Corrupted copies of an image subset: generated in worker processes and cached on disk as uint8.

Cache entries are keyed by the data set's fingerprint, the image indices, corruption, severity,
seed and the source's version, so a second run (or another model) reuses them; a damaged entry is
regenerated, never trusted. `prepare` fills the cache for many conditions with one process pool
(each worker compiles glass_blur's numba kernel once); `corrupted` reads one condition back.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from corruptions import reference

CODE_VERSION = 1  # bump when this module's seeding or output changes
_SHARED: dict = {}  # the images, inherited by forked workers instead of pickled per task


def cache_path(cache: Path, fingerprint: str, indices: np.ndarray, name: str, severity: int, seed: int) -> Path:
    h = hashlib.sha256()
    for part in (fingerprint, name, str(severity), str(seed), reference.version(), str(CODE_VERSION)):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    return cache / f"{name}-s{severity}-{h.hexdigest()[:24]}.npy"


def _load(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        out = np.load(path)
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


def _job(task: tuple[str, int, int, str]) -> tuple[str, int]:
    name, severity, seed, path = task
    images, indices = _SHARED["images"], _SHARED["indices"]
    _save(Path(path), reference.corrupt_many(images, indices, name, severity, seed))
    return name, severity


def prepare(images: np.ndarray, indices: np.ndarray, conditions: Sequence[tuple[str, int]], seed: int, *,
            cache: Path, fingerprint: str, workers: int = 0,
            progress: Callable[[str, int], None] | None = None) -> None:
    """Make sure every (corruption, severity) of `conditions` is in the cache for these images."""
    todo = [(n, s, seed, str(cache_path(cache, fingerprint, indices, n, s, seed))) for n, s in conditions]
    todo = [t for t in todo if _load(Path(t[3]), images.shape) is None]
    if not todo:
        return
    _SHARED.update(images=images, indices=indices)
    try:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("fork")) as pool:
                for name, severity in pool.map(_job, todo):
                    if progress:
                        progress(name, severity)
        else:
            for t in todo:
                _job(t)
                if progress:
                    progress(t[0], t[1])
    finally:
        _SHARED.clear()


def corrupted(images: np.ndarray, indices: np.ndarray, name: str, severity: int, seed: int, *,
              cache: Path, fingerprint: str, workers: int = 0) -> np.ndarray:
    """uint8 (N,H,W,3) corrupted images of one condition (generated now if not cached)."""
    path = cache_path(cache, fingerprint, indices, name, severity, seed)
    out = _load(path, images.shape)
    if out is None:
        prepare(images, indices, [(name, severity)], seed, cache=cache, fingerprint=fingerprint, workers=workers)
        out = _load(path, images.shape)
        assert out is not None
    return out
