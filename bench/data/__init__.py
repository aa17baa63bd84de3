"""Data sets by name: the embedded cluttered Fashion-MNIST and ImageNet100."""

from __future__ import annotations

import os
from pathlib import Path

from bench.core.errors import BenchError, unknown
from bench.data.imageset import (
    ArrayImageSet,
    FolderImageSet,
    ImageSet,
    fingerprint,
    first_images,
    iter_batches,
    load_arrays,
    loader_workers,
    subset_indices,
    to_unit,
)

DATASETS = ("cluttered_fmnist", "imagenet100")
DEFAULT = "cluttered_fmnist"


def cache_dir() -> Path:
    """Where built data, checkpoints and FLOP counts are cached ($BENCH_CACHE or .cache/bench)."""
    return Path(os.environ.get("BENCH_CACHE", ".cache/bench")).resolve()


def check_name(name: str) -> str:
    """Reject unknown data set names early, with the closest known ones."""
    if name not in DATASETS:
        raise unknown("data set", name, DATASETS)
    return name


def load_split(name: str, split: str, root: Path | None = None, download: bool = False) -> ImageSet:
    """The named data set's split ('train' or 'test'); ImageNet100's 'test' is its val folder."""
    check_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    if name == "cluttered_fmnist":
        from bench.data import cluttered, fmnist

        if root is not None:  # a root the user gave would otherwise be silently ignored
            raise BenchError(
                "cluttered_fmnist is built from Fashion-MNIST and takes no --data-root (set "
                "BENCH_FMNIST_DIR to use another Fashion-MNIST folder)"
            )

        source = fmnist.find_dir(download=download, cache=cache_dir() / "downloads")
        return cluttered.build(split, cluttered.ClutterSpec(), source, cache_dir() / "data")
    from bench.data import imagenet

    base = root or (
        Path(os.environ["BENCH_DATA"]) / "imagenet100" if "BENCH_DATA" in os.environ else None
    )
    if base is None:
        raise BenchError(
            "imagenet100 needs --data-root (a folder made by `bench data build imagenet100`) or "
            "$BENCH_DATA/imagenet100"
        )
    return imagenet.load(base, "train" if split == "train" else "val", train=split == "train")


__all__ = [
    "ArrayImageSet",
    "DATASETS",
    "DEFAULT",
    "FolderImageSet",
    "ImageSet",
    "cache_dir",
    "check_name",
    "fingerprint",
    "first_images",
    "iter_batches",
    "load_arrays",
    "load_split",
    "loader_workers",
    "subset_indices",
    "to_unit",
]
