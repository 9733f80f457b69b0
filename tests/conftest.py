"""Shared test helpers: where ../shared is, and official-release-shaped fixtures."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BULKFORMER_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE = SHARED / "fixtures" / "reference"


def require_shared(*parts: str) -> Path:
    """Path inside ../shared, or skip the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is absent)")
    return path


def load_reference(name: str, item: str) -> torch.Tensor:
    return torch.load(require_shared("fixtures", "reference", name, f"{item}.pt"), weights_only=True)


def reference_config(name: str) -> dict:
    return json.loads((require_shared("fixtures", "reference", name) / "config.json").read_text())


def write_official_release(name: str, directory: Path) -> dict[str, Path]:
    """Lay out a reference fixture as the official release ships: checkpoint, gene-info
    CSV (ensg_id), G_*.pt, G_*_weight.pt and esm2_feature_concat.pt."""
    source = require_shared("fixtures", "reference", name)
    n_genes = reference_config(name)["gene_length"]
    directory.mkdir(parents=True, exist_ok=True)
    gene_info = directory / "bulkformer_gene_info.csv"
    pd.DataFrame({
        "ensg_id": [f"ENSG{i:011d}" for i in range(1, n_genes + 1)],
        "gene_symbol": [f"GENE{i}" for i in range(1, n_genes + 1)],
    }).to_csv(gene_info, index=False)
    files = {
        "checkpoint": directory / "checkpoint.pt",
        "graph": directory / "G_tiny.pt",
        "graph_weight": directory / "G_tiny_weight.pt",
        "gene_features": directory / "esm2_feature_concat.pt",
    }
    for key, src in (("checkpoint", "checkpoint"), ("graph", "graph"), ("graph_weight", "graph_weight"), ("gene_features", "gene_emb")):
        files[key].write_bytes((source / f"{src}.pt").read_bytes())
    files["gene_info"] = gene_info
    return files


@pytest.fixture(scope="session")
def reference_bundles(tmp_path_factory) -> dict[str, Path]:
    """The v1 and v2 reference fixtures imported into bundles through the public converter."""
    from bulkformer.convert import import_checkpoint

    root = tmp_path_factory.mktemp("bundles")
    paths = {}
    for name in ("v1_tiny", "v2_tiny"):
        files = write_official_release(name, root / f"{name}_release")
        import_checkpoint(**files, out=root / name)
        paths[name] = root / name
    return paths


@pytest.fixture(scope="session")
def installed_r_library(tmp_path_factory) -> Path:
    """The R package installed once per session into a private library (skips without R)."""
    from tests.r_helpers import have_r, install_r_package

    if not have_r():
        pytest.skip("R is not installed")
    return install_r_package(tmp_path_factory.mktemp("rlib"))


@dataclass
class Done:
    """What a command-line run left: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def run_cli(args: list[str], capsys, monkeypatch, env: dict[str, str] | None = None) -> Done:
    """Run `bulkformer ARGS` in-process through the real entry point, as a user meets it
    (exit codes and one-line errors included)."""
    from bulkformer.cli import main

    monkeypatch.setattr(sys, "argv", ["bulkformer", *map(str, args)])
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capsys.readouterr()
    return Done(code, captured.out, captured.err)
