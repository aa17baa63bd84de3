"""Training resume: the state after each finished epoch, so an interrupted training run continues
where it stopped.

The state (weights, optimiser, schedule, the training generator's and torch's random state, epochs
done, seconds spent) sits next to the checkpoint it will become, as a hidden file written
atomically, and is removed once the checkpoint is written. It is used only by a run with the same
fingerprint (model, data, recipe, seed, world size, parameter shapes), so a resumed run writes the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
FORMAT = "bench-train-state-v2"


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a state restores besides the objects it loads into: epochs done, seconds spent and
    each finished epoch's test accuracy per exit."""

    epoch: int
    seconds: float
    curve: tuple[tuple[float, ...], ...] = ()


def path_for(checkpoint: Path) -> Path:
    """Where the training state of the checkpoint-to-be lives (hidden, beside it)."""
    return checkpoint.with_name(f".{checkpoint.stem}.train-state.pt")


def fingerprint(model: torch.nn.Module, **settings: Any) -> str:
    """A digest of what must match to resume: the settings and each parameter's name and shape."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    blob = json.dumps({"settings": settings, "shapes": shapes}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def save(
    path: Path,
    key: str,
    epoch: int,
    seconds: float,
    curve: list[list[float]],
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    gen: torch.Generator,
) -> None:
    """Write the state after `epoch` epochs, atomically (a crash mid-write keeps the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    torch.save(
        {
            "format": FORMAT,
            "key": key,
            "epoch": epoch,
            "seconds": seconds,
            "curve": curve,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)


def load(
    path: Path,
    key: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    gen: torch.Generator,
) -> Resumed | None:
    """Restore a stored state into the given objects; None, leaving them untouched, if none."""
    if not path.is_file():
        return None
    try:
        blob: Mapping[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        usable = isinstance(blob, dict) and blob.get("format") == FORMAT
    except Exception as e:  # noqa: BLE001  (torch raises many types for a bad file)
        log.warning("training state %s is unreadable (%s); training from the start", path, e)
        return None
    if not usable or blob.get("key") != key:
        log.warning("training state %s was made with other settings; training from the start", path)
        return None
    model.load_state_dict(blob["model"])
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    gen.set_state(blob["generator"])
    torch.set_rng_state(blob["torch_rng"])
    curve = tuple(tuple(float(a) for a in accs) for accs in blob["curve"])
    return Resumed(epoch=int(blob["epoch"]), seconds=float(blob["seconds"]), curve=curve)


def remove(path: Path) -> None:
    """Drop the state once its checkpoint is written."""
    path.unlink(missing_ok=True)
