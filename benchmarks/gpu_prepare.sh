#!/usr/bin/env bash
# Packs what benchmarks/gpu_checks.sh needs on a lent GPU machine into .gpu/ (git-ignored; carry it):
# wheels of the packages its image lacks, the Fashion-MNIST files and the trained default checkpoints.
# Run here, after `make setup` and `make bench`: bash benchmarks/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
rm -rf .gpu && mkdir -p .gpu/whl .gpu/fmnist .gpu/cache
# Pure-Python packages (any Python 3): built here as wheels, installed there with --no-deps beside its torch.
# pyautoattack (42 MB) stays behind: the checks run no AutoAttack.
pins=$($PY -c "from importlib.metadata import version as v
print(' '.join(f'{p}=={v(p)}' for p in ('fvcore', 'iopath', 'yacs', 'termcolor', 'torchattacks', 'imagecorruptions-imaug')))")
$PY -m pip wheel --quiet --no-deps -w .gpu/whl $pins
fmnist=$($PY -c "from bench.data import fmnist; print(fmnist.find_dir())")
cp "$fmnist"/*-idx?-ubyte.gz .gpu/fmnist/
cache=$($PY -c "from bench.data import cache_dir; print(cache_dir())")
for m in mgnet_small mgbase_small resnet_small; do
  test -f "$cache/checkpoints/cluttered_fmnist/$m.pt" || { echo "no $m checkpoint: run 'make bench' first" >&2; exit 1; }
done
cp -r "$cache/checkpoints" .gpu/cache/
du -sh .gpu
