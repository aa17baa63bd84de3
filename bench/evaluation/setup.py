"""What a run checks and loads before it takes its output folder: cells, models, data, device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.core.config import RunConfig
from bench.core.errors import BenchError, ensure_writable
from bench.core.suites import Cell
from bench.data import ImageSet, cache_dir, check_name, load_split, loader_workers
from bench.data.corrupted import CorruptedData
from bench.devices.device import rank_device
from bench.evaluation import plan
from bench.load.contract import check_outputs, probe_batch
from bench.load.specs import LoadedModel, check_fits, check_test_split, expand, load
from bench.store import data_guard


@dataclass(frozen=True, eq=False)
class Setup:
    """A run's inputs, loaded and checked: bad input fails here, before anything is written."""

    cfg: RunConfig
    cells: list[Cell]
    loaded: list[LoadedModel]
    images: ImageSet
    corrupted: CorruptedData
    device: torch.device
    workers: int

    def data_identity(self) -> dict[str, dict]:
        """The run's data for data.json: test images and each pre-rendered folder its cells read."""
        dataset = self.cfg.dataset
        # as corruption caches key it
        current = {dataset: data_guard.identity(self.images, self.corrupted.fp)}
        for (name, severity), rset in self.corrupted.rendered_sets().items():
            current[data_guard.rendered_name(dataset, name, severity)] = data_guard.identity(rset)
        return current


def _specs(cfg: RunConfig) -> list[str]:
    """The run's model specs; a model named twice is refused (rows know a model by its name)."""
    specs = [s for spec in cfg.models for s in expand(spec)]
    names = [s.partition("@")[0] for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        both = ", ".join(s for s in specs if s.partition("@")[0] == twice[0])
        raise BenchError(
            f"model {twice[0]} appears twice in one run ({both}); compare two weights of one model "
            "in separate --out folders, or register the second under its own name"
        )
    return specs


def _corrupted_data(
    cells: list[Cell], images: ImageSet, cfg: RunConfig, cache: Path, dev: torch.device
) -> CorruptedData:
    """Where the run's corruption cells get their images; a missing or incomplete folder of rendered
    files fails here, before anything is written."""
    data = CorruptedData(
        images,
        cfg.seed,
        cache / "corruptions",
        cfg.workers or os.cpu_count() or 1,
        cfg.corruption_root,
        cfg.skip_corrupt_files,
        str(dev),
    )
    for c in cells:
        if c.condition.kind == "corruption" and c.condition.source == "rendered":
            data.subset(c.condition, c.n_images)
    return data


def load_setup(cfg: RunConfig) -> Setup:
    """Plan cells, load models and the test split, check they fit, and probe the output folder."""
    cells = plan.cells(cfg)
    check_name(cfg.dataset)
    cache = cache_dir()
    loaded = [load(s, cfg.dataset, cache) for s in _specs(cfg)]
    images = load_split(cfg.dataset, "test", Path(cfg.data_root) if cfg.data_root else None)
    first, _ = images.get(0)
    probe = probe_batch(images)
    for lm in loaded:
        check_fits(lm, len(images.classes), first.shape, cfg.dataset)
        check_outputs(lm, probe)
    check_test_split(loaded, images, cfg.dataset)
    dev = rank_device(cfg.device)
    corrupted = _corrupted_data(cells, images, cfg, cache, dev)
    workers = loader_workers(images, cfg.workers)
    ensure_writable(Path(cfg.out), f"to output folder {cfg.out}")
    return Setup(cfg, cells, loaded, images, corrupted, dev, workers)
