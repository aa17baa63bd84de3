"""Comparable models. Importing this package registers them in bench.core.registry.MODELS."""

from bench.models import zoo  # noqa: F401  (registers)
from bench.models.base import (
    BenchModel,
    Classifier,
    Exits,
    GradRescale,
    GradShaper,
    GradStop,
    as_bench_model,
    gradient_shapers,
    true_gradient,
)
from bench.models.mgnet import MGNet, MGNetConfig

__all__ = [
    "BenchModel",
    "Classifier",
    "Exits",
    "GradRescale",
    "GradShaper",
    "GradStop",
    "MGNet",
    "MGNetConfig",
    "as_bench_model",
    "gradient_shapers",
    "true_gradient",
]
