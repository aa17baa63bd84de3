# Two commands for a new user: `make setup`, then `make bench` (or `make test`).
PY := .venv/bin/python
BENCH := .venv/bin/bench
DEFAULT_MODELS := mgnet_small mgbase_small resnet_small

.PHONY: setup data test test-all bench weights perf report clean

setup: data
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@echo "setup done: try 'make bench' or '$(BENCH) --help'"

# Debian packages: Fashion-MNIST (base of the embedded default data set) and chromium (renders
# report.html headlessly in a test), installed where apt and root are available.
DEBIAN_PKGS := dataset-fashion-mnist chromium
data:
	@missing=""; [ -d /usr/share/datasets/fashion-mnist ] || missing="dataset-fashion-mnist"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then echo "Debian packages: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) \
	  || echo "warning: could not install$$missing; 'bench train --download' can fetch Fashion-MNIST"; \
	else echo "note: no root apt: install$$missing (or set BENCH_FMNIST_DIR / use --download)"; fi

# ruff first: lint and layout take seconds, the tests minutes
test:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

test-all:
	$(PY) -m pytest -m ""

# The default models' shipped weights (models/weights/): nothing is trained.
bench:
	$(BENCH) run --config results/default/run.toml
	@echo "open results/default/report.md"

# Maintainers: train the default models with the shared recipe and ship their weights.
weights:
	$(BENCH) train $(DEFAULT_MODELS) --data cluttered_fmnist --ship

# Peer ratios (a benchmark, not a test): PGD, AutoAttack, corruptions, clean throughput, first make bench.
perf:
	$(PY) benchmarks/perf.py

report:
	$(BENCH) report results/default

clean:
	rm -rf .cache/bench
