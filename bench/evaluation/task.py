"""One model under a cell's condition, resolved for the run: images, exits, row keys to measure."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from bench.core.conditions import Condition
from bench.core.suites import Cell
from bench.data import subset_indices
from bench.evaluation import plan
from bench.evaluation.context import Context
from bench.load.specs import LoadedModel
from bench.store.results import SCORING

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Task:
    """A model, its resolved condition, the cell's images and exits, and the keys of its rows."""

    lm: LoadedModel
    cell: Cell
    cond: Condition
    indices: np.ndarray  # data set indices the cell evaluates
    precision: str
    keys: list[dict]  # one per exit of the cell, in the results schema's key order
    todo: list[tuple[dict, int]]  # (key, exit) of the rows not stored yet

    @property
    def exits(self) -> tuple[int, ...]:
        return tuple(k["exit"] for k in self.keys)

    @property
    def wanted(self) -> list[int]:
        return [t for _, t in self.todo]


def key_rows(
    ctx: Context,
    lm: LoadedModel,
    cond: Condition,
    subset: str,
    exits: tuple[int, ...],
    precision: str,
) -> list[dict]:
    """The key columns of a cell's rows, one per exit; `params` as the CSV writes it."""
    cfg = ctx.setup.cfg
    return [
        dict(
            model=lm.card.name,
            weights=lm.weights,
            dataset=cfg.dataset,
            subset=subset,
            kind=cond.kind,
            condition=cond.name,
            source=cond.source,
            protocol=cond.protocol,
            severity=cond.severity,
            norm=cond.norm,
            epsilon=cond.epsilon,
            steps=cond.steps,
            step_size=cond.step_size,
            restarts=cond.restarts,
            params=cond.params.json(),
            exit=t,
            seed=cfg.seed,
            precision=precision,
            scoring=SCORING,
        )
        for t in exits
    ]


def make_task(ctx: Context, cell: Cell, lm: LoadedModel) -> Task | None:
    """The task of `lm` in `cell`, or None where the condition does not apply to the model."""
    setup = ctx.setup
    weights = (lm.card.name, lm.weights)
    cond = plan.resolve(cell.condition, lm, setup.loaded, weights in ctx.randomized)
    if cond is None:
        return None
    indices, subset = (
        setup.corrupted.subset(cond, cell.n_images)
        if cond.kind == "corruption"
        else subset_indices(len(setup.images), cell.n_images)
    )
    exits = lm.card.exits[-1:] if cell.last_exit_only else lm.card.exits
    precision = ctx.precision.get(weights, "fp32") if cond.kind != "attack" else "fp32"
    keys = key_rows(ctx, lm, cond, subset, exits, precision)
    # a cell can be partly stored: another suite's last-exit-only cell holds one of its rows
    todo = [(k, t) for k, t in zip(keys, exits) if tuple(k.values()) not in ctx.done]
    return Task(lm, cell, cond, indices, precision, keys, todo)
