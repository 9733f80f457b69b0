"""The R package: one DESCRIPTION, docs regenerated, `R CMD build` (vignettes built) +
`R CMD check --no-manual` ending `Status: OK`, BiocCheck with 0 errors, 0 warnings and at
most 3 notes, and its testthat suite, examples and vignettes actually running against
this Python (RETICULATE_PYTHON) on the engine-core fixture bundle."""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bulkformer
from tests.conftest import REPO_ROOT

R_PACKAGE = REPO_ROOT / "rpackage"
pytestmark = pytest.mark.skipif(shutil.which("R") is None, reason="R is not installed")


def _dcf(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in path.read_text().splitlines():
        if line[:1].isspace() and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def test_description_has_one_source_and_matches_the_python_package():
    top, package = REPO_ROOT / "DESCRIPTION", R_PACKAGE / "DESCRIPTION"
    # rpackage/DESCRIPTION is a symlink to the top-level file; R CMD build copies its content
    assert package.read_bytes() == top.read_bytes(), "rpackage/DESCRIPTION drifted from DESCRIPTION"
    fields = _dcf(top)
    assert fields["Package"] == "bulkformer"
    assert fields["Version"] == bulkformer.__version__
    for imported in ("reticulate", "SummarizedExperiment", "S4Vectors", "methods"):
        assert imported in fields["Imports"]
    for suggested in ("DESeq2", "testthat", "knitr", "rmarkdown"):
        assert suggested in fields["Suggests"]
    assert "Python (>= 3.10)" in fields["SystemRequirements"] and "bulkformer" in fields["SystemRequirements"]
    for required in ("biocViews", "Authors@R", "URL", "BugReports"):
        assert fields.get(required), f"DESCRIPTION lacks {required}"


# testthat cases that need the v2_tiny fixture bundle (../shared); skipped without it
FIXTURE_TESTS = 2


def _r_environment(bundle: Path | None) -> dict[str, str]:
    env = dict(
        os.environ,
        RETICULATE_PYTHON=sys.executable,
        RETICULATE_MINICONDA_ENABLED="FALSE",
        BULKFORMER_REQUIRE_PYTHON="true",
        OMP_NUM_THREADS="1",
        _R_CHECK_FUTURE_FILE_TIMESTAMPS_="false",  # needs the network
        _R_CHECK_SYSTEM_CLOCK_="false",
    )
    env.pop("BULKFORMER_TEST_BUNDLE", None)
    if bundle is not None:
        env["BULKFORMER_TEST_BUNDLE"] = str(bundle)
    return env


def _fixture_bundle(request) -> Path | None:
    try:
        return request.getfixturevalue("reference_bundles")["v2_tiny"]
    except pytest.skip.Exception:
        return None


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def r_check(request, tmp_path_factory) -> Path:
    """Build the tarball and check it once for this module; returns the .Rcheck directory."""
    work = tmp_path_factory.mktemp("rcheck")
    bundle = _fixture_bundle(request)
    (work / "fixture-bundle").write_text("" if bundle is None else str(bundle))
    env = _r_environment(bundle)
    # vignettes built: R CMD check then runs and re-builds them too
    build = _run(["R", "CMD", "build", "--no-manual", str(R_PACKAGE)], work, env)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(work.glob("bulkformer_*.tar.gz"))
    check = _run(["R", "CMD", "check", "--no-manual", tarball.name], work, env)
    rcheck = work / "bulkformer.Rcheck"
    (rcheck / "check-output.txt").write_text(check.stdout + check.stderr)
    return rcheck


def test_r_cmd_check_status_is_ok(r_check):
    log = (r_check / "00check.log").read_text()
    status = re.search(r"^Status: (.*)$", log, re.MULTILINE)
    assert status, (r_check / "check-output.txt").read_text()
    assert status.group(1) == "OK", log
    # the vignettes were built into the tarball and re-built by the check
    assert "checking re-building of vignette outputs ... OK" in log, log


# BiocCheck's checks that need the internet (and the version check, which does too)
BIOCCHECK_OFFLINE = ("no-check-deprecated", "no-check-remotes", "no-check-bioc-views", "no-check-bioc-help",
                     "no-check-CRAN", "no-check-version-num")


@pytest.mark.skipif(subprocess.run(["Rscript", "-e", "library(BiocCheck)"], capture_output=True).returncode != 0
                    if shutil.which("Rscript") else True, reason="BiocCheck is not installed (r-bioc-bioccheck)")
def test_bioccheck_of_the_built_tarball(r_check):
    """Bioconductor's own review: 0 ERRORS | 0 WARNINGS | <= 3 NOTES (the ORCID one may stay)."""
    tarball = next(r_check.parent.glob("bulkformer_*.tar.gz"))
    options = ", ".join(f'"{name}" = TRUE' for name in BIOCCHECK_OFFLINE)
    result = _run(["Rscript", "-e", f'BiocCheck::BiocCheck("{tarball.name}", {options})'], r_check.parent,
                  _r_environment(None))
    output = result.stdout + result.stderr
    summary = re.search(r"(\d+) ERRORS \| (\d+) WARNINGS \| (\d+) NOTES", output)
    assert summary, output[-5000:]
    errors, warnings, notes = map(int, summary.groups())
    assert (errors, warnings) == (0, 0) and notes <= 3, output[-5000:]


def test_testthat_suite_ran_every_test_against_python(r_check):
    outputs = sorted((r_check / "tests").glob("testthat.Rout*"))
    assert outputs, f"no testthat output in {r_check / 'tests'}"
    text = outputs[-1].read_text()
    summaries = re.findall(r"\[ FAIL (\d+) \| WARN (\d+) \| SKIP (\d+) \| PASS (\d+) \]", text)
    assert summaries, text[-3000:]
    failed, warned, skipped, passed = map(int, summaries[-1])
    allowed_skips = FIXTURE_TESTS if not (r_check.parent / "fixture-bundle").read_text() else 0
    assert (failed, warned) == (0, 0) and skipped <= allowed_skips, text[-5000:]
    assert passed >= 60, f"only {passed} expectations passed"


def test_examples_ran_the_python_code(r_check):
    examples = (r_check / "bulkformer-Ex.Rout").read_text()
    # printed by the load_bulkformer_model() example, inside `if (bulkformer_available())`
    assert "<bulkformer model: v2, 50 genes" in examples


def test_roxygen_output_is_committed(tmp_path):
    """NAMESPACE and man/ are generated by roxygen2 from R/ and must be up to date."""
    copy = tmp_path / "bulkformer"
    shutil.copytree(R_PACKAGE, copy, symlinks=False)
    shutil.rmtree(copy / "man")
    result = _run(["Rscript", "-e", "suppressMessages(roxygen2::roxygenise('.'))"], copy, dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert (copy / "NAMESPACE").read_text() == (R_PACKAGE / "NAMESPACE").read_text()
    generated = sorted(p.name for p in (copy / "man").glob("*.Rd"))
    assert generated == sorted(p.name for p in (R_PACKAGE / "man").glob("*.Rd"))
    mismatched = [name for name in generated if not filecmp.cmp(copy / "man" / name, R_PACKAGE / "man" / name, shallow=False)]
    assert not mismatched, f"re-run roxygen2::roxygenise('rpackage') and commit: {mismatched}"


@pytest.fixture(scope="module")
def r_library(installed_r_library) -> Path:
    """The package installed from source into a private library (once per session, tests/conftest.py)."""
    return installed_r_library


def test_install_bulkformer_builds_an_offline_virtualenv_that_use_bulkformer_python_selects(tmp_path, r_library):
    """install_bulkformer() with --no-index: a stub Python package named bulkformer and
    numpy<2 from a local wheel directory; a fresh R session then binds to that venv."""
    stub = tmp_path / "stub"
    (stub / "bulkformer").mkdir(parents=True)
    (stub / "bulkformer" / "__init__.py").write_text("MARKER = 'stub-from-wheelhouse'\n")
    (stub / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "bulkformer"\nversion = "0.0.1"\n'
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(stub)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    numpy = subprocess.run([sys.executable, "-m", "pip", "download", "numpy<2", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels)],
                           capture_output=True, text=True)
    if numpy.returncode != 0:
        pytest.skip(f"no numpy<2 wheel reachable to fill the wheel directory: {numpy.stderr[-300:]}")
    wheel = next(wheels.glob("bulkformer-0.0.1-*.whl"))
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "RETICULATE_PYTHON"}
    env.update(RETICULATE_MINICONDA_ENABLED="FALSE", R_LIBS=str(r_library))
    base_python = getattr(sys, "_base_executable", sys.executable)
    install = _run(["Rscript", "-e", f"bulkformer::install_bulkformer('{wheel}', envname = '{venv}', python = '{base_python}', find_links = '{wheels}')"],
                   tmp_path, env)
    assert install.returncode == 0, install.stdout + install.stderr
    probe = _run(["Rscript", "-e", f"""
        bulkformer::use_bulkformer_python(envname = '{venv}')
        cat(reticulate::py_config()$python, reticulate::import('bulkformer')$MARKER,
            reticulate::import('numpy')$`__version__`, bulkformer::bulkformer_available(), sep = '\\n')
    """], tmp_path, env)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    python, marker, numpy_version, available = probe.stdout.strip().splitlines()[-4:]
    assert Path(python).resolve().parent.parent == venv.resolve() or Path(python).parent.parent == venv
    assert marker == "stub-from-wheelhouse"
    assert int(numpy_version.split(".")[0]) < 2
    assert available == "FALSE"  # a stub without the inference API is not enough


def test_loading_the_package_does_not_start_python(r_library):
    """.onLoad only registers a delayed import: no Python, no download, until first use."""
    env = dict(os.environ, R_LIBS=str(r_library), RETICULATE_PYTHON=sys.executable)
    result = _run(["Rscript", "-e", "library(bulkformer); cat(reticulate::py_available(initialize = FALSE))"], r_library, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("FALSE")
