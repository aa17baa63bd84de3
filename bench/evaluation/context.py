"""A run in progress: its setup, its output folder, and what it has learnt before the first cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.cost.flops import FlopCount
from bench.evaluation.setup import Setup


@dataclass(frozen=True, eq=False)
class Context:
    """What a cell reads; `done` (stored row keys) and `costs` (FLOPs per model and exit) grow."""

    setup: Setup
    out: Path
    # the copies evaluation runs (bench/fast/runtime_copy.py), by model
    runtime: dict[str, torch.nn.Module]
    provenance: dict[str, str]  # device, torch, versions and code columns of every row
    # (model, weights) -> precision of its clean and corruption cells
    precision: dict[tuple[str, str], str]
    randomized: set[tuple[str, str]]  # (model, weights) whose evaluation is not deterministic
    done: set[tuple]  # type: ignore[type-arg]
    progress: bool
    started: str  # UTC, the `created` of every row this run writes: rows of one run share it
    costs: dict[str, dict[int, FlopCount]] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)  # what the run has warned of once already

    @property
    def results(self) -> Path:
        return self.out / "results.csv"

    @property
    def checks(self) -> Path:
        return self.out / "checks.csv"
