# Two commands for a new user: `make setup`, then `make bench` (or `make test`).
PY := .venv/bin/python
BENCH := .venv/bin/bench
DEFAULT_MODELS := mgnet_small mgbase_small resnet_small

.PHONY: setup data test test-all bench report clean

setup: data
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@echo "setup done: try 'make bench' or '$(BENCH) --help'"

# Fashion-MNIST, base of the embedded default data set, from Debian where apt and root are available.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "warning: could not install dataset-fashion-mnist; 'bench train --download' can fetch it"; \
	else echo "note: no root apt: install dataset-fashion-mnist, set BENCH_FMNIST_DIR, or use --download"; fi

test:
	$(PY) -m pytest

test-all:
	$(PY) -m pytest -m ""

bench:
	$(BENCH) train $(DEFAULT_MODELS) --data cluttered_fmnist --if-missing
	$(BENCH) run --config results/default/run.toml
	@echo "open results/default/report.md"

report:
	$(BENCH) report results/default

clean:
	rm -rf .cache/bench
