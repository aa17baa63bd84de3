"""Image sets: uint8 HxWx3 images with integer labels, after the data set's fixed preprocessing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class ImageSet(Protocol):
    """What evaluation and training read: indexable uint8 images with labels."""

    name: str
    split: str
    classes: tuple[str, ...]

    def __len__(self) -> int: ...
    def get(self, i: int) -> tuple[np.ndarray, int]: ...


@dataclass(frozen=True, eq=False)
class ArrayImageSet:
    """An image set held in memory as one (N,H,W,3) uint8 array."""

    name: str
    split: str
    classes: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise ValueError(
                f"{self.name}: images must be uint8 (N,H,W,3), got {self.images.dtype} "
                f"{self.images.shape}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(
                f"{self.name}: {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.images)

    def get(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])


@dataclass(frozen=True, eq=False)
class FolderImageSet:
    """Image files decoded on demand; `transform` maps a PIL image to uint8 HxWx3."""

    name: str
    split: str
    classes: tuple[str, ...]
    paths: Sequence[Path]
    labels: np.ndarray
    transform: Callable[..., np.ndarray] = field(repr=False)
    # (seed, epoch): a random transform (the training crop) draws from a generator seeded by them
    # and the image index, not from the process's: the same crops under any number of ranks or
    # loader workers, and on resume
    draws: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, i: int) -> tuple[np.ndarray, int]:
        from PIL import Image

        from bench.core.errors import BenchError

        try:
            with Image.open(self.paths[i]) as im:
                if self.draws is None:
                    img = self.transform(im.convert("RGB"))
                else:
                    import torch

                    from bench.core.seeds import image_seed

                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(image_seed(self.draws[0], i, "train-crop", self.draws[1]))
                        img = self.transform(im.convert("RGB"))
        except OSError as e:
            raise BenchError(f"{self.name}: cannot read image {self.paths[i]}: {e}") from None
        return img, int(self.labels[i])


def subset_indices(n_total: int, n: int | None) -> tuple[np.ndarray, str]:
    """The evaluated images: all, or the first n of a fixed permutation (seed 0, never the run
    seed).

    Returns the indices and the label written to the `subset` column.
    """
    if n is None or n >= n_total:
        return np.arange(n_total), "all"
    if n <= 0:
        raise ValueError(f"number of images must be positive, got {n}")
    perm = np.random.default_rng(0).permutation(n_total)
    return np.sort(perm[:n]), f"perm0:{n}"


def first_images(images: ImageSet, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, uint8 images, labels) of the first n images of the fixed evaluation order, read in
    this process: the batch checks, probes and examples use."""
    idx, _ = subset_indices(len(images), n)
    return next(iter_batches(images, idx, len(idx), 0))


def iter_batches(
    images: ImageSet, indices: np.ndarray, batch_size: int, workers: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (indices, uint8 images (B,H,W,3), labels) in order; folder sets decode in workers."""
    if isinstance(images, ArrayImageSet):
        for s in range(0, len(indices), batch_size):
            idx = indices[s : s + batch_size]
            yield idx, images.images[idx], images.labels[idx]
        return
    import torch.utils.data as tud

    class _DS(tud.Dataset):
        def __len__(self) -> int:
            return len(indices)

        def __getitem__(self, k: int):  # type: ignore[no-untyped-def]
            img, lab = images.get(int(indices[k]))
            return int(indices[k]), img, lab

    loader = tud.DataLoader(
        _DS(),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=lambda b: tuple(np.stack(c) for c in zip(*b)),
    )
    from bench.core.errors import BenchError

    try:
        yield from loader
    except BenchError as e:  # from a worker, torch adds its traceback to the message
        raise BenchError(worker_message(e)) from None


def worker_message(e: BaseException) -> str:
    """An error's own message, without what a DataLoader worker put before it (its traceback)."""
    marker = f"{type(e).__module__}.{type(e).__qualname__}: "
    return str(e).rsplit(marker, 1)[-1].strip()


def loader_workers(images: ImageSet, requested: int | None = None) -> int:
    """Processes that decode images for each batch: `requested` if given; else none for an in-memory
    set (nothing to decode) and, for a folder set, this rank's share of the cores less one for the
    main process, at most 8."""
    if requested is not None:
        return requested
    if isinstance(images, ArrayImageSet):
        return 0
    return min(8, rank_cores() - 1)


def rank_cores() -> int:
    """This rank's share of the node's cores (at least 1), split over LOCAL_WORLD_SIZE ranks."""
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def to_unit(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,H,W) in [0,1]: the one conversion between data and models."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images))
    if torch.device(device).type == "cuda":  # page-locked host memory: an asynchronous copy
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    # contiguous: pyautoattack .view()s input gradients
    return x.permute(0, 3, 1, 2).float().div_(255).contiguous()


def fingerprint(images: ImageSet) -> str:
    """Identity of an image set's content, for cache keys and results folders.

    Array bytes, or the names (class folder and file) and sizes of its files, so a moved or
    re-linked folder keeps its identity.
    """
    import hashlib

    h = hashlib.sha256(f"{images.name}|{images.split}|{len(images)}".encode())
    if isinstance(images, ArrayImageSet):
        h.update(np.ascontiguousarray(images.images).tobytes())
        h.update(np.ascontiguousarray(images.labels).tobytes())
    else:
        for p in getattr(images, "paths", []):
            h.update(f"{Path(p).parent.name}/{Path(p).name}|{Path(p).stat().st_size}".encode())
    return h.hexdigest()[:16]


def load_arrays(
    images: ImageSet, indices: np.ndarray, workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The subset as in-memory uint8 (N,H,W,3) images and labels (folders decoded in workers)."""
    if isinstance(images, ArrayImageSet):
        return images.images[indices], images.labels[indices]
    parts = [(imgs, labels) for _, imgs, labels in iter_batches(images, indices, 64, workers)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
