"""A run's plan: the suite's cells with the run's options, each resolved for one model."""

from __future__ import annotations

import dataclasses
import logging

from bench import attacks
from bench.core.conditions import TRANSFER_AUTO, Condition, corruption, pgd_params, pgd_step
from bench.core.config import RunConfig
from bench.core.corruption_names import EXTRA
from bench.core.errors import BenchError
from bench.core.params import Params
from bench.core.suites import Cell, suite
from bench.devices import distributed
from bench.load.specs import LoadedModel

log = logging.getLogger(__name__)
# the strict attacks whose radii, steps, restarts and backend the run's options set
SWEPT = ("fgsm", "pgd")


def cells(cfg: RunConfig) -> list[Cell]:
    """The suite's cells with run overrides: image cap, ε radii, PGD steps, restarts, backend."""
    out: list[Cell] = []
    for c in _selected(cfg):
        cap = cfg.n_images
        n = cap if c.n_images is None else (c.n_images if cap is None else min(cap, c.n_images))
        out += [
            dataclasses.replace(c, condition=v, n_images=n)
            for v in _variants(cfg, c.condition, out)
        ]
    check_options_apply(cfg, out)
    _tell_smaller(cfg, out)
    return out


def _tell_smaller(cfg: RunConfig, cells: list[Cell]) -> None:
    """Say when --n-images asks for more images than some of the suite's cells have: it only lowers
    a suite's sizes."""
    smaller = sorted({c.n_images for c in cells if c.n_images is not None} - {cfg.n_images})
    if cfg.n_images is None or not smaller or not distributed.world().main:
        return
    kinds = sorted({c.condition.name for c in cells if c.n_images in smaller})
    log.warning(
        "--n-images %d only lowers the %s suite's sizes: its %s cells run on %s image(s)",
        cfg.n_images,
        cfg.suite,
        ", ".join(kinds),
        " or ".join(map(str, smaller)),
    )


def _selected(cfg: RunConfig) -> list[Cell]:
    """The suite's cells, plus held-out corruptions and minus corruptions not asked for."""
    base = list(suite(cfg.suite))
    if cfg.extra_corruptions:
        made = [c for c in base if c.condition.kind == "corruption"]
        for source in dict.fromkeys(c.condition.source for c in made):
            n = next(c.n_images for c in made if c.condition.source == source)
            base += [Cell(corruption(name, sv, source), n) for name in EXTRA for sv in range(1, 6)]
    if cfg.corruptions is not None:
        base = [
            c
            for c in base
            if c.condition.kind != "corruption" or c.condition.name in cfg.corruptions
        ]
    return base


def _variants(cfg: RunConfig, cond: Condition, planned: list[Cell]) -> list[Condition]:
    """The conditions one suite cell becomes: batched corruptions where parity is tested, and for
    the strict FGSM and PGD sweeps one cell per radius asked for (built from the suite's first one),
    with steps and backend."""
    if (
        cond.kind == "corruption"
        and cond.source == "reference"
        and cfg.corruption_backend == "auto"
    ):
        from bench.corruptions.base import PARITY

        return [dataclasses.replace(cond, source="torch") if cond.name in PARITY else cond]
    if cond.name not in SWEPT or cond.protocol != "strict":
        return [cond]
    radii = cfg.eps_l2 if cond.norm == "l2" else cfg.eps
    if radii is None:
        variants = [cond]
    elif any(x.condition.name == cond.name and x.condition.norm == cond.norm for x in planned):
        return []
    else:
        variants = [dataclasses.replace(cond, epsilon=e, step_size=e) for e in dict.fromkeys(radii)]
    variants = [dataclasses.replace(v, source=cfg.attack_backend) for v in variants]
    if cond.name != "pgd":
        return variants
    steps = cfg.pgd_steps or cond.steps
    return [
        dataclasses.replace(
            v,
            steps=steps,
            restarts=cfg.restarts or v.restarts,
            step_size=pgd_step(v.epsilon, steps),
            params=pgd_params(v.source, v.params),
        )
        for v in variants
    ]


