"""Robustness bench for efficient vision models. The API loads heavy modules only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.core.card import ModelCard, register_model
from bench.core.errors import BenchError

if TYPE_CHECKING:
    from bench.core.config import RunConfig

__all__ = [
    "BenchError",
    "ModelCard",
    "RunConfig",
    "build_report",
    "load_model",
    "register_model",
    "run",
]


def load_model(spec: str, dataset: str = "cluttered_fmnist") -> Any:
    """A ready model in eval mode, for a spec such as 'mgnet_small' or 'my.py:net'."""
    from bench.data import cache_dir
    from bench.load.specs import expand, load

    names = expand(spec)
    if len(names) != 1:
        raise BenchError(f"{spec} names {len(names)} models; name one with file.py:factory")
    return load(names[0], dataset, cache_dir()).model


def run(config: RunConfig) -> Any:
    """Evaluate a RunConfig; returns the path of its results CSV."""
    from bench.evaluation.runner import run as _run

    return _run(config)


def build_report(run_dir: Any) -> Any:
    """Rebuild report.md and figures of a run folder from its results CSV."""
    from pathlib import Path

    from bench.report import build

    return build(Path(run_dir))


def __getattr__(name: str) -> Any:
    if name == "RunConfig":
        from bench.core.config import RunConfig

        return RunConfig
    raise AttributeError(name)
