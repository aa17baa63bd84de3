"""Definitions every layer shares, free of torch: errors, the registry, model cards, conditions,
suites, run configuration, training recipes and per-image seeds."""
