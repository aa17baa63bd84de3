"""Where a corruption cell's images come from: made on the fly (cached) or pre-rendered files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.core.conditions import Condition
from bench.core.errors import BenchError
from bench.data import ArrayImageSet, ImageSet, fingerprint, load_arrays, subset_indices


class CorruptedData:
    """Serves (image set, indices) for a run's corruption conditions, loading clean subsets once."""

    def __init__(
        self,
        clean: ImageSet,
        seed: int,
        cache: Path,
        workers: int,
        root: str = "",
        skip_corrupt: bool = False,
        device: str = "cpu",
    ) -> None:
        self.clean, self.seed, self.cache, self.workers, self.device = (
            clean,
            seed,
            cache,
            workers,
            device,
        )
        self.root, self.skip_corrupt = Path(root) if root else None, skip_corrupt
        self._arrays: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._rendered: dict[tuple[str, int], ImageSet] = {}
        self._fp = ""
        self._subset_fps: dict[bytes, str] = {}
        self._last: tuple[tuple, tuple[ImageSet, np.ndarray]] | None = None

    def _subset(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = indices.tobytes()
        if key not in self._arrays:
            self._arrays[key] = load_arrays(self.clean, indices, self.workers)
        return self._arrays[key]

    def _subset_fp(self, indices: np.ndarray) -> str:
        """Cache identity of a subset's clean pixels: the data set's fingerprint and the decoded
        images, which a folder set's fingerprint (file names and sizes) does not pin: its resize,
        crop and decoder can change."""
        key = indices.tobytes()
        if key not in self._subset_fps:
            images, _ = self._subset(indices)
            h = hashlib.sha256(self.fp.encode())
            h.update(np.ascontiguousarray(images).tobytes())
            self._subset_fps[key] = h.hexdigest()[:16]
        return self._subset_fps[key]

    @property
    def fp(self) -> str:
        if not self._fp:
            self._fp = fingerprint(self.clean)
        return self._fp

    def prepare(
        self, wanted: dict[bytes, tuple[np.ndarray, list[tuple[str, int]]]], progress=None
    ) -> None:  # type: ignore[no-untyped-def]
        """Generate (in worker processes) every on-the-fly condition the run will need."""
        from bench.corruptions import generate

        for indices, conds in wanted.values():
            images, _ = self._subset(indices)
            generate.prepare(
                images,
                indices,
                conds,
                self.seed,
                cache=self.cache,
                fingerprint=self._subset_fp(indices),
                workers=self.workers,
                progress=progress,
            )

    def _rendered_set(self, cond: Condition) -> ImageSet:
        """One pre-rendered corruption/severity folder, listed once per run."""
        key = (cond.name, cond.severity)
        if key not in self._rendered:
            from bench.corruptions import rendered

            if self.root is None:
                raise BenchError(
                    "rendered corruptions need --corruption-root (an ImageNet100-C folder, "
                    "see `bench data build imagenet100-c`)"
                )
            self._rendered[key] = rendered.load(
                self.root, cond.name, cond.severity, self.skip_corrupt
            )
        return self._rendered[key]

    def rendered_sets(self) -> dict[tuple[str, int], ImageSet]:
        """The pre-rendered folders listed so far, by (corruption, severity)."""
        return dict(self._rendered)

    def subset(self, cond: Condition, n_images: int | None) -> tuple[np.ndarray, str]:
        """The data set indices a cell evaluates and their label, without producing any image."""
        source = self._rendered_set(cond) if cond.source == "rendered" else self.clean
        return subset_indices(len(source), n_images)

    def images(
        self, cond: Condition, n_images: int | None
    ) -> tuple[ImageSet, np.ndarray, np.ndarray, str]:
        """The cell's image set, positions to evaluate, their data set indices, the subset label."""
        idx, label = self.subset(cond, n_images)
        cset, positions = self.share(cond, n_images, np.arange(len(idx)))
        return cset, positions, idx, label

    def share(
        self, cond: Condition, n_images: int | None, pos: np.ndarray
    ) -> tuple[ImageSet, np.ndarray]:
        """Images pos of the cell (positions in its subset) and where they sit in the returned set.

        Generated images are made for `pos` alone (each depends only on its own seed), so ranks
        split the work; the last cell's images are kept, so every model of a run evaluates one
        generation of them.
        """
        key = (cond, n_images, pos.tobytes())
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        if cond.source == "rendered":
            rset = self._rendered_set(cond)
            idx, _ = subset_indices(len(rset), n_images)
            return rset, idx[pos]
        from bench.corruptions import generate

        idx, _ = subset_indices(len(self.clean), n_images)
        images, labels = self._subset(idx)
        if cond.source == "torch":
            import torch

            from bench.corruptions import fast

            out = fast.corrupt_batch(
                images[pos],
                idx[pos],
                cond.name,
                cond.severity,
                self.seed,
                torch.device(self.device),
            )
        else:
            out = generate.corrupted(
                images,
                idx,
                cond.name,
                cond.severity,
                self.seed,
                cache=self.cache,
                fingerprint=self._subset_fp(idx),
                workers=self.workers,
            )[pos]
        served = (
            ArrayImageSet(
                f"{self.clean.name}-c", self.clean.split, self.clean.classes, out, labels[pos]
            ),
            np.arange(len(pos)),
        )
        self._last = (key, served)
        return served

    def example_grid(self, path: Path, conds: list[Condition]) -> Path | None:
        """A PNG grid: one row per corruption, clean then severities 1-5, of one test image."""
        import dataclasses

        from PIL import Image

        first, _ = subset_indices(len(self.clean), 1)  # the image the 1-image cells below use
        clean, _ = self._subset(first)
        rows = [
            np.concatenate(
                [clean[0]]
                + [
                    self.images(dataclasses.replace(c, severity=s), 1)[0].images[0]
                    for s in range(1, 6)
                ],
                1,
            )
            for c in conds
        ]
        if not rows:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        grid = np.concatenate(rows, 0)
        scale = max(1, 96 * 6 // grid.shape[1])  # small images drawn at least 96 px per cell
        Image.fromarray(grid).resize(
            (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST
        ).save(path)
        return path
