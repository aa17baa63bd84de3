"""Cluttered Fashion-MNIST: the embedded default data set, built deterministically from the real
images.

Each Fashion-MNIST item is scaled and placed at a random position on a coloured RGB canvas among
fragments cut from other items of the same split (after the cluttered MNIST of recurrent attention
models), so a model must find the object: the setting glimpse networks are made for. Image i of a
split depends only on (seed, split, i), never on how many images are built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data import fmnist
from bench.data.imageset import ArrayImageSet, rank_cores

VERSION = 1  # bump when rendering changes: it is part of the cache key
PARALLEL_FROM = 2000  # fewer images render faster in this process than worker processes start

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClutterSpec:
    """Geometry and size of the cluttered set."""

    canvas: int = 64
    item_min: int = 26
    item_max: int = 44
    n_clutter: int = 6
    fragment: int = 12
    n_train: int = 12000
    n_test: int = 2000
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _colour_far_from(rng: np.random.Generator, ref: np.ndarray, min_dist: float) -> np.ndarray:
    for _ in range(32):
        c = rng.uniform(0, 255, 3)
        if np.linalg.norm(c - ref) >= min_dist:
            return c
    return 255.0 - ref  # the complement is always far enough


def render(items: np.ndarray, i: int, split_id: int, spec: ClutterSpec) -> np.ndarray:
    """Image i: a coloured gradient, clutter fragments of other items, then item i on top."""
    return _render(items, i, split_id, spec)[0]


def object_box(
    items: np.ndarray, i: int, split_id: int, spec: ClutterSpec
) -> tuple[float, float, float, float]:
    """Where item i lies in its image: the tight box (x0, y0, x1, y1) of the pixels it covers, as
    fractions of the canvas, for comparing glimpses with objects."""
    return _render(items, i, split_id, spec)[1]


def _render(
    items: np.ndarray, i: int, split_id: int, spec: ClutterSpec
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Image i and its object's box, drawn together so the box is the one the image shows."""
    rng = np.random.default_rng([spec.seed, split_id, i])
    n = spec.canvas
    c0, c1 = rng.uniform(0, 150, 3), rng.uniform(0, 150, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    canvas = c0 + (c1 - c0) * ramp[..., None]
    bg_mean = (c0 + c1) / 2
    f = spec.fragment
    for _ in range(spec.n_clutter):
        src = items[rng.integers(len(items))]
        oy, ox = rng.integers(0, src.shape[0] - f + 1, 2)
        alpha = src[oy : oy + f, ox : ox + f, None] / 255.0 * 0.8
        py, px = rng.integers(0, n - f + 1, 2)
        colour = rng.uniform(0, 255, 3)
        patch = canvas[py : py + f, px : px + f]
        canvas[py : py + f, px : px + f] = patch * (1 - alpha) + colour * alpha
    side = int(rng.integers(spec.item_min, spec.item_max + 1))
    item = np.asarray(
        Image.fromarray(items[i]).resize((side, side), Image.BILINEAR), dtype=np.float64
    )
    alpha = item[..., None] / 255.0
    py, px = rng.integers(0, n - side + 1, 2)
    colour = _colour_far_from(rng, bg_mean, 140.0)
    region = canvas[py : py + side, px : px + side]
    canvas[py : py + side, px : px + side] = region * (1 - alpha) + colour * alpha
    ys, xs = np.nonzero(alpha[..., 0] > 0)
    box = (
        (px + xs.min(), py + ys.min(), px + xs.max() + 1, py + ys.max() + 1)
        if len(xs)
        else (0,) * 4
    )
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), tuple(float(v) / n for v in box)


def build(
    split: str,
    spec: ClutterSpec,
    source: Path,
    cache: Path | None = None,
    workers: int | None = None,
) -> ArrayImageSet:
    """The train or test split; cached as .npz under `cache` when given, keyed by the spec and the
    source files' bytes. A build of many images renders in `workers` processes (default: this rank's
    share of the cores; torchrun's ranks each build it); the images do not depend on it."""
    count = min(spec.n_train if split == "train" else spec.n_test, fmnist.count(split, source))
    name = "cluttered_fmnist"
    key = f"{spec.key()}-{fmnist.digest(split, source)}"  # the geometry and the source files' bytes
    path = None if cache is None else cache / f"{name}-{split}-{key}-{count}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                return ArrayImageSet(name, split, fmnist.CLASSES, z["images"], z["labels"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    items, labels = fmnist.load(split, source)
    split_id = 0 if split == "train" else 1
    images = _render_all(items, count, split_id, spec, rank_cores() if workers is None else workers)
    out = ArrayImageSet(name, split, fmnist.CLASSES, images, labels[:count].copy())
    if path is not None:
        # processes building at once (torchrun ranks)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, images=out.images, labels=out.labels)
            tmp.replace(path)
        except OSError as e:  # a cache, not a result: the next run builds the set again
            log.warning(
                "cannot cache %s in %s (%s); set BENCH_CACHE to a writable folder",
                name,
                path.parent,
                e.strerror or e,
            )
    return out


_items: np.ndarray | None = None  # a render worker's copy of the source items


def _keep_items(items: np.ndarray) -> None:
    global _items
    _items = items


def _render_range(lo: int, hi: int, split_id: int, spec: ClutterSpec) -> np.ndarray:
    assert _items is not None
    return np.stack([render(_items, i, split_id, spec) for i in range(lo, hi)])


def _render_all(
    items: np.ndarray, count: int, split_id: int, spec: ClutterSpec, workers: int
) -> np.ndarray:
    """Images 0..count-1, in `workers` processes when many (each depends only on its index)."""
    if workers < 2 or count < PARALLEL_FROM:
        return np.stack([render(items, i, split_id, spec) for i in range(count)])
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # a few parts each, so none waits on a slow one
    bounds = np.linspace(0, count, 4 * workers + 1).astype(int)
    with ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_keep_items, initargs=(items,)
    ) as pool:
        parts = pool.map(
            _render_range,
            bounds[:-1],
            bounds[1:],
            [split_id] * (len(bounds) - 1),
            [spec] * (len(bounds) - 1),
        )
        return np.concatenate(list(parts))
