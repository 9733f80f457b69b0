"""Every published preset builds at G = 20,010 with REFERENCE.md's exact parameter count."""
from __future__ import annotations

import pytest
import torch

from bulkformer.model import PARAMETER_COUNTS, BulkFormer, preset

EMPTY_GRAPH = torch.zeros(2, 0, dtype=torch.long)


@pytest.mark.parametrize("name", list(PARAMETER_COUNTS))
def test_preset_parameter_count(name):
    model = BulkFormer(preset(name), EMPTY_GRAPH)
    assert model.count_parameters() == PARAMETER_COUNTS[name]


def test_v1_preset_shape():
    config = preset("v1")
    assert (config.dim, config.gb_repeat, config.p_repeat, config.gene_table_dim) == (640, 3, 4, 1280)


def test_official_key_names_are_accepted_strictly():
    """A state dict with the published keys (duplicated proj_updater copies included) loads strictly."""
    model = BulkFormer(preset("37M", n_genes=30), EMPTY_GRAPH)
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    assert any(".proj_updater.instance." in k for k in state)
    twin = BulkFormer(preset("37M", n_genes=30), EMPTY_GRAPH)
    twin.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)


def test_bad_configs_are_rejected():
    from bulkformer.model import ModelConfig

    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(version="v2", n_genes=10, dim=30, gb_repeat=1, p_repeat=1, full_head=8)
    with pytest.raises(ValueError, match="gene_table_dim"):
        ModelConfig(version="v1", n_genes=10, dim=32, gb_repeat=1, p_repeat=1)
