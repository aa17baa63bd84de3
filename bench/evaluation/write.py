"""Rank 0 writes a measured cell: per-image records, attack flags and results rows."""

from __future__ import annotations

import json
import math

from bench import attacks
from bench.attacks.trace import window
from bench.core.conditions import Condition
from bench.cost import mfu
from bench.cost.flops import FlopCount
from bench.cost.speed import Speed
from bench.devices import distributed
from bench.evaluation.context import Context
from bench.evaluation.correct import Correct
from bench.evaluation.state import remove_state, state_path
from bench.evaluation.task import Task
from bench.store import confidence, per_image
from bench.store.checks import CheckRow, append_checks
from bench.store.provenance import utc_now
from bench.store.results import Row, append_rows

NOT_TIMED = Speed(latency_ms=float("nan"), throughput=float("nan"), batch=0)


def row_mfu(
    cond: Condition,
    correct: Correct,
    cost: FlopCount,
    deepest: FlopCount,
    peak: float,
    ranks: int,
    throughput: float,
    n_fwd: int,
    n_bwd: int,
    seconds: float,
) -> float:
    """A row's MFU: from its exit's measured throughput (one device), else from the passes over the
    time they took on all ranks' devices. Where one pass or attack serves every exit, that is the
    cell's MFU, at the cost of the deepest exit it computed; a transfer cell's passes run on two
    models, so it has none."""
    if throughput > 0:
        return mfu.mfu(cost.gmacs, peak, throughput=throughput)
    if correct.exit_seconds is not None:  # each exit attacked on its own, and timed
        return mfu.mfu(cost.gmacs, peak * ranks, n_forward=n_fwd, n_backward=n_bwd, seconds=seconds)
    if attacks.mode(cond) == "transfer":
        return math.nan
    return mfu.mfu(
        deepest.gmacs, peak * ranks, n_forward=n_fwd, n_backward=n_bwd, seconds=correct.seconds
    )


def _row(
    ctx: Context, task: Task, key: dict, t: int, correct: Correct, speed: Speed, created: str
) -> Row:
    """The results row of exit t."""
    lm, cond, cfg = task.lm, task.cond, ctx.setup.cfg
    costs = ctx.costs[lm.card.name]
    c, cost = correct.correct[t - 1], costs[t]
    seconds = correct.seconds_of(t, len(task.exits))
    n_fwd, n_bwd = int(correct.n_forward[t - 1]), int(correct.n_backward[t - 1])
    own_peak = cfg.peak_tflops_bf16 if task.precision == "bf16" else cfg.peak_tflops
    peak = mfu.peak_tflops(ctx.provenance["device"], task.precision, own_peak)
    ranks = distributed.world().size
    return Row(
        **key,
        n_images=int(c.size),
        n_correct=int(c.sum()),
        accuracy=float(c.mean()),
        gmacs=cost.gmacs,
        params_m=cost.params_m,
        input_size=lm.card.input_size,
        flops_uncounted=json.dumps(cost.uncounted, sort_keys=True),
        seconds=seconds,
        n_forward=n_fwd,
        n_backward=n_bwd,
        latency_ms=speed.latency_ms,
        throughput=speed.throughput,
        throughput_batch=speed.batch,
        mfu=row_mfu(
            cond,
            correct,
            cost,
            costs[max(task.exits)],
            peak,
            ranks,
            speed.throughput,
            n_fwd,
            n_bwd,
            seconds,
        ),
        family=lm.card.family,
        exits_total=len(lm.card.exits),
        created=created,
        **ctx.provenance,
    )


INDICATOR_TOL = 1  # images an attack-failure indicator may count before it warns


def indicator_detail(cond: Condition, check: str, k: int, n: int) -> str:
    """What an attack-failure count means for this cell, in one line (docs/checks.md)."""
    if check == "attack_not_converged":
        w = window(cond.steps)
        return (
            f"{cond.label()}: {k} of the {n} images it left robust were still gaining loss over "
            f"its last {w} of {cond.steps} steps"
        )
    return f"{cond.label()}: {k} of {n} attacked images had exactly zero input gradient"


def _check_rows(ctx: Context, task: Task, correct: Correct) -> list[CheckRow]:
    """The cell's attack flags (AutoAttack's own) and attack-failure indicators, as checks."""
    lm, now = task.lm, utc_now()
    key = {"model": lm.card.name, "weights": lm.weights, "dataset": ctx.setup.cfg.dataset}
    flags = [
        CheckRow(
            **key,
            exit=t,
            check="autoattack_flag",
            status="warn",
            value=1.0,
            detail=msg,
            created=now,
        )
        for t, msg in correct.notes
    ]
    return flags + [
        CheckRow(
            **key,
            exit=t,
            check=check,
            status="warn" if k > INDICATOR_TOL else "ok",
            value=float(k),
            detail=indicator_detail(task.cond, check, k, n),
            created=now,
        )
        for t, check, k, n in correct.indicators
        if n  # nothing left robust, or nothing attacked: nothing to count
    ]


def write_cell(ctx: Context, task: Task, correct: Correct, speeds: dict[int, Speed]) -> None:
    """Append the cell's per-image records, attack flags and rows, then drop its progress."""
    created = ctx.started
    rows = [_row(ctx, task, k, t, correct, speeds.get(t, NOT_TIMED), created) for k, t in task.todo]
    per_image.append(
        ctx.out / "per_image.csv",
        [(r, task.indices, correct.correct[t - 1]) for r, t in zip(rows, task.wanted)],
    )
    if correct.confidence is not None:
        confidence.append(
            ctx.out / "confidence.csv",
            [(r, correct.confidence[:, t - 1]) for r, t in zip(rows, task.wanted)],
        )
    append_checks(ctx.checks, _check_rows(ctx, task, correct))
    append_rows(ctx.results, rows)  # last: a cell killed before this line is run again whole
    # every rank's, of any world size an interrupted launch had
    remove_state(state_path(ctx.out, task.keys[0]))
