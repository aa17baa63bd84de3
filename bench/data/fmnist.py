"""Fashion-MNIST from idx.gz files: Debian's dataset-fashion-mnist, or torchvision's download."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HOW_TO_GET = (
    "Fashion-MNIST not found: install Debian's package (`apt-get install dataset-fashion-mnist`, "
    "run by `make setup`), or set BENCH_FMNIST_DIR to a folder with the four idx .gz files, "
    "or pass --download to fetch it with torchvision (needs internet)"
)


def count(split: str, folder: Path) -> int:
    """How many images the split holds, from its idx header alone (a cached build needs no more)."""
    path = folder / FILES[split][0]
    head = _read(path, 8)
    if len(head) < 8:
        raise BenchError(f"{path} is not an unsigned-byte idx file")
    return int.from_bytes(head[4:8], "big")


def digest(split: str, folder: Path) -> str:
    """A hash of the split's two files as stored; caches key on it, so another copy is rebuilt."""
    h = hashlib.sha256()
    for name in FILES[split]:
        try:
            h.update((folder / name).read_bytes())
        except OSError as e:
            raise BenchError(f"cannot read idx file {folder / name}: {e.strerror or e}") from None
    return h.hexdigest()[:12]


def _read(path: Path, size: int = -1) -> bytes:
    """First `size` bytes (-1: all) of an idx file, gzipped or not, checked to be unsigned bytes."""
    try:
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as f:
            raw = f.read(size)
    except (OSError, EOFError) as e:
        raise BenchError(f"cannot read idx file {path}: {e}") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise BenchError(f"{path} is not an unsigned-byte idx file")
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (big-endian header: magic with dtype code and rank, then the dims)."""
    raw = _read(path)
    rank = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise BenchError(f"{path}: header says {dims} but holds {data.size} bytes (truncated?)")
    return data.reshape(dims)


def find_dir(download: bool = False, cache: Path | None = None) -> Path:
    """The first folder holding all four files: $BENCH_FMNIST_DIR, Debian's, torchvision's cache."""
    candidates = [Path(p) for p in [os.environ.get("BENCH_FMNIST_DIR", "")] if p] + [DEBIAN_DIR]
    if cache is not None:
        candidates.append(cache / "FashionMNIST" / "raw")
    for d in candidates:
        if all((d / f).is_file() for pair in FILES.values() for f in pair):
            return d
    if download and cache is not None:
        import torchvision

        torchvision.datasets.FashionMNIST(str(cache), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(cache), train=False, download=True)
        return cache / "FashionMNIST" / "raw"
    raise BenchError(HOW_TO_GET)


def load(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N,28,28) uint8, labels (N,) int64) of the train or test split."""
    img_file, lab_file = FILES[split]
    images, labels = read_idx(folder / img_file), read_idx(folder / lab_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise BenchError(
            f"{folder}: {split} images {images.shape} do not match labels {labels.shape}"
        )
    if labels.max(initial=0) >= len(CLASSES):
        raise BenchError(f"{folder}: label {labels.max()} outside the 10 Fashion-MNIST classes")
    return images, labels.astype(np.int64)
