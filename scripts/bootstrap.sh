#!/usr/bin/env bash
# Idempotent setup on a fresh Debian machine: the R stack from Debian's packages and
# the Python environment in .venv (numpy<2, because reticulate 1.28 reads NumPy 1.x only).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  r-base-core r-base-dev r-cran-reticulate r-bioc-summarizedexperiment r-bioc-deseq2
  r-cran-testthat r-cran-knitr r-cran-rmarkdown pandoc r-bioc-org.hs.eg.db r-bioc-genelendatabase
  r-cran-roxygen2 r-cran-withr  # the docs-are-current test and the R package's Suggests
  r-bioc-bioccheck  # tests/rpackage: BiocCheck of the built tarball
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON_BIN="${PYTHON:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON_BIN="$candidate"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned: the CPU wheel on disk; a bare requirement would pull a CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0" "numpy<2"
"${PIP[@]}" -e ".[test]" "numpy<2" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import bulkformer, numpy; assert numpy.__version__ < '2', numpy.__version__"
echo "bootstrap: ready (.venv/bin/bulkformer)"
