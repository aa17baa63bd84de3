"""ImageNet100 (ImageNet-1k classes 0-99, as in MGNet): a checked builder and the eval loader."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.data.imageset import FolderImageSet

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def wnids() -> tuple[str, ...]:
    """The 100 WordNet ids, sorted = ImageNet-1k indices 0..99."""
    text = resources.files("bench.data").joinpath("imagenet100.txt").read_text()
    ids = tuple(text.split())
    assert len(ids) == 100 and list(ids) == sorted(ids)
    return ids


def _class_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_tree(root: Path, what: str) -> None:
    """Every one of the 100 class folders exists (links resolve) and holds at least one image."""
    if not root.is_dir():
        raise BenchError(f"{what}: folder {root} does not exist")
    missing = [w for w in wnids() if not (root / w).is_dir()]
    if missing:
        raise BenchError(
            f"{what}: {len(missing)} of 100 class folders missing or dangling under {root} "
            f"(first: {', '.join(missing[:3])}); labels would shift, refusing"
        )
    empty = [w for w in wnids() if not _class_images(root / w)]
    if empty:
        raise BenchError(
            f"{what}: class folders without images under {root}: {', '.join(empty[:3])}"
        )


def build(src: Path, dst: Path) -> Path:
    """Link the 100 class folders of ImageNet's train/ and val/ under dst (re-runnable)."""
    splits = [s for s in ("train", "val") if (src / s).is_dir()]
    if not splits:
        raise BenchError(
            f"{src} has neither train/ nor val/ (expected an ImageNet root with class folders)"
        )
    for split in splits:
        check_tree(src / split, f"ImageNet {split}")
    for split in splits:
        out = dst / split
        out.mkdir(parents=True, exist_ok=True)
        for w in wnids():
            link = out / w
            target = (src / split / w).resolve()
            if link.is_symlink() or link.exists():
                if link.resolve() != target:
                    raise BenchError(
                        f"{link} exists and points elsewhere; remove it or choose another folder"
                    )
                continue
            link.symlink_to(target, target_is_directory=True)
        check_tree(out, f"ImageNet100 {split}")
    return dst


def eval_transform(size: int = 224, resize: int = 256):  # type: ignore[no-untyped-def]
    """Standard eval preprocessing to uint8: Resize(256, bilinear) then CenterCrop(224)."""
    from torchvision import transforms

    t = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size)])
    return lambda im: np.asarray(t(im), dtype=np.uint8)


def train_transform(size: int = 224):  # type: ignore[no-untyped-def]
    """MGNet's training crop, RandomResizedCrop(224), to uint8 (flips happen on the batch)."""
    from torchvision import transforms

    t = transforms.RandomResizedCrop(size)
    return lambda im: np.asarray(t(im), dtype=np.uint8)


def class_files(folder: Path, what: str) -> tuple[list[Path], np.ndarray]:
    """Image files of the 100 class folders in `folder` (checked), labelled by ImageNet-1k index."""
    check_tree(folder, what)
    paths: list[Path] = []
    labels: list[int] = []
    for k, w in enumerate(wnids()):
        imgs = _class_images(folder / w)
        paths += imgs
        labels += [k] * len(imgs)
    return paths, np.asarray(labels, dtype=np.int64)


def load(root: Path, split: str = "val", size: int = 224, train: bool = False) -> FolderImageSet:
    """ImageNet100 `split` under root (from `build`): eval preprocessing, or the training crop."""
    paths, labels = class_files(root / split, f"ImageNet100 {split}")
    return FolderImageSet(
        "imagenet100",
        split,
        wnids(),
        paths,
        labels,
        train_transform(size) if train else eval_transform(size),
    )
