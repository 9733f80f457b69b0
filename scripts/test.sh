#!/usr/bin/env bash
# All tests: Python unit/fidelity/CLI tests, cross-language agreement, R package check
# and vignette rendering all run as one pytest session (see tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
