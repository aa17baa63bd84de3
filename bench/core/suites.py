"""Named suites: which conditions a run evaluates, on how many images, at which exits."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.conditions import (
    ADAPTIVE,
    CLEAN,
    EXIT_POLICY,
    HEADLINE_EPS,
    L2_EPS,
    LINF_EPS,
    PAPER_PGD,
    Condition,
    adaptive,
    autoattack,
    corruption,
    exit_policy,
    fgsm,
    pgd,
    transfer,
)
from bench.core.corruption_names import COMMON
from bench.core.errors import unknown


@dataclass(frozen=True, slots=True)
class Cell:
    """A condition, how many images it runs on (None: the whole test split) and at which exits."""

    condition: Condition
    n_images: int | None = None
    last_exit_only: bool = False  # for the costliest attacks in CPU-sized suites


def _corruption_sweep(
    n: int | None, names: tuple[str, ...] = COMMON, source: str = "reference"
) -> tuple[Cell, ...]:
    return tuple(Cell(corruption(c, s, source), n) for c in names for s in range(1, 6))


def _attack_sweep(n: int | None, n_aa: int | None, aa_last_only: bool = False) -> tuple[Cell, ...]:
    return (
        tuple(Cell(fgsm(e), n) for e in LINF_EPS)
        + tuple(Cell(pgd(e), n) for e in LINF_EPS)
        + tuple(Cell(pgd(e, "l2"), n) for e in L2_EPS)
        + (Cell(PAPER_PGD, n), Cell(transfer(), n), Cell(autoattack(), n_aa, aa_last_only))
        + tuple(Cell(exit_policy(a), n) for a in EXIT_POLICY)
    )


def _adaptive_cells(n: int | None, steps: int, eot: int, last_only: bool) -> tuple[Cell, ...]:
    return tuple(Cell(adaptive(a, steps=steps, eot=eot), n, last_only) for a in ADAPTIVE)


SUITES: dict[str, tuple[Cell, ...]] = {
    "clean": (Cell(CLEAN),),
    "corruptions": (Cell(CLEAN),) + _corruption_sweep(None),
    "corruptions_rendered": (Cell(CLEAN),) + _corruption_sweep(None, source="rendered"),
    "attacks": (Cell(CLEAN, 1000),) + _attack_sweep(1000, 200),
    "paper": (Cell(CLEAN), Cell(PAPER_PGD, 1000), Cell(pgd(4 / 255), 1000)),
    "default": (Cell(CLEAN),)
    + _corruption_sweep(300)
    + _attack_sweep(500, 100, aa_last_only=True)
    + _adaptive_cells(100, 10, 2, last_only=True),
    "adaptive": (
        Cell(CLEAN),
        Cell(fgsm(HEADLINE_EPS), 1000),
        Cell(pgd(HEADLINE_EPS, steps=50), 1000),
        Cell(transfer(), 1000),
        Cell(autoattack(), 200),
    )
    + _adaptive_cells(1000, 50, 4, last_only=False),
    "smoke": (
        Cell(CLEAN, 16),
        Cell(corruption("fog", 3), 16),
        Cell(fgsm(4 / 255), 16),
        Cell(pgd(4 / 255, steps=2), 16),
    ),
    "scale": (Cell(CLEAN),) + _corruption_sweep(None) + tuple(Cell(pgd(e)) for e in LINF_EPS),
}
SUITE_HELP = {
    "clean": "clean accuracy on the whole test split",
    "corruptions": "the 15 ImageNet-C corruptions x 5 severities generated on the fly "
    "(imagecorruptions-imaug, seeded per image), whole test split (--extra-corruptions adds the 4 "
    "held-out ones)",
    "corruptions_rendered": "the 15 x 5 from pre-rendered ImageNet100-C files (--corruption-root), "
    "read without resize or crop",
    "attacks": "FGSM and PGD-10 L∞ at 0-16/255, PGD-10 L2 at 0-1, paper PGD, transfer from the "
    "ResNet baseline, the two attacks on a multi-exit model's early-exit policy at 4/255 (1,000 "
    "images), AutoAttack standard L∞ 4/255 (200 images)",
    "paper": "the official MGNet PGD beside strict PGD at the same nominal ε",
    "default": "clean (all images), 15 x 5 corruptions on 300 images, the attack sweep on 500 "
    "images; AutoAttack and the four adaptive attacks (10 steps, EOT over 2 placements) at 4/255 "
    "on 100 images at each model's last exit only (make bench, sized for 2 CPU cores)",
    "adaptive": "the adaptive attacks through the glimpse sampler (BPDA, EOT over 4 placements, "
    "misdirection, smooth-surrogate transfer; 50 steps) at 4/255 on 1,000 images at every exit, "
    "beside FGSM, PGD-50 and transfer on the same images and AutoAttack on 200: the "
    "best-known robust accuracy combines them (docs/attacks.md)",
    "smoke": "a few images, cheap attacks: a quick check that everything runs",
    "scale": "clean, the 15 x 5 corruptions and the PGD-10 L∞ sweep at 0-16/255 on every image "
    "(the GPU wall-time target: 5,000 ImageNet100 images, benchmarks/gpu_suite.py)",
}


def suite(name: str) -> tuple[Cell, ...]:
    """The cells of a named suite."""
    try:
        return SUITES[name]
    except KeyError:
        raise unknown("suite", name, SUITES) from None
