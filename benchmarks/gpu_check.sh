#!/usr/bin/env bash
# On the lent GPU machine, from the repository root, with benchmarks/gpu_carry carried along
# (python -m benchmarks.gpu_check prepare builds it here): install the carried wheels into a scratch folder,
# then run the check. Figures go to $OUT/gpu_check.json when OUT is set.
set -euo pipefail
site=$(mktemp -d)
python -m pip install --quiet --no-index --no-deps --target "$site" benchmarks/gpu_carry/wheels/*.whl
PYTHONPATH="$site:$PWD" HPO_CACHE="$PWD/benchmarks/gpu_carry/cache" \
  timeout 450 python -m benchmarks.gpu_check run --json "${OUT:-.}/gpu_check.json"
