"""Conditions an image is evaluated under (clean, corruption, attack) and the named suites."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from bench.errors import BenchError, unknown

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
    params: str = "{}"  # canonical sorted JSON for anything else

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"unknown condition kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind == "corruption" and (type(self.severity) is not int or not 1 <= self.severity <= 5):
            raise BenchError(f"severity must be an integer in 1..5, got {self.severity!r}")
        if not 0 <= self.epsilon < math.inf or (self.norm != "l2" and self.epsilon > 1):
            raise BenchError(f"epsilon must be in [0, 1] (pixel units; l2 radii may exceed 1), got {self.epsilon}")
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


COMMON_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                      "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform",
                      "pixelate", "jpeg_compression")  # the 15 of mCE (corruptions.base.COMMON)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def corruption(name: str, severity: int, source: str = "reference") -> Condition:
    """One ImageNet-C corruption at one severity; source `reference` (on the fly) or `rendered` (files)."""
    return Condition(kind="corruption", name=name, source=source, severity=severity)


def _corruption_sweep(n: int | None, names: tuple[str, ...] = COMMON_CORRUPTIONS,
                      source: str = "reference") -> tuple["Cell", ...]:
    return tuple(Cell(corruption(c, s, source), n) for c in names for s in range(1, 6))


def fgsm(eps: float, source: str = "bench") -> Condition:
    return Condition(kind="attack", name="fgsm", source=source, protocol="strict", norm="linf",
                     epsilon=eps, steps=1, step_size=eps)


def pgd_step(eps: float, steps: int) -> float:
    """PGD's step: 2.5ε of travel over the steps (Madry et al.'s ratio), so a PGD of few steps can still cross the
    ball; ε/4 for PGD-10, exactly (10 / 2.5 is 4.0)."""
    return eps / (steps / 2.5)


def pgd(eps: float, norm: str = "linf", steps: int = 10, restarts: int = 1, source: str = "bench") -> Condition:
    """PGD with step `pgd_step` (ε/4 for 10 steps).

    Ours stops each image at its first fooling iterate (attacks.pgd); torchattacks' returns the last one.
    """
    return Condition(kind="attack", name="pgd", source=source, protocol="strict", norm=norm,  # type: ignore[arg-type]
                     epsilon=eps, steps=steps, step_size=pgd_step(eps, steps), restarts=restarts,
                     params=pgd_params(source))


def pgd_params(source: str, params: str = "{}") -> str:
    """`params` of a strict PGD condition run by `source`: early stopping is our PGD's own."""
    p = {k: v for k, v in json.loads(params).items() if k != "early_stop"}
    if source == "bench":
        p["early_stop"] = True
    return json.dumps(p, sort_keys=True, separators=(",", ":"))


def autoattack(eps: float = HEADLINE_EPS, norm: str = "linf", version: str = "standard",
               batch_size: int = 100) -> Condition:
    # the chunk size is part of the key: AutoAttack's randomness is drawn per chunk
    return Condition(kind="attack", name="autoattack", source="pyautoattack", protocol="strict",
                     norm=norm, epsilon=eps, params=json.dumps({"batch_size": batch_size, "version": version},  # type: ignore[arg-type]
                                                               sort_keys=True, separators=(",", ":")))


PAPER_PGD = Condition(kind="attack", name="paper_pgd", source="bench", protocol="paper", norm="linf",
                      epsilon=4 / 255, steps=10, step_size=1 / 255,
                      params='{"space":"normalized"}')


def transfer(source_model: str = TRANSFER_AUTO, eps: float = HEADLINE_EPS) -> Condition:
    return Condition(kind="attack", name="transfer_pgd", source="bench", protocol="strict", norm="linf",
                     epsilon=eps, steps=10, step_size=pgd_step(eps, 10),
                     params=json.dumps({"from": source_model}, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class Cell:
    """A condition, how many images it runs on (None: the whole test split) and at which exits."""

    condition: Condition
    n_images: int | None = None
    last_exit_only: bool = False  # for the costliest attacks in CPU-sized suites


def _attack_sweep(n: int | None, n_aa: int | None, aa_last_only: bool = False) -> tuple[Cell, ...]:
    return (tuple(Cell(fgsm(e), n) for e in LINF_EPS) + tuple(Cell(pgd(e), n) for e in LINF_EPS)
            + tuple(Cell(pgd(e, "l2"), n) for e in L2_EPS) + (Cell(PAPER_PGD, n), Cell(transfer(), n),
                                                               Cell(autoattack(), n_aa, aa_last_only)))


SUITES: dict[str, tuple[Cell, ...]] = {
    "clean": (Cell(CLEAN),),
    "corruptions": (Cell(CLEAN),) + _corruption_sweep(None),
    "corruptions_rendered": (Cell(CLEAN),) + _corruption_sweep(None, source="rendered"),
    "attacks": _attack_sweep(1000, 200),
    "paper": (Cell(CLEAN), Cell(PAPER_PGD, 1000), Cell(pgd(4 / 255), 1000)),
    "default": (Cell(CLEAN),) + _corruption_sweep(300) + _attack_sweep(200, 10, aa_last_only=True),
    "smoke": (Cell(CLEAN, 16), Cell(corruption("fog", 3), 16), Cell(fgsm(4 / 255), 16),
              Cell(pgd(4 / 255, steps=2), 16)),
    "scale": (Cell(CLEAN),) + _corruption_sweep(None) + tuple(Cell(pgd(e)) for e in LINF_EPS),
}
SUITE_HELP = {
    "clean": "clean accuracy on the whole test split",
    "corruptions": "the 15 ImageNet-C corruptions x 5 severities generated on the fly (imagecorruptions-imaug, "
                   "seeded per image), whole test split (--extra-corruptions adds the 4 held-out ones)",
    "corruptions_rendered": "the 15 x 5 from pre-rendered ImageNet100-C files (--corruption-root), read "
                            "without resize or crop",
    "attacks": "FGSM and PGD-10 L∞ at 0-16/255, PGD-10 L2 at 0-1, paper PGD, transfer from the ResNet "
               "baseline (1,000 images), AutoAttack standard L∞ 4/255 (200 images)",
    "paper": "the official MGNet PGD beside strict PGD at the same nominal ε",
    "default": "clean (all images), 15 x 5 corruptions on 300 images, the attack sweep on 200 images; "
               "AutoAttack on 10 images at each model's last exit only (make bench, sized for 2 CPU cores)",
    "smoke": "a few images, cheap attacks: a quick check that everything runs",
    "scale": "clean, the 15 x 5 corruptions and the PGD-10 L∞ sweep at 0-16/255 on every image (the GPU "
             "wall-time target: 5,000 ImageNet100 images, benchmarks/gpu_suite.py)",
}


def suite(name: str) -> tuple[Cell, ...]:
    """The cells of a named suite."""
    try:
        return SUITES[name]
    except KeyError:
        raise unknown("suite", name, SUITES) from None
