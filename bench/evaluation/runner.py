"""A run: plan the cells, skip those already stored, evaluate the rest, append their rows (plan ->
cell -> write).

Cell by cell, every model in turn, so a corruption cell's images are generated once for all models.
Under torchrun every rank plans the same cells, evaluates its share, and rank 0 writes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import torch

from bench.core.config import RunConfig
from bench.core.params import canonical_json
from bench.devices import distributed
from bench.devices.device import device_name
from bench.evaluation import folder_lock, model_checks, state
from bench.evaluation.amp_parity import clean_precision
from bench.evaluation.cell import rank_state, run_cell
from bench.evaluation.cleanup import new_folders_removed_on_failure, undone_on_failure
from bench.evaluation.context import Context
from bench.evaluation.generate import generate
from bench.evaluation.glimpses import record_glimpses
from bench.evaluation.setup import Setup, load_setup
from bench.evaluation.task import Task, make_task
from bench.evaluation.write import write_cell
from bench.fast import precision
from bench.fast.runtime_copy import runtime_copy
from bench.store import data_guard, glimpses, per_image
from bench.store.checks import read_checks
from bench.store.provenance import code_version, utc_now, versions
from bench.store.results import read_rows

log = logging.getLogger(__name__)


def _read_stored(setup: Setup, out: Path) -> tuple[set[tuple], str]:  # type: ignore[type-arg]
    """Stored row keys and the newest `created`, after checking the folder's files and the data its
    rows were measured on."""
    cfg, main = setup.cfg, distributed.world().main
    stored = read_rows(out / "results.csv")
    measured = data_guard.measured(stored, cfg.dataset)
    changed = data_guard.check(out, setup.data_identity(), measured, write=main)
    # progress of cells interrupted on the earlier images: not for these
    if cfg.dataset in changed and main:
        state.clear(out)
    # a damaged file beside results.csv fails now, before a row is added
    per_image.read(out / "per_image.csv")
    read_checks(out / "checks.csv")
    glimpses.read(out / "glimpses.csv")
    distributed.barrier()  # every rank plans from the same stored rows before rank 0 appends any
    return {r.key() for r in stored}, max((r.created for r in stored), default="")


def _open(setup: Setup, out: Path, progress: bool) -> Context:
    """What cells need: stored keys, eval copies, generated corruptions, model checks, precision."""
    done, newest = _read_stored(setup, out)
    main = distributed.world().main
    provenance = dict(
        device=device_name(setup.device),
        torch=torch.__version__,
        versions=canonical_json(versions()),
        code=code_version(),
    )
    # What evaluation runs (batch norm folded, channels_last); FLOPs, checks and glimpses use the
    # model as loaded.
    runtime = {lm.card.name: runtime_copy(lm.model, lm.card.input_size) for lm in setup.loaded}
    generate(setup, out)
    if any(c.condition.kind == "attack" for c in setup.cells):
        distributed.on_main(lambda: model_checks.check_models(setup, out / "checks.csv"))
    randomized = model_checks.randomized(setup, out / "checks.csv")
    precision.strict_fp32()
    amp = clean_precision(setup, runtime, out / "checks.csv")
    started = distributed.gather(_start(newest))[0]  # rank 0's, on every rank
    return Context(
        setup, out, runtime, provenance, amp, randomized, done, progress and main, started
    )


def _start(newest: str) -> str:
    """This run's `created`: now, or a second after the folder's newest row when that is as late
    (rows of one run share it, and no two runs of a folder do)."""
    now = utc_now()
    if newest and newest >= now:
        later = datetime.fromisoformat(newest) + timedelta(seconds=1)
        return later.isoformat(timespec="seconds")
    return now


def _run_task(ctx: Context, task: Task) -> None:
    """Evaluate a task's missing rows on every rank; rank 0 writes them."""
    if not task.todo:
        log.info("skip %s %s (stored)", task.lm.card.name, task.cond.label())
        # progress a kill left between writing the rows and removing it
        if distributed.world().main:
            state.remove_state(state.state_path(ctx.out, task.keys[0]))
        return
    correct, speeds = run_cell(ctx, task)
    ctx.done.update(tuple(k.values()) for k in task.keys)  # a spec or radius given twice runs once
    if not distributed.world().main:
        state.remove_state(rank_state(ctx, task))
    distributed.on_main(lambda: write_cell(ctx, task, correct, speeds))


def run(cfg: RunConfig, progress: bool = True) -> Path:
    """Evaluate every model under every condition of the suite; returns the results CSV path."""
    out = Path(cfg.out)
    with new_folders_removed_on_failure(out):
        # on every rank, so that bad input or a missing file on one of them stops them all, none
        # left at a barrier
        setup = distributed.together(lambda: load_setup(cfg))
        # undone while the folder is held: a run refused the lock touches nothing of the holder's
        with folder_lock.hold(out), undone_on_failure(out):
            ctx = _open(setup, out, progress)
            _run_cells(ctx)
    return ctx.results


def _run_cells(ctx: Context) -> None:
    """Cell by cell, every model in turn; then the glimpse figures' data."""
    setup, out = ctx.setup, ctx.out
    planned: set[str] = set()
    for cell in setup.cells:
        for lm in setup.loaded:
            task = make_task(ctx, cell, lm)
            if task is not None:
                planned.add(state.state_path(out, task.keys[0]).name)
                _run_task(ctx, task)

    def finish() -> None:
        for lm in setup.loaded:
            record_glimpses(setup, lm, out)
        state.tell_stale(out, planned)

    distributed.on_main(finish)
