"""Early exits: a multi-exit model stops at the first exit whose confidence reaches τ, evaluated
from stored per-image records alone (torch-free).

Per image, the exit taken is the first whose confidence (largest softmax probability, or 1 −
normalized entropy) is at least τ, else the last; the image is right if that exit is right, and
costs that exit's GMACs. τ = 1 is the last exit (stored confidences stay below 1), and τ near 0
the first. A sweep over τ gives accuracy against average compute, clean, per corruption, and
under the attacks on the policy (attacks/exit_policy.py): there an image is right only if the
policy is right on the clean image and the exit it takes on the attacked image is right.
"""

from __future__ import annotations

import dataclasses
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
Cells = dict[tuple[str, int], "ExitData"]  # (condition, severity) -> a cell's data


@dataclass(frozen=True)
class ExitData:
    """One multi-exit model on one cell's images: image indices (N,), correctness (E, N),
    confidences (M, E, N) in the order of MEASURES, each exit's GMACs (E,), and for an attacked
    cell the clean data of the same images (the policy must be right on them too)."""

    indices: np.ndarray
    correct: np.ndarray
    confidence: np.ndarray
    gmacs: np.ndarray
    clean: ExitData | None = None

    def __add__(self, other: ExitData) -> ExitData:
        """The images of both cells pooled (a mean over corruptions weighs every image alike)."""
        return ExitData(
            np.concatenate([self.indices, other.indices]),
            np.concatenate([self.correct, other.correct], axis=1),
            np.concatenate([self.confidence, other.confidence], axis=2),
            self.gmacs,
        )

    def on(self, indices: np.ndarray) -> ExitData:
        """The same data on `indices` (which it must hold), in that order."""
        pos = {int(i): j for j, i in enumerate(self.indices)}
        at = np.array([pos[int(i)] for i in indices], dtype=np.int64)
        return ExitData(indices, self.correct[:, at], self.confidence[:, :, at], self.gmacs)


@dataclass(frozen=True)
class Outcome:
    """The policy at one τ on one cell: right images, images, mean GMACs, mean exit (1-based)."""

    n_correct: int
    n_images: int
    gmacs: float
    exit: float


def check_tau(tau: float) -> float:
    """τ itself, or one error line: a threshold in (0, 1] on the stored 0.001 grid."""
    if not 0 < tau <= 1:
        raise BenchError(f"τ must be in (0, 1] (a confidence threshold), got {tau:g}")
    if abs(tau * 1000 - round(tau * 1000)) > 1e-6:
        raise BenchError(f"τ resolves to 0.001 (confidences are stored so), got {tau:g}")
    return tau


def exits_taken(confidence: np.ndarray, tau: float) -> np.ndarray:
    """(N,) 0-based exit of each image: the first whose confidence (E, N) reaches τ, or the last."""
    reached = confidence >= check_tau(tau) - 1e-9  # float slack: stored values are k / 1000
    reached[-1] = True
    return reached.argmax(0)


def _right(d: ExitData, tau: float, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """(exit taken, right there) per image; an attacked image needs the clean policy right too."""
    taken = exits_taken(d.confidence[MEASURES.index(measure)], tau)
    right = d.correct[taken, np.arange(len(taken))]
    if d.clean is not None:
        right = right & _right(d.clean, tau, measure)[1]
    return taken, right


def outcome(d: ExitData, tau: float, measure: str = "msp") -> Outcome:
    """The policy's accuracy and cost at τ, thresholding `measure`."""
    taken, right = _right(d, tau, measure)
    return Outcome(
        int(right.sum()), len(taken), float(d.gmacs[taken].mean()), float(taken.mean() + 1)
    )


def curve(d: ExitData, measure: str = "msp", taus: tuple[float, ...] = TAUS) -> pd.DataFrame:
    """The policy at every τ: tau, n_correct, n_images, gmacs, exit, accuracy."""
    rows = [(t, *dataclasses.astuple(outcome(d, t, measure))) for t in taus]
    df = pd.DataFrame(rows, columns=["tau", *(f.name for f in dataclasses.fields(Outcome))])
    return df.assign(accuracy=df.n_correct / df.n_images)


def matched_tau(d: ExitData, gmacs: float, measure: str = "msp") -> float:
    """The τ of the sweep whose average compute on these images is closest to `gmacs`."""
    c = curve(d, measure)
    return float(c.tau[(c.gmacs - gmacs).abs().idxmin()])


def _cell(g: pd.DataFrame, images: Records, confidence: dict[str, np.ndarray]) -> ExitData:
    """One cell's rows (one per exit, in order) as ExitData; a record that does not line up with
    the others is one error line."""
    idx = images[g.row_key.iloc[0]][0]
    for k in g.row_key:
        if not np.array_equal(images[k][0], idx) or confidence[k].shape[1] != len(idx):
            raise BenchError(
                "confidence.csv or per_image.csv: the records of one cell do not line up "
                f"({g.model.iloc[0]} {g.condition.iloc[0]}); move the folder's files away"
            )
    return ExitData(
        idx,
        np.stack([images[k][1] for k in g.row_key]),
        np.stack([confidence[k] for k in g.row_key], axis=1),
        g.gmacs.to_numpy(dtype=float),
    )


def cells(
    df: pd.DataFrame, model: str, images: Records, confidence: dict[str, np.ndarray]
) -> Cells:
    """A model's clean and corruption cells, and the attacks on its policy at the headline ε,
    whose every exit has its per-image and confidence records. `df`: one data set's rows."""
    on_policy = df.condition.isin(EXIT_POLICY) & ((df.epsilon - HEADLINE_EPS).abs() < 1e-9)
    rows = latest(df[(df.model == model) & (df.kind.isin(["clean", "corruption"]) | on_policy)])
    out: Cells = {}
    for (cond, sev, _), g in rows.groupby(["condition", "severity", "source"]):
        g = g.sort_values("exit")
        complete = len(g) == int(g.exits_total.iloc[0])
        if complete and all(k in images and k in confidence for k in g.row_key):
            out[str(cond), int(sev)] = _cell(g, images, confidence)
    if ("clean", 0) in out:
        for a in EXIT_POLICY:
            if (a, 0) in out:
                attacked = out[a, 0]
                out[a, 0] = dataclasses.replace(
                    attacked, clean=out["clean", 0].on(attacked.indices)
                )
    return out


def by_severity(data: Cells) -> dict[int, ExitData]:
    """Corruption cells pooled per severity (1–5), every corruption's images alike."""
    out: dict[int, ExitData] = {}
    for (_, sev), d in sorted(data.items()):
        if sev >= 1:
            out[sev] = out[sev] + d if sev in out else d
    return out


def all_corruptions(data: Cells) -> ExitData | None:
    """Every corruption cell pooled (None without any)."""
    pooled = list(by_severity(data).values())
    return sum(pooled[1:], pooled[0]) if pooled else None


def multi_exit_models(df: pd.DataFrame) -> list[str]:
    """Models of the run with more than one exit."""
    return sorted(df[df.exits_total > 1].model.unique())


def check_policy_input(
    df: pd.DataFrame, models: list[str], confidence: dict[str, np.ndarray], where: str
) -> None:
    """One error line for a policy that cannot be evaluated: a model not in the run, a single-exit
    model, or a run folder without stored confidences."""
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
