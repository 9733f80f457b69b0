"""The layout registry: every published layout is one module in model/layouts, declares
everything the package asks of it, and runs end to end; no code outside those modules
branches on a layout's name."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import bulkformer
from bulkformer.model import LAYOUTS, BulkFormer, config_from_dict

PACKAGE = Path(bulkformer.__file__).parent
LAYOUT_DIR = PACKAGE / "model" / "layouts"
# a comparison with a layout's name: == "v2", != 'latest', in ("v1", "v2"), version == ...
NAME_BRANCH = re.compile(r"""(==|!=|\bin)\s*[(\[{]?\s*["'](v1|v2|latest)["']|\.version\s*(==|!=|in\b)""")


def test_no_layout_name_branches_outside_the_layout_modules():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if LAYOUT_DIR in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_BRANCH.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "layout-name branches outside model/layouts:\n" + "\n".join(offenders)


def test_each_layout_is_one_module_and_registered():
    modules = {p.stem for p in LAYOUT_DIR.glob("*.py")} - {"__init__", "base"}
    assert modules == set(LAYOUTS) == {"v1", "v2", "latest"}
    for name, layout in LAYOUTS.items():
        assert layout.network.layout is layout and BulkFormer._networks[name] is layout.network
        assert layout.presets and set(layout.parameter_counts) <= set(layout.presets)
        assert layout.sample_pooling in ("max", "mean", "median", "all", "observed_mean")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_layout_runs_end_to_end(name, tmp_path):
    bundle = bulkformer.tiny_bundle(tmp_path / "model", n_genes=60, version=name)
    loaded = bulkformer.load(tmp_path / "model")
    assert config_from_dict(loaded.config.to_dict()) == bundle.config
    # the state dict read back recognises its own layout and shape
    assert loaded.layout.infer_config(loaded.model.state_dict()) == bulkformer.convert.infer_config(
        loaded.model.state_dict())
    x = torch.rand(3, 60) * 6
    x[:, ::7] = -10
    with torch.inference_mode():
        module = loaded.model(x, 0.1)
        fast = loaded.model.fast_path(gene_chunk=16)(x, 0.1, feature_index=torch.arange(60))
    assert float((module.expr - fast.expr).abs().max()) <= 1e-5
    assert float((module.features - fast.features).abs().max()) <= 1e-5
    cohort = bulkformer.simulate_cohort(n_samples=4, vocabulary=loaded.genes, n_genes=None, seed=1)
    frame = bulkformer.embed(cohort.counts, loaded, lengths=cohort.lengths, progress=False)
    assert frame.shape == (4, loaded.config.feature_dim) and np.isfinite(frame.to_numpy()).all()
    assert frame.attrs["aggregate"] == loaded.layout.sample_pooling
