"""Conditions an image is evaluated under (clean, corruption, attack) and the named suites."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench.core.errors import BenchError
from bench.core.params import Params

NO_PARAMS = Params()
KINDS = ("clean", "corruption", "attack")


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """One condition; its fields are the condition columns of a results row."""

    kind: Literal["clean", "corruption", "attack"]
    name: str = "clean"
    source: str = ""  # who produced the images: data set loader, corruption backend, attack library
    protocol: Literal["strict", "paper", ""] = ""
    severity: int = 0
    norm: Literal["linf", "l2", ""] = ""
    epsilon: float = 0.0  # fraction of the [0,1] range; shown as k/255
    steps: int = 0
    step_size: float = 0.0
    restarts: int = 0
    params: Params = Params()  # anything else; canonical JSON in a results row

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"unknown condition kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind == "corruption" and (
            type(self.severity) is not int or not 1 <= self.severity <= 5
        ):
            raise BenchError(f"severity must be an integer in 1..5, got {self.severity!r}")
        if not 0 <= self.epsilon < math.inf or (self.norm != "l2" and self.epsilon > 1):
            raise BenchError(
                "epsilon must be in [0, 1] (pixel units; l2 radii may exceed 1), got "
                f"{self.epsilon}"
            )
        if self.kind == "attack":
            if self.norm not in ("linf", "l2"):
                raise BenchError(f"unknown norm {self.norm!r} (known: linf, l2)")
            if self.protocol not in ("strict", "paper"):
                raise BenchError(f"unknown protocol {self.protocol!r} (known: strict, paper)")

    def label(self) -> str:
        """A short human name: 'pgd linf 4/255 (strict)'."""
        if self.kind != "attack":
            return self.name if not self.severity else f"{self.name} s{self.severity}"
        eps = f"{self.epsilon * 255:g}/255" if self.norm == "linf" else f"{self.epsilon:g}"
        return f"{self.name} {self.norm} {eps} ({self.protocol})"


CLEAN = Condition(kind="clean", name="clean", source="dataset")
LINF_EPS = tuple(k / 255 for k in (0, 1, 2, 4, 8, 16))
L2_EPS = (0.0, 0.25, 0.5, 1.0)
HEADLINE_EPS = 4 / 255
TRANSFER_AUTO = "auto"  # the runner replaces it with the run's ResNet baseline


def corruption(name: str, severity: int, source: str = "reference") -> Condition:
    """ImageNet-C corruption at a severity, from `reference` (on the fly) or `rendered` (files)."""
    return Condition(kind="corruption", name=name, source=source, severity=severity)


def fgsm(eps: float, source: str = "bench") -> Condition:
    return Condition(
        kind="attack",
        name="fgsm",
        source=source,
        protocol="strict",
        norm="linf",
        epsilon=eps,
        steps=1,
        step_size=eps,
    )


def pgd_step(eps: float, steps: int) -> float:
    """PGD's step: 2.5ε of travel over the steps (Madry et al.'s ratio), so a PGD of few steps can
    still cross the ball; ε/4 for PGD-10, exactly (10 / 2.5 is 4.0)."""
    return eps / (steps / 2.5)


def pgd(
    eps: float, norm: str = "linf", steps: int = 10, restarts: int = 1, source: str = "bench"
) -> Condition:
    """PGD with step `pgd_step` (ε/4 for 10 steps).

    Ours stops each image at its first fooling iterate (attacks.pgd); torchattacks' returns the last
    one.
    """
    return Condition(
        kind="attack",
        name="pgd",
        source=source,
        protocol="strict",
        norm=norm,  # type: ignore[arg-type]
        epsilon=eps,
        steps=steps,
        step_size=pgd_step(eps, steps),
        restarts=restarts,
        params=pgd_params(source),
    )


def pgd_params(source: str, params: Params = NO_PARAMS) -> Params:
    """`params` of a strict PGD condition run by `source`: early stopping is our PGD's own."""
    rest = params.without("early_stop")
    return rest.replace(early_stop=True) if source == "bench" else rest


def autoattack(
    eps: float = HEADLINE_EPS, norm: str = "linf", version: str = "standard", batch_size: int = 100
) -> Condition:
    # the chunk size is part of the key: AutoAttack's randomness is drawn per chunk
    return Condition(
        kind="attack",
        name="autoattack",
        source="pyautoattack",
        protocol="strict",
        norm=norm,
        epsilon=eps,
        params=Params(batch_size=batch_size, version=version),
    )


ADAPTIVE = ("bpda_pgd", "eot_pgd", "look_pgd", "smooth_transfer")  # docs/attacks.md
JITTER = 0.05  # EOT: each glimpse's (s, u, v) moved by up to ±0.05 (normalized; 1 = half the image)
LOOK = 0.3  # misdirection: weight of the glimpses' L1 move against cross-entropy


def adaptive(name: str, eps: float = HEADLINE_EPS, steps: int = 10, eot: int = 4) -> Condition:
    """An adaptive attack through the glimpse sampler, with PGD's step for its step count."""
    if name not in ADAPTIVE:
        raise BenchError(f"unknown adaptive attack {name!r} (known: {', '.join(ADAPTIVE)})")
    params = {"eot_pgd": Params(eot=eot, jitter=JITTER), "look_pgd": Params(look=LOOK)}
    return _strict_linf(name, eps, steps, params.get(name, NO_PARAMS))


def _strict_linf(name: str, eps: float, steps: int, params: Params = NO_PARAMS) -> Condition:
    """A strict L∞ attack of the harness with PGD's step for its step count."""
    return Condition(
        kind="attack",
        name=name,
        source="bench",
        protocol="strict",
        norm="linf",
        epsilon=eps,
        steps=steps,
        step_size=pgd_step(eps, steps),
        params=params,
    )


EXIT_POLICY = ("exit_union_pgd", "slowdown_pgd")  # attacks on the early-exit policy


def exit_policy(name: str, eps: float = HEADLINE_EPS, steps: int = 10) -> Condition:
    """An attack on a multi-exit model's early-exit policy, with PGD's step for its step count."""
    if name not in EXIT_POLICY:
        raise BenchError(f"unknown early-exit attack {name!r} (known: {', '.join(EXIT_POLICY)})")
    return _strict_linf(name, eps, steps)


PAPER_PGD = Condition(
    kind="attack",
    name="paper_pgd",
    source="bench",
    protocol="paper",
    norm="linf",
    epsilon=4 / 255,
    steps=10,
    step_size=1 / 255,
    params=Params(space="normalized"),
)


def transfer(source_model: str = TRANSFER_AUTO, eps: float = HEADLINE_EPS) -> Condition:
    return Condition(
        kind="attack",
        name="transfer_pgd",
        source="bench",
        protocol="strict",
        norm="linf",
        epsilon=eps,
        steps=10,
        step_size=pgd_step(eps, 10),
        params=Params({"from": source_model}),
    )
