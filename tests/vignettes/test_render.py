"""Every vignette renders to HTML with at least one figure.

R Markdown vignettes live in the R package (``rpackage/vignettes``, where ``R CMD build``
builds them; this is their one source) and are knitted by rmarkdown in an Rscript
subprocess (the R package from a private library, reticulate bound to this checkout's
Python); the Python quickstart, a jupytext script in ``vignettes/``, is executed with
nbclient and exported with nbconvert. The HTML is written to ``vignettes/<name>.html``
(gitignored), replaced atomically."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.r_helpers import REPO_ROOT, have_r, run_rscript

VIGNETTES = REPO_ROOT / "vignettes"
R_PACKAGE_VIGNETTES = REPO_ROOT / "rpackage" / "vignettes"
R_VIGNETTES = ["bulkformer-bioconductor.Rmd", "bulkformer-mixed-report.Rmd"]
PYTHON_VIGNETTES = ["bulkformer-python-quickstart.py"]
FIGURE = re.compile(r'<img[^>]*src="data:image/(?:png|svg\+xml);base64,[A-Za-z0-9+/]{200}')


def _publish(rendered: Path, name: str) -> Path:
    """Move a rendered HTML into vignettes/ without ever leaving a partial file there."""
    target = VIGNETTES / name
    staging = VIGNETTES / f".{name}.tmp"
    shutil.copyfile(rendered, staging)
    os.replace(staging, target)
    return target


def _assert_rendered(html: Path) -> str:
    assert html.exists(), f"{html} was not written"
    text = html.read_text(encoding="utf-8")
    figures = FIGURE.findall(text)
    assert figures, f"{html.name} has no inline figure"
    return text


def test_driver_covers_every_vignette():
    python = sorted(p.name for p in VIGNETTES.iterdir() if p.suffix in (".Rmd", ".py"))
    r = sorted(p.name for p in R_PACKAGE_VIGNETTES.iterdir() if p.suffix in (".Rmd", ".py"))
    # one source per vignette: the R ones in the R package only
    assert (python, r) == (PYTHON_VIGNETTES, sorted(R_VIGNETTES)), "add new vignettes to tests/vignettes/test_render.py"


@pytest.mark.skipif(not have_r(), reason="R is not installed")
@pytest.mark.parametrize("source", R_VIGNETTES)
def test_r_markdown_vignette_renders_with_figures(source, installed_r_library, tmp_path):
    copy = tmp_path / source
    shutil.copyfile(R_PACKAGE_VIGNETTES / source, copy)
    run_rscript([str(Path(__file__).with_name("render.R")), str(copy)], library=installed_r_library,
                cwd=tmp_path, timeout=1200)
    name = Path(source).with_suffix(".html").name
    text = _assert_rendered(_publish(tmp_path / name, name))
    assert "bulkformer" in text and "Error" not in re.sub(r"<script.*?</script>", "", text, flags=re.S)
    if "mixed" in source:
        # the Python chunks really ran, and their matplotlib figure made it into the page
        assert text.count('<pre class="python"') >= 3
        assert "cross-validated tissue accuracy" in text
        assert len(FIGURE.findall(text)) >= 3


@pytest.mark.parametrize("source", PYTHON_VIGNETTES)
def test_python_notebook_vignette_executes_with_figures(source, tmp_path):
    jupytext = pytest.importorskip("jupytext")
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = jupytext.read(VIGNETTES / source)
    # IPC sockets in tmp_path: the kernel needs no TCP port
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    NotebookClient(notebook, km=manager, timeout=900, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    body, _ = HTMLExporter().from_notebook_node(notebook)
    name = Path(source).with_suffix(".html").name
    rendered = tmp_path / name
    rendered.write_text(body, encoding="utf-8")
    text = _assert_rendered(_publish(rendered, name))
    assert len(FIGURE.findall(text)) >= 2
    assert "X_bulkformer" in text and "bulkformer_imputed" in text
