#!/usr/bin/env bash
# The project's test suite: library/notebook sync, notebook tests, integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== nbdev-export: the library must be what the notebooks export"
nbdev-export
changes=$(git status --porcelain -- hcmtl/ README.md)
if [ -n "$changes" ]; then
  echo "hcmtl/ is out of sync with the notebooks (edit the notebook, then run nbdev-export and commit):"
  echo "$changes"; git --no-pager diff --stat -- hcmtl/; exit 1
fi
echo "== README.md must be generated from index.ipynb"
python tools/make_readme.py --check
echo "== nbdev-test (notebooks; flags slow/cuda/notest skipped)"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nbdev-test --n-workers "${NB_WORKERS:-2}"
echo "== pytest (integration tests)"
python -m pytest -q -x tests