def check_options_apply(cfg: RunConfig, cells: list[Cell]) -> None:
    """An option that selects or sizes cells the suite lacks is an error, not to be ignored."""

    def has(kind: str, names: tuple[str, ...] = (), norm: str = "") -> bool:
        return any(
            c.condition.kind == kind
            and (not names or c.condition.name in names)
            and (not norm or c.condition.norm == norm)
            for c in cells
        )

    if cfg.corruptions is not None and not has("corruption"):
        names = " ".join(cfg.corruptions)
        raise BenchError(f"--corruptions {names}: suite {cfg.suite!r} has no such corruption cells")
    if cfg.eps is not None and not has("attack", SWEPT, "linf"):
        raise BenchError(
            f"--eps: suite {cfg.suite!r} has no L∞ FGSM or PGD sweep (try --suite attacks)"
        )
    if cfg.eps_l2 is not None and not has("attack", ("pgd",), "l2"):
        raise BenchError(f"--eps-l2: suite {cfg.suite!r} has no L2 PGD sweep (try --suite attacks)")
    for option, given in (
        ("--pgd-steps", cfg.pgd_steps is not None),
        ("--restarts", cfg.restarts is not None),
    ):
        # the strict PGD cells: the paper's and transfer's have own names
        if given and not has("attack", ("pgd",)):
            raise BenchError(
                f"{option}: suite {cfg.suite!r} has no PGD cells (try --suite attacks)"
            )
    if cfg.attack_backend != "bench" and not has("attack", SWEPT):
        raise BenchError(
            f"--attack-backend {cfg.attack_backend}: suite {cfg.suite!r} has no FGSM or PGD cells"
        )
    if cfg.extra_corruptions and not has("corruption"):
        raise BenchError(f"--extra-corruptions: suite {cfg.suite!r} has no corruption cells")


def transfer_source(loaded: list[LoadedModel]) -> LoadedModel | None:
    """The model transfer attacks start from: the run's ResNet baseline, else the official one."""
    for family in ("resnet", "mgbase"):
        for lm in loaded:
            if lm.card.family == family:
                return lm
    return None


def resolve(
    cond: Condition, target: LoadedModel, loaded: list[LoadedModel], randomized: bool = False
) -> Condition | None:
    """Fill in run-dependent parts of a condition; None when it does not apply to this model (a
    transfer attack without a source, the paper protocol on a model that does not normalize its
    input), with a line saying why.

    AutoAttack switches to its `rand` version (EOT) for a model whose evaluation is not
    deterministic. An attack through the glimpse sampler skips a model that declares none; an
    attack on an early-exit policy, a model with one exit.
    """
    from bench.attacks.glimpse_control import samplers

    if attacks.needs_sampler(cond) and not samplers(target.model):
        log.warning(
            "skip %s %s: it attacks through a glimpse sampler, and %s declares none "
            "(docs/attacks.md says how a model declares one)",
            target.card.name,
            cond.name,
            target.card.name,
        )
        return None
    if attacks.needs_exits(cond) and target.model.n_exits < 2:
        log.warning(
            "skip %s %s: it attacks an early-exit policy, and %s has one exit",
            target.card.name,
            cond.name,
            target.card.name,
        )
        return None
    # its ε and step live in that space
    if cond.protocol == "paper" and not target.model.normalizes:
        log.warning(
            "skip %s %s: the official attack's ε and step are in a model's normalized input space, "
            "which %s does not have (registered without mean and std)",
            target.card.name,
            cond.name,
            target.card.name,
        )
        return None
    if randomized and attacks.mode(cond) == "cascade":
        return dataclasses.replace(cond, params=cond.params.replace(version="rand"))
    if attacks.mode(cond) != "transfer":
        return cond
    wanted = cond.params["from"]
    src = (
        transfer_source(loaded)
        if wanted == TRANSFER_AUTO
        else next((lm for lm in loaded if lm.card.name == wanted), None)
    )
    if src is None or src.card.name == target.card.name:
        log.info("skip %s %s: no transfer source in this run", target.card.name, cond.name)
        return None
    return dataclasses.replace(
        cond, params=Params({"from": src.card.name, "from_weights": src.weights})
    )
