"""Which precision each model's clean and corruption cells run in: bf16 only after it matched fp32
on the run's clean images (bench/fast/precision.py), checked once on rank 0 and kept in checks.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.core.errors import BenchError, NonFiniteLogits
from bench.data import subset_indices
from bench.devices import distributed
from bench.devices.device import device_name
from bench.evaluation.scoring import clean_correct
from bench.evaluation.setup import Setup
from bench.fast import precision
from bench.load.specs import LoadedModel
from bench.store.checks import CheckRow, append_checks, read_checks
from bench.store.provenance import utc_now


def _setting(n: int, dev: torch.device) -> str:
    """What a parity check ran on (images, device); a stored check counts only for the same ones."""
    return f"bf16 autocast vs fp32 on {n} clean images on {device_name(dev)}"


def _accuracies(setup: Setup, model: torch.nn.Module, indices: np.ndarray) -> dict[str, list]:
    """Per-exit clean accuracy in fp32 and under bf16 autocast."""
    cfg = setup.cfg

    def accuracy(p: str) -> list:
        correct = clean_correct(
            model,
            setup.images,
            indices,
            batch_size=cfg.batch_size,
            device=setup.device,
            workers=setup.workers,
            precision=p,
        )
        return correct.correct.mean(axis=1).tolist()

    return {p: accuracy(p) for p in ("fp32", "bf16")}


def _check(
    setup: Setup, lm: LoadedModel, net: torch.nn.Module, indices: np.ndarray, path: Path
) -> None:
    """Per-exit clean accuracy in fp32 and bf16 autocast on the run's images, kept in checks.csv."""
    dev, cfg = setup.device, setup.cfg
    model = net.to(dev)
    try:
        acc = _accuracies(setup, model, indices)
    except NonFiniteLogits as e:
        raise BenchError(f"{lm.card.name} (bf16 parity check): {e}") from None
    net.cpu()
    ok, points = precision.amp_matches(acc["fp32"], acc["bf16"])
    detail = (
        f"{_setting(len(indices), dev)}, largest difference {points:.2f} points (tolerance "
        f"{100 * precision.AMP_TOLERANCE:.1f}): clean and corruption cells run in "
        f"{'bf16' if ok else 'fp32'}"
    )
    append_checks(
        path,
        [
            CheckRow(
                model=lm.card.name,
                weights=lm.weights,
                dataset=cfg.dataset,
                exit=0,
                check="amp_parity",
                status="ok" if ok else "warn",
                value=points,
                detail=detail,
                created=utc_now(),
            )
        ],
    )


def clean_precision(
    setup: Setup, runtime: dict[str, torch.nn.Module], path: Path
) -> dict[tuple[str, str], str]:
    """Per (model, weights): "bf16" where AMP was asked for and passed its parity check, else "fp32"
    (checked once, on rank 0; every rank runs what it found)."""
    cfg, images = setup.cfg, setup.images
    plain = [c for c in setup.cells if c.condition.kind in ("clean", "corruption")]
    if not (plain and precision.wants_amp(cfg.precision, setup.device)):
        return {}
    n = max((len(images) if c.n_images is None else min(c.n_images, len(images))) for c in plain)
    indices, _ = subset_indices(len(images), n)
    # rank 0's device, on every rank
    setting = distributed.gather(_setting(n, setup.device) + ",")[0]

    def stored() -> dict[tuple[str, str], str]:
        return {
            (c.model, c.weights): "bf16" if c.status == "ok" else "fp32"
            for c in read_checks(path)
            if c.check == "amp_parity" and c.dataset == cfg.dataset and c.detail.startswith(setting)
        }

    def check() -> None:
        done = stored()
        for lm in setup.loaded:
            if (lm.card.name, lm.weights) not in done:
                _check(setup, lm, runtime[lm.card.name], indices, path)

    distributed.on_main(check)
    return stored()
