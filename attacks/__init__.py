"""Adversarial attacks behind one contract, built from a results Condition by (name, source).

A new attack: one file in this folder (clean [0,1] images in, adversarial [0,1] images out), then
one `ATTACKS.register` line below saying how to build it from a Condition, how the harness scores
it, and whether it needs a model that declares a glimpse sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bench.attacks.adaptive import AdaptivePGD
from bench.attacks.autoattack import AutoAttack
from bench.attacks.base import Attack, LogitsGuard, PassCounter, attack_mode, check_args, project
from bench.attacks.exit_policy import ExitPolicyPGD
from bench.attacks.fgsm import FGSM
from bench.attacks.paper_pgd import PaperPGD
from bench.attacks.pgd import PGD
from bench.attacks.ta_backend import TorchattacksAttack
from bench.core.conditions import Condition
from bench.core.errors import BenchError
from bench.core.registry import Registry

Mode = Literal["white_box", "transfer", "cascade", "dynamic"]


@dataclass(frozen=True, slots=True)
class AttackEntry:
    """How to build an attack from its condition, and how its adversarial images are scored.

    white_box: crafted on the model being scored (under the strict protocol, on each exit's own
    view); transfer: crafted on another model of the run; cascade: a sequence of attacks that
    returns per-image robust flags (AutoAttack); dynamic: one attack on all exits of a multi-exit
    model run with an early-exit policy. `needs_sampler`: it attacks through a glimpse sampler;
    `needs_exits`: it needs several exits. A model without skips it, with a line saying so.
    """

    build: Callable[[Condition], Any]
    mode: Mode
    needs_sampler: bool = False
    needs_exits: bool = False


def _torchattacks_pgd(c: Condition) -> TorchattacksAttack:
    """torchattacks' PGD or PGDL2; a condition with restarts is refused, not run without them."""
    if c.restarts > 1:
        raise BenchError("torchattacks' PGD has no restarts: run restarts with the bench backend")
    return TorchattacksAttack("pgd", c.epsilon, c.norm or "linf", c.step_size, c.steps)


def _pgd(c: Condition) -> PGD:
    return PGD(
        c.epsilon,
        c.step_size,
        c.steps,
        c.norm or "linf",
        max(c.restarts, 1),
        early_stop=bool(c.params.get("early_stop", False)),
    )


def _autoattack(c: Condition) -> AutoAttack:
    return AutoAttack(c.epsilon, c.norm or "linf", str(c.params.get("version", "standard")))  # type: ignore[arg-type]


def _adaptive(c: Condition, route: str = "bpda") -> AdaptivePGD:
    """An adaptive attack from its condition: EOT samples, jitter and misdirection in `params`."""
    p = c.params
    return AdaptivePGD(
        c.epsilon,
        c.step_size,
        c.steps,
        c.norm or "linf",  # type: ignore[arg-type]
        route=route,  # type: ignore[arg-type]
        eot=int(p.get("eot", 1)),
        jitter=float(p.get("jitter", 0.0)),
        look=float(p.get("look", 0.0)),
    )


ATTACKS: Registry[AttackEntry] = Registry("attack")
ATTACKS.register("fgsm", AttackEntry(lambda c: FGSM(c.epsilon), "white_box"))
ATTACKS.register("pgd", AttackEntry(_pgd, "white_box"))
# no early_stop in its params: every step
ATTACKS.register("transfer_pgd", AttackEntry(_pgd, "transfer"))
ATTACKS.register(
    "paper_pgd", AttackEntry(lambda c: PaperPGD(c.epsilon, c.step_size, c.steps), "white_box")
)
ATTACKS.register(
    "fgsm@torchattacks", AttackEntry(lambda c: TorchattacksAttack("fgsm", c.epsilon), "white_box")
)
ATTACKS.register("pgd@torchattacks", AttackEntry(_torchattacks_pgd, "white_box"))
ATTACKS.register("autoattack@pyautoattack", AttackEntry(_autoattack, "cascade"))
# the adaptive attacks (attacks/adaptive.py): each exit attacked through its own view, as PGD
for _name in ("bpda_pgd", "eot_pgd", "look_pgd"):
    ATTACKS.register(_name, AttackEntry(_adaptive, "white_box", needs_sampler=True))
# attacks on the early-exit policy (attacks/exit_policy.py): all exits at once
for _name, _goal in (("exit_union_pgd", "union"), ("slowdown_pgd", "slowdown")):
    ATTACKS.register(
        _name,
        AttackEntry(
            lambda c, g=_goal: ExitPolicyPGD(c.epsilon, c.step_size, c.steps, g, c.norm or "linf"),
            "dynamic",
            needs_exits=True,
        ),
    )
ATTACKS.register(
    "smooth_transfer",
    AttackEntry(lambda c: _adaptive(c, route="smooth"), "white_box", needs_sampler=True),
)


def entry(cond: Condition) -> AttackEntry:
    """The registry entry of a condition's attack (`name`, or `name@source` for other backends)."""
    key = cond.name if cond.source in ("bench", "") else f"{cond.name}@{cond.source}"
    return ATTACKS.get(key)


def mode(cond: Condition) -> str:
    """How a condition's attack is scored (its entry's mode); "" for clean and corruption images."""
    return entry(cond).mode if cond.kind == "attack" else ""


def build(cond: Condition) -> Any:
    """The attack object a condition describes."""
    return entry(cond).build(cond)


def needs_sampler(cond: Condition) -> bool:
    """Whether a condition's attack works through a glimpse sampler (False for clean images)."""
    return cond.kind == "attack" and entry(cond).needs_sampler


def needs_exits(cond: Condition) -> bool:
    """Whether a condition's attack needs a model with several exits (False for clean images)."""
    return cond.kind == "attack" and entry(cond).needs_exits


__all__ = [
    "ATTACKS",
    "AdaptivePGD",
    "Attack",
    "AttackEntry",
    "AutoAttack",
    "ExitPolicyPGD",
    "FGSM",
    "LogitsGuard",
    "PGD",
    "PaperPGD",
    "PassCounter",
    "TorchattacksAttack",
    "attack_mode",
    "build",
    "check_args",
    "entry",
    "mode",
    "needs_exits",
    "needs_sampler",
    "project",
]
