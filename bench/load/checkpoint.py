"""Our checkpoints: weights, config, data set, epoch and accuracy, verified by a sha256 sidecar."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.errors import BenchError, first_line

FORMAT = "bench-checkpoint-v1"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_config(model: nn.Module) -> dict[str, Any]:
    """The model's settings that its state dict does not hold (MGNet's config), for sidecars."""
    cfg = getattr(model, "cfg", None)
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save(
    path: Path, model: str, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> str:
    """Write the sidecar with the weights' sha256, then the weights, each atomically; returns the
    sha256.

    In that order a checkpoint file is never there without its sidecar, so a run killed between the
    two writes leaves no checkpoint that `bench train --if-missing` would skip.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(
        {
            "format": FORMAT,
            "model": model,
            "meta": {**meta, "model": model},
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        },
        tmp,
    )
    digest = sha256(tmp)
    side_tmp = path.with_name(f".{path.name}.json.tmp")
    side_tmp.write_text(
        json.dumps({"format": FORMAT, "model": model, "sha256": digest, **meta}, indent=2)
    )
    os.replace(side_tmp, sidecar(path))
    os.replace(tmp, path)
    return digest


def verify(path: Path) -> str:
    """The checkpoint's sha256, once checked against its sidecar (one clear error otherwise)."""
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    side = sidecar(path)
    if not side.is_file():
        raise BenchError(
            f"checkpoint {path} has no sidecar {side.name}: cannot verify it (`bench train` writes "
            "both; official MGNet files load with @official:PATH)"
        )
    try:
        expected = json.loads(side.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise BenchError(f"{side}: unreadable sidecar ({e})") from None
    if not isinstance(expected, str):
        raise BenchError(f"{side}: unreadable sidecar (sha256 is {expected!r}, not a hex string)")
    digest = sha256(path)
    if digest != expected:
        raise BenchError(
            f"checkpoint {path}: sha256 {digest[:12]} does not match its sidecar ({expected[:12]})"
        )
    return digest


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """(state_dict, meta, sha256) after checking the file against its sidecar."""
    digest = verify(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many types for a bad file)
        raise BenchError(
            f"checkpoint {path} cannot be loaded: {first_line(e) or type(e).__name__}"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise BenchError(
            f"{path} is not a bench checkpoint (for official MGNet files use @official:PATH)"
        )
    return blob["state_dict"], blob["meta"], digest


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict load with a readable message on missing, unexpected or mis-shaped keys."""
    own = model.state_dict()
    odd = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise BenchError(
            f"{what} holds {len(odd)} value(s) that are not tensors (e.g. {odd[0]}: "
            f"{type(state_dict[odd[0]]).__name__}); is it a state dict?"
        )
    # files saved before PyTorch 0.4.1 lack batch norm's counter; load_state_dict fills it in
    missing = [k for k in own if k not in state_dict and not k.endswith(".num_batches_tracked")]
    extra = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]})")
    if problems:
        raise BenchError(f"{what} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state_dict, strict=True)
