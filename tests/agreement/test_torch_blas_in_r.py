"""Inside R, torch must use its own BLAS (MKL), not R's.

R puts its BLAS (reference BLAS on Debian) into the global symbol scope, and
libtorch_cpu.so exports MKL's ``sgemm_`` & co. with default visibility, so when
reticulate imports torch into an R process its matrix products bind to R's BLAS:
~15x slower and ~1e-6 off the numbers the same Python code gives under python.
The R package therefore imports torch with ``RTLD_DEEPBIND`` before its first
Python use (``.import_torch_with_own_blas`` in zzz.R). This test runs the R package as a user does and
compares a float32 matrix product with the one computed by python."""
from __future__ import annotations

import subprocess

import pytest

from tests.r_helpers import have_r, repo_python, run_rscript

pytestmark = pytest.mark.skipif(not have_r(), reason="R is not installed")

CHECKSUM = (
    "import torch\n"
    "g = torch.Generator().manual_seed(0)\n"
    "a = torch.randn(256, 64, generator=g); w = torch.randn(64, 64, generator=g)\n"
    "print(repr(float((a @ w).double().abs().sum())))\n"
)


def test_torch_matrix_products_in_r_match_python(installed_r_library, tmp_path):
    python = subprocess.run([repo_python(), "-c", CHECKSUM], capture_output=True, text=True, check=True)
    script = tmp_path / "blas.R"
    script.write_text(
        "suppressPackageStartupMessages(library(bulkformer))\n"
        "stopifnot(bulkformer_available())  # imports the Python package (and torch) the package's way\n"
        f"reticulate::py_run_string({CHECKSUM!r})\n"
    )
    in_r = run_rscript([str(script)], library=installed_r_library, cwd=tmp_path)
    assert in_r.stdout.strip().splitlines()[-1] == python.stdout.strip()
