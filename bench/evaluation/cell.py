"""One cell of a run: a model's per-image correctness under one condition, merged across ranks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from bench import attacks
from bench.core.conditions import Condition
from bench.core.config import RunConfig
from bench.core.errors import BenchError, NonFiniteLogits
from bench.cost import flops
from bench.cost.speed import Speed, measure
from bench.devices import distributed
from bench.evaluation.context import Context
from bench.evaluation.correct import Correct, merge
from bench.evaluation.scoring import evaluate
from bench.evaluation.state import state_path
from bench.evaluation.task import Task

log = logging.getLogger(__name__)


def chunk(cond: Condition, cfg: RunConfig) -> int:
    """How ranks split a cell: a cascade's chunk (each seeded by its number), else --batch-size."""
    if attacks.mode(cond) == "cascade":
        return int(cond.params.get("batch_size", cfg.batch_size))
    return cfg.batch_size


def idle_ranks(n: int, chunk: int, ranks: int, autoattack: bool = False) -> str:
    """Why some ranks wait in a cell of n images ('' if none does): ranks take whole batches."""
    batches = -(-n // chunk)
    if batches >= ranks:
        return ""
    hint = (
        "AutoAttack's chunks are the suite's, which seed them, not --batch-size"
        if autoattack
        else "a smaller --batch-size spreads small cells"
    )
    return (
        f"{n} image(s) are {batches} batch(es) of {chunk} for {ranks} ranks, so {ranks - batches} "
        f"wait (ranks take whole batches, which keeps the rows equal to one process's; {hint})"
    )


def rank_state(ctx: Context, task: Task) -> Path:
    """This rank's progress file of the cell (a suffix per rank under torchrun)."""
    w = distributed.world()
    cell_state = state_path(ctx.out, task.keys[0])
    return cell_state.with_name(
        cell_state.name + (f"-rank{w.rank}of{w.size}" if w.size > 1 else "")
    )


def _count_flops(ctx: Context, task: Task) -> None:
    """GMACs and parameters of every exit of the cell, once per model (on the model as loaded)."""
    costs = ctx.costs.setdefault(task.lm.card.name, {})
    for t in task.exits:
        if t not in costs:
            costs[t] = flops.count(task.lm.model, t, task.lm.card.input_size)


def _share(ctx: Context, task: Task, net: torch.nn.Module) -> tuple[np.ndarray, Correct | None]:
    """(positions, this rank's Correct or None) of the cell's images, in whole chunks per rank."""
    setup, cond, w = ctx.setup, task.cond, distributed.world()
    size = chunk(cond, setup.cfg)
    pos, chunk_ids = distributed.shard(len(task.indices), size)
    idle = idle_ranks(len(task.indices), size, w.size, attacks.mode(cond) == "cascade")
    if idle and w.main and "idle ranks" not in ctx.warned:  # once per run
        ctx.warned.add("idle ranks")
        log.warning("%s %s: %s", task.lm.card.name, cond.label(), idle)
    if not len(pos):
        return pos, None
    if cond.kind == "corruption":  # a corruption cell's images are generated for this share alone
        images, positions = setup.corrupted.share(cond, task.cell.n_images, pos)
    else:
        images, positions = setup.images, task.indices[pos]
    desc = f"{task.lm.card.name} {cond.label()}" if ctx.progress else ""
    try:
        correct = evaluate(
            net,
            images,
            positions,
            cond,
            seed=setup.cfg.seed,
            batch_size=setup.cfg.batch_size,
            device=setup.device,
            workers=setup.workers,
            sources=ctx.runtime,
            state=rank_state(ctx, task),
            exits=task.wanted,
            desc=desc,
            chunk_ids=chunk_ids,
            precision=task.precision,
        )
    except NonFiniteLogits as e:
        name = task.lm.card.name
        raise BenchError(f"{name} {cond.label()}: {e}; the cell is not written") from None
    return pos, correct


def run_cell(ctx: Context, task: Task) -> tuple[Correct, dict[int, Speed]]:
    """Every rank's share evaluated and merged, plus (rank 0, clean cells) each exit's speed."""
    setup, lm = ctx.setup, task.lm
    _count_flops(ctx, task)
    net = ctx.runtime[lm.card.name].to(setup.device)
    # on every rank: an error on one (non-finite logits) stops them all, none left in the gather
    share = distributed.together(lambda: _share(ctx, task, net))
    correct = merge(distributed.gather(share), task.indices, lm.model.n_exits)
    budget = setup.cfg.speed_budget
    timed = task.cond.kind == "clean" and budget > 0 and distributed.world().main
    speeds = (
        {
            t: measure(
                net.at_exit(t), lm.card.input_size, setup.device, budget, precision=task.precision
            )
            for t in task.wanted
        }
        if timed
        else {}
    )
    net.cpu()
    return correct, speeds
