"""Adversarial attacks behind one contract, built from a results Condition by (name, source)."""
from __future__ import annotations

import json
from typing import Any, Callable

from attacks.autoattack import AutoAttack
from attacks.base import Attack, LogitsGuard, PassCounter, attack_mode, check_args, project
from attacks.fgsm import FGSM
from attacks.paper_pgd import PaperPGD
from attacks.pgd import PGD
from attacks.ta_backend import TorchattacksAttack
from bench.conditions import Condition
from bench.errors import BenchError
from bench.registry import Registry


def _torchattacks_pgd(c: Condition) -> TorchattacksAttack:
    """torchattacks' PGD or PGDL2; a condition asking for restarts is refused, not run without them."""
    if c.restarts > 1:
        raise BenchError("torchattacks' PGD has no restarts: run restarts with the bench backend")
    return TorchattacksAttack("pgd", c.epsilon, c.norm or "linf", c.step_size, c.steps)


ATTACKS: Registry[Callable[[Condition], Any]] = Registry("attack")
ATTACKS.register("fgsm", lambda c: FGSM(c.epsilon))
ATTACKS.register("pgd", lambda c: PGD(c.epsilon, c.step_size, c.steps, c.norm or "linf", max(c.restarts, 1),
                                      early_stop=bool(json.loads(c.params).get("early_stop", False))))
ATTACKS.register("transfer_pgd", lambda c: PGD(c.epsilon, c.step_size, c.steps, c.norm or "linf",
                                               max(c.restarts, 1)))
ATTACKS.register("paper_pgd", lambda c: PaperPGD(c.epsilon, c.step_size, c.steps))
ATTACKS.register("fgsm@torchattacks", lambda c: TorchattacksAttack("fgsm", c.epsilon))
ATTACKS.register("pgd@torchattacks", _torchattacks_pgd)
ATTACKS.register("autoattack@pyautoattack", lambda c: AutoAttack(
    c.epsilon, c.norm or "linf", json.loads(c.params).get("version", "standard")))


def build(cond: Condition) -> Any:
    """The attack object a condition describes (`name`, or `name@source` for other backends)."""
    key = cond.name if cond.source in ("bench", "") else f"{cond.name}@{cond.source}"
    return ATTACKS.get(key)(cond)


__all__ = ["ATTACKS", "Attack", "AutoAttack", "FGSM", "LogitsGuard", "PGD", "PaperPGD", "PassCounter",
           "TorchattacksAttack", "attack_mode", "build", "check_args", "project"]
