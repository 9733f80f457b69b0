#!/usr/bin/env bash
# GPU readiness check (see benchmarks/gpu_check.py). Without a CUDA GPU it says it
# skipped and exits 0. Uses the project's .venv when there is one, else python3 with
# the source tree on PYTHONPATH (a bare GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
