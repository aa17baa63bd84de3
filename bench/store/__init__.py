"""The files of a results folder, free of torch: results rows, per-image correctness, checks,
glimpses, the data they were measured on, and their provenance."""
