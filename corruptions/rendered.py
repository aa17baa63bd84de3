"""Pre-rendered ImageNet-C / ImageNet100-C folders: `<corruption>/<severity>/<wnid>/*.JPEG`.

The files are already 224x224 (ImageNet-C was rendered after Resize(256) + CenterCrop(224)), so
they are read as they are: no resize or crop (the official MGNet code and early RobustBench
re-cropped them, which changes results).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.corruptions.base import ALL, SEVERITIES, check_name, check_severity
from bench.data import imagenet
from bench.data.imageset import FolderImageSet

SOURCE = "rendered"


def _as_is(im) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(im, dtype=np.uint8)


def check_tree(root: Path, names: tuple[str, ...]) -> None:
    """Every named corruption has 5 severities, each with all 100 class folders holding images."""
    if not root.is_dir():
        raise BenchError(f"ImageNet100-C folder {root} does not exist")
    for name in names:
        for s in SEVERITIES:
            folder = root / name / str(s)
            if not folder.is_dir():
                raise BenchError(
                    f"{root}: missing {name}/{s} (every corruption needs severities 1-5)"
                )
            imagenet.check_tree(folder, f"ImageNet100-C {name}/{s}")


def build(src: Path, dst: Path, names: tuple[str, ...] | None = None) -> Path:
    """Link an ImageNet-C folder's 100 classes per corruption/severity under dst (re-runnable)."""
    present = tuple(n for n in ALL if (src / n).is_dir()) if names is None else names
    if not present:
        raise BenchError(
            f"{src} holds no ImageNet-C corruption folders (expected e.g. {src}/fog/1/n01440764)"
        )
    for n in present:
        check_name(n)
    for n in present:
        for s in SEVERITIES:
            if not (src / n / str(s)).is_dir():
                raise BenchError(f"{src}: missing {n}/{s} (every corruption needs severities 1-5)")
            imagenet.check_tree(src / n / str(s), f"ImageNet-C {n}/{s}")
    for n in present:
        for s in SEVERITIES:
            out = dst / n / str(s)
            out.mkdir(parents=True, exist_ok=True)
            for w in imagenet.wnids():
                link, target = out / w, (src / n / str(s) / w).resolve()
                if link.is_symlink() or link.exists():
                    if link.resolve() != target:
                        raise BenchError(
                            f"{link} exists and points elsewhere; remove it or choose another "
                            "folder"
                        )
                    continue
                link.symlink_to(target, target_is_directory=True)
    check_tree(dst, present)
    return dst


def load(root: Path, name: str, severity: int, skip_corrupt: bool = False) -> FolderImageSet:
    """One corruption/severity as an image set in ImageNet100's label order, not resized."""
    check_name(name)
    check_severity(severity)
    paths, labels = imagenet.class_files(
        root / name / str(severity), f"ImageNet100-C {name}/{severity}"
    )
    if skip_corrupt:
        paths, labels = _readable(paths, labels)
    return FolderImageSet(
        f"imagenet100-c/{name}/{severity}", "val", imagenet.wnids(), paths, labels, _as_is
    )


def _readable(paths: list[Path], labels: np.ndarray) -> tuple[list[Path], np.ndarray]:
    """Drop files PIL cannot read, and say which (only when the user asked to skip them)."""
    import logging

    from PIL import Image

    keep_p, keep_l, bad = [], [], []
    for p, lab in zip(paths, labels):
        try:
            with Image.open(p) as im:
                im.verify()
            keep_p.append(p)
            keep_l.append(lab)
        except OSError:
            bad.append(p)
    if bad:
        logging.getLogger(__name__).warning(
            "skipped %d unreadable file(s), first: %s", len(bad), bad[0]
        )
    return keep_p, np.asarray(keep_l, dtype=np.int64)
