"""The report layer: reads results.csv only; never imports torch."""

from bench.report.markdown import build

__all__ = ["build"]
