"""Early exits: a multi-exit model stops at the first exit whose confidence reaches τ, evaluated
from stored per-image records alone (torch-free).

Per image, the exit taken is the first whose confidence (largest softmax probability, or 1 −
normalized entropy) is at least τ, else the last; the image is right if that exit is right, and
costs that exit's GMACs. τ = 1 is the last exit (stored confidences stay below 1), and τ near 0
the first. A sweep over τ gives accuracy against average compute, clean, per corruption, and
under the attacks on the policy (attacks/exit_policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.core.conditions import EXIT_POLICY, HEADLINE_EPS
from bench.core.errors import BenchError
from bench.report.tables import latest
from bench.store.confidence import MEASURES
from bench.store.per_image import Records

TAUS = tuple(
    sorted(
        {round(float(t), 3) for t in np.arange(0.05, 1.0, 0.05)} | {0.97, 0.99, 0.995, 0.999, 1.0}
    )
)


@dataclass(frozen=True)
class ExitData:
    """One multi-exit model on one cell's images: correctness (E, N), confidences (M, E, N) in the
    order of MEASURES, and each exit's GMACs (E,)."""

    correct: np.ndarray
    confidence: np.ndarray
    gmacs: np.ndarray

    def __add__(self, other: ExitData) -> ExitData:
        """The images of both cells pooled (a mean over corruptions weighs every image alike)."""
        return ExitData(
            np.concatenate([self.correct, other.correct], axis=1),
            np.concatenate([self.confidence, other.confidence], axis=2),
            self.gmacs,
        )


@dataclass(frozen=True)
class Outcome:
    """The policy at one τ on one cell: right images, images, mean GMACs, mean exit (1-based)."""

    n_correct: int
    n_images: int
    gmacs: float
    exit: float


def check_tau(tau: float) -> float:
    """τ itself, or one error line: a threshold on a confidence in (0, 1]."""
    if not 0 < tau <= 1:
        raise BenchError(f"τ must be in (0, 1] (a confidence threshold), got {tau:g}")
    return tau


def exits_taken(confidence: np.ndarray, tau: float) -> np.ndarray:
    """(N,) 0-based exit of each image: the first whose confidence (E, N) reaches τ, or the last."""
    reached = confidence >= check_tau(tau) - 1e-9  # τ is compared at the stored 0.001 resolution
    reached[-1] = True
    return reached.argmax(0)


def outcome(d: ExitData, tau: float, measure: str = "msp") -> Outcome:
    """The policy's accuracy and cost at τ, thresholding `measure`."""
    taken = exits_taken(d.confidence[MEASURES.index(measure)], tau)
    right = d.correct[taken, np.arange(d.correct.shape[1])]
    return Outcome(
        int(right.sum()), len(taken), float(d.gmacs[taken].mean()), float(taken.mean() + 1)
    )


def curve(d: ExitData, measure: str = "msp", taus: tuple[float, ...] = TAUS) -> pd.DataFrame:
    """The policy at every τ: tau, n_correct, n_images, accuracy, gmacs, exit."""
    rows = [(t, *vars(outcome(d, t, measure)).values()) for t in taus]
    df = pd.DataFrame(rows, columns=["tau", "n_correct", "n_images", "gmacs", "exit"])
    return df.assign(accuracy=df.n_correct / df.n_images)


def matched_tau(d: ExitData, gmacs: float, measure: str = "msp") -> float:
    """The τ of the sweep whose average compute on these images is closest to `gmacs`."""
    c = curve(d, measure)
    return float(c.tau[(c.gmacs - gmacs).abs().idxmin()])


def cells(
    df: pd.DataFrame, model: str, images: Records, confidence: dict[str, np.ndarray]
) -> dict[tuple[str, int], ExitData]:
    """(condition, severity) -> ExitData of a model's clean and corruption cells, and of the
    attacks on its policy at the headline ε, whose every exit has its per-image and confidence
    records (one pass or one attack scored all exits: the same images)."""
    on_policy = df.condition.isin(EXIT_POLICY) & ((df.epsilon - HEADLINE_EPS).abs() < 1e-9)
    rows = latest(df[(df.model == model) & (df.kind.isin(["clean", "corruption"]) | on_policy)])
    out = {}
    for (cond, sev), g in rows.groupby(["condition", "severity"]):
        g = g.sort_values("exit")
        if len(g) != int(g.exits_total.iloc[0]) or not all(
            k in images and k in confidence for k in g.row_key
        ):
            continue
        out[str(cond), int(sev)] = ExitData(
            np.stack([images[k][1] for k in g.row_key]),
            np.stack([confidence[k] for k in g.row_key], axis=1),
            g.gmacs.to_numpy(dtype=float),
        )
    return out


def by_severity(data: dict[tuple[str, int], ExitData]) -> dict[int, ExitData]:
    """Corruption cells pooled per severity (1–5), every corruption's images alike."""
    out: dict[int, ExitData] = {}
    for (_, sev), d in sorted(data.items()):
        if sev >= 1:
            out[sev] = out[sev] + d if sev in out else d
    return out


def multi_exit_models(df: pd.DataFrame) -> list[str]:
    """Models of the run with more than one exit."""
    return sorted(df[df.exits_total > 1].model.unique())


def check_policy_input(
    df: pd.DataFrame, models: list[str], confidence: dict[str, np.ndarray], where: str
) -> None:
    """One error line for a policy that cannot be evaluated: a single-exit model, or a run folder
    without stored confidences."""
    for m in models:
        if m not in set(df.model):
            raise BenchError(f"no rows of model {m!r} in {where}")
        if int(df[df.model == m].exits_total.max()) < 2:
            raise BenchError(f"{m} has one exit: an early-exit policy needs a model with several")
    if not confidence:
        raise BenchError(
            f"{where} holds no per-exit confidences (confidence.csv): evaluate into a new folder "
            "with this version, `bench run --out NEW ...`, to store them"
        )
