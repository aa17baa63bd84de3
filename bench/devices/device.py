"""Device choice and its name as recorded in results."""

from __future__ import annotations

import torch

from bench.core.errors import BenchError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda asked for, but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise BenchError(f"unknown device {name!r} (use auto, cpu or cuda[:N])")
    return torch.device(name)


def rank_device(name: str) -> torch.device:
    """resolve_device; under torchrun, this rank's own GPU (cuda:LOCAL_RANK) when that is CUDA."""
    from bench.devices import distributed

    dev = resolve_device(name)
    w = distributed.world()
    if dev.type != "cuda" or w.size == 1:
        return dev
    if w.local_rank >= torch.cuda.device_count():
        raise BenchError(
            f"local rank {w.local_rank} has no GPU of its own ({torch.cuda.device_count()} on this "
            "machine): launch at most one process per GPU, or use --device cpu"
        )
    return torch.device("cuda", w.local_rank)


def device_name(dev: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3' or 'cpu (2 threads)'."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({torch.get_num_threads()} threads)"
