"""Weights a user trained elsewhere: a plain state dict in a .pt/.pth or .safetensors file."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.core.errors import BenchError, first_line
from bench.load import checkpoint


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local .pth/.pt (tensors only) or .safetensors file."""
    if not path.is_file():
        raise BenchError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch and safetensors raise many types for a bad file)
        raise BenchError(
            f"weights file {path} cannot be loaded: {type(e).__name__}: {first_line(e)}"
        ) from None
    if isinstance(sd, dict) and sd.get("format") == checkpoint.FORMAT:
        raise BenchError(
            f"checkpoint {path} has no sidecar {checkpoint.sidecar(path).name}: cannot verify it "
            "(`bench train` writes both)"
        )
    for key in ("state_dict", "model"):  # common training-script wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BenchError(f"weights file {path} does not hold a state dict of tensors")
    return sd
