"""Running R from the tests: the package installed once into a private library, and
Rscript subprocesses bound to this checkout's Python through RETICULATE_PYTHON.

reticulate 1.28 cannot share a process with rpy2, so everything that loads the R
package (and with it reticulate) runs in an ``Rscript`` subprocess; rpy2, where a test
uses it, stays in the pytest process and never touches reticulate."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
R_PACKAGE = REPO_ROOT / "rpackage"


def have_r() -> bool:
    return shutil.which("R") is not None and shutil.which("Rscript") is not None


def repo_python() -> str:
    """The checkout's virtualenv Python (what bootstrap.sh builds), else this interpreter."""
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def r_environment(library: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for R subprocesses: the private library first on R_LIBS, reticulate
    pinned to the repo's Python (no Miniconda prompt), and as many BLAS/OpenMP threads as
    this process's torch uses unless set (a different count rounds float32 sums in another
    order: R and Python then differ by an ulp, ~1e-6 for values near 8)."""
    torch = sys.modules.get("torch")
    threads = os.environ.get("OMP_NUM_THREADS") or (str(torch.get_num_threads()) if torch is not None else "1")
    env = dict(os.environ)
    env.update(
        RETICULATE_PYTHON=repo_python(),
        RETICULATE_MINICONDA_ENABLED="FALSE",
        OMP_NUM_THREADS=threads,
    )
    if library is not None:
        env["R_LIBS"] = os.pathsep.join(p for p in (str(library), os.environ.get("R_LIBS", "")) if p)
    env.update(extra)
    return env


def install_r_package(library: Path) -> Path:
    """``R CMD INSTALL rpackage`` into ``library`` (created if needed); returns it."""
    library.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["R", "CMD", "INSTALL", "--no-test-load", "-l", str(library), str(R_PACKAGE)],
                            cwd=library, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"R CMD INSTALL rpackage failed:\n{result.stdout}\n{result.stderr}")
    return library


def run_rscript(args: list[str], *, library: Path | None, cwd: Path, timeout: int = 900,
                **extra_env: str) -> subprocess.CompletedProcess:
    """``Rscript <args>`` with :func:`r_environment`; raises with R's output when it fails."""
    result = subprocess.run(["Rscript", *args], cwd=cwd, env=r_environment(library, **extra_env),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"Rscript {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result
