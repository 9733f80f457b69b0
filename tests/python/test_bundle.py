"""Bundles round-trip exactly; the converter detects layouts and names what does not fit."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import bulkformer
from bulkformer.bundle import Bundle
from bulkformer.convert import import_checkpoint, infer_config
from bulkformer.model import BulkFormer, preset
from tests.conftest import load_reference, reference_config, write_official_release


def _tiny_bundle(version: str = "v2") -> Bundle:
    torch.manual_seed(1)
    name = "37M" if version == "v2" else "v1"
    config = preset(name, n_genes=40)
    config = type(config).from_dict({**config.to_dict(), "dim": 16, "full_head": 2, "p_repeat": 1, "gb_repeat": 1,
                                     "gene_table_dim": 8 if version == "v1" else None})
    model = BulkFormer(config, torch.randint(0, 40, (2, 120)), torch.rand(120)).eval()
    genes = pd.DataFrame({"ensembl_id": [f"ENSG{i:011d}" for i in range(40)], "symbol": [f"G{i}" for i in range(40)],
                          "length": [1000 + i if i % 3 else None for i in range(40)]})
    return Bundle(model=model, genes=genes, gene_features=torch.randn(40, 5), metadata={"note": "test"})


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_bundle_round_trip_is_exact(tmp_path, version):
    bundle = _tiny_bundle(version)
    bundle.save(tmp_path / "b")
    loaded = bulkformer.load(tmp_path / "b")
    assert loaded.config == bundle.config
    original, again = bundle.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == again.keys()
    for key in original:
        assert torch.equal(original[key], again[key]), key
    assert torch.equal(loaded.edge_index, bundle.edge_index)
    assert torch.equal(loaded.edge_weight, bundle.edge_weight)
    assert torch.equal(loaded.gene_features, bundle.gene_features)
    pd.testing.assert_frame_equal(loaded.genes, bundle.genes)
    assert loaded.metadata == {"note": "test"}
    x = torch.rand(3, 40) * 5
    x[:, :4] = -10
    with torch.inference_mode():
        assert torch.equal(bundle.model(x, 0.1).expr, loaded.model(x, 0.1).expr)


def test_save_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    bundle = _tiny_bundle()
    bundle.save(tmp_path / "b")
    bundle.save(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="import-checkpoint"):
        bulkformer.load(tmp_path / "model.pt")
    _tiny_bundle().save(tmp_path / "b")
    (tmp_path / "b" / "graph.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="graph.safetensors is missing"):
        bulkformer.load(tmp_path / "b")


@pytest.mark.parametrize("name,version,preset_name", [("v1_tiny", "v1", None), ("v2_tiny", "v2", None)])
def test_converter_detects_layout(tmp_path, name, version, preset_name):
    files = write_official_release(name, tmp_path / "release")
    bundle = import_checkpoint(**files)
    assert bundle.config.version == version
    config = reference_config(name)  # shapes come from the fixture, never assumed
    assert (bundle.config.n_genes, bundle.config.dim, bundle.config.full_head) == (
        config["gene_length"], config["dim"], config["full_head"])
    assert bundle.metadata["preset"] == preset_name
    assert bundle.gene_ids[0] == "ENSG00000000001"
    table = load_reference(name, "gene_emb")
    assert bundle.gene_features is not None and tuple(bundle.gene_features.shape) == tuple(table.shape)


def test_converter_recognises_published_presets():
    for name in ("37M", "147M", "v1"):
        model = BulkFormer(preset(name, n_genes=25), torch.zeros(2, 0, dtype=torch.long))
        config = infer_config(model.state_dict())
        assert config == preset(name, n_genes=25)
        from bulkformer.convert import preset_name
        assert preset_name(config) == name


def test_converter_names_what_does_not_fit(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    state = torch.load(files["checkpoint"], weights_only=True)
    state.pop("module.head.3.weight")
    torch.save(state, files["checkpoint"])
    with pytest.raises(ValueError, match="head.3.weight"):
        import_checkpoint(**files)
    torch.save({"foo": torch.zeros(2)}, files["checkpoint"])
    with pytest.raises(ValueError, match="not a BulkFormer checkpoint"):
        import_checkpoint(**files)
    pd.DataFrame({"gene": ["A"]}).to_csv(files["gene_info"], index=False)
    with pytest.raises(ValueError, match="ensg_id"):
        from bulkformer.convert import read_gene_info
        read_gene_info(files["gene_info"], 1)


def test_converter_reads_corrupt_and_wrapped_checkpoints_with_named_errors(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    raw = files["checkpoint"].read_bytes()
    state = torch.load(files["checkpoint"], weights_only=True)
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    # truncated download, empty file, a CSV where the checkpoint goes: no raw torch traceback
    for broken in (raw[: len(raw) // 2], b"", files["gene_info"].read_bytes()):
        files["checkpoint"].write_bytes(broken)
        with pytest.raises(ValueError, match=r"cannot read .*checkpoint.pt as a PyTorch .pt file: it is empty, truncated"):
            import_checkpoint(**files)
    # nested wrappers (DDP around DDP, DDP around torch.compile) are unwrapped like a single module. prefix
    for prefix in ("module.module.", "module._orig_mod.", "_orig_mod."):
        torch.save({"model": {prefix + k: v for k, v in plain.items()}, "epoch": 3}, files["checkpoint"])
        assert import_checkpoint(**files).config.n_genes == reference_config("v2_tiny")["gene_length"]
    torch.save({"net": plain, "epoch": torch.tensor(3)}, files["checkpoint"])
    with pytest.raises(ValueError, match=r"not a state dict .*keys \['net', 'epoch'\]"):
        import_checkpoint(**files)


def test_converter_names_graph_file_mixups(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    swapped = {**files, "graph": files["graph_weight"], "graph_weight": files["graph"]}
    with pytest.raises(ValueError, match=r"G_tiny_weight.pt holds a vector .* Were the two swapped"):
        import_checkpoint(**swapped)
    with pytest.raises(ValueError, match=r"G_tiny.pt should hold one weight per edge"):
        import_checkpoint(**{**files, "graph_weight": files["graph"]})
    other = tmp_path / "G_other.pt"
    torch.save(torch.load(files["graph"], weights_only=True)[:, :100].clone(), other)
    with pytest.raises(ValueError, match=r"5983 edge weights but the graph .*G_other.pt has 100 edges"):
        import_checkpoint(**{**files, "graph": other})
    torch.save(torch.load(files["graph"], weights_only=True) * 2, other)
    with pytest.raises(ValueError, match=r"the graph .*G_other.pt does not fit the checkpoint .*another vocabulary"):
        import_checkpoint(**{**files, "graph": other})
    with pytest.warns(UserWarning, match="no graph_weight given: every graph edge gets weight 1"):
        import_checkpoint(**{**files, "graph_weight": None})


def test_converter_reads_gene_info_variants(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    ids = pd.read_csv(files["gene_info"])["ensg_id"]
    one_column = tmp_path / "ids.csv"  # pandas' sniffer split this header at a letter
    ids.to_frame().to_csv(one_column, index=False)
    bundle = import_checkpoint(**{**files, "gene_info": one_column})
    assert bundle.gene_ids == ids.tolist()
    ids.to_frame().to_csv(tmp_path / "ids.tsv.gz", index=False, sep="\t")
    assert import_checkpoint(**{**files, "gene_info": tmp_path / "ids.tsv.gz"}).gene_ids == ids.tolist()
    blank = ids.copy().astype(object)
    blank[5] = None
    blank.to_frame().to_csv(one_column, index=False)
    with pytest.raises(ValueError, match=r"1 rows have no ensg_id \(lines \[7\]\)"):
        import_checkpoint(**{**files, "gene_info": one_column})
    with pytest.raises(ValueError, match=r"G_tiny.pt is not a text table: gene_info= takes"):
        import_checkpoint(**{**files, "gene_info": files["graph"]})


def test_loading_a_release_directory_says_to_convert_it(tmp_path):
    files = write_official_release("v2_tiny", tmp_path / "release")
    with pytest.raises(FileNotFoundError, match="not a model bundle but holds .pt files.*import-checkpoint"):
        bulkformer.load(files["checkpoint"].parent)


def test_a_bundle_prints_as_one_line_summary():
    # the dataclass default printed every weight tensor and the whole gene table (also via R's print(py$bundle))
    bundle = bulkformer.tiny_bundle(n_genes=300)
    text = repr(bundle)
    assert text == str(bundle) and "\n" not in text and len(text) < 200
    assert text.startswith("<bulkformer model: v2, 300 genes, dim 16, 1 Performer layer, feature dim 19, ")
    assert f"{bundle.edge_index.shape[1]:,} graph edges" in text and "random weights" in text


def test_converter_restores_performer_duplicates_and_warns_about_a_partial_graph(tmp_path):
    """A state dict without performer-pytorch's duplicate proj_updater.instance.* copies
    (safetensors' save_model drops them) was refused as missing keys; a graph of a smaller
    vocabulary was taken without a word; errors printed the config's dataclass repr."""
    files = write_official_release("v2_tiny", tmp_path / "release")
    reference = import_checkpoint(**files)
    state = torch.load(files["checkpoint"], weights_only=True)
    torch.save({k: v for k, v in state.items() if ".proj_updater." not in k}, files["checkpoint"])
    slim = import_checkpoint(**files)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(slim.model.state_dict()[key], value), key
    smaller = tmp_path / "G_small.pt"
    edges = torch.load(files["graph"], weights_only=True)
    kept = (edges < 100).all(dim=0)
    torch.save(edges[:, kept].clone(), smaller)
    weights = tmp_path / "G_small_weight.pt"
    torch.save(torch.load(files["graph_weight"], weights_only=True)[kept].clone(), weights)
    n_genes = reference_config("v2_tiny")["gene_length"]
    with pytest.warns(UserWarning, match=rf"G_small.pt only names genes 0-9\d of the checkpoint's {n_genes:,}: it looks "
                                         r"built for another vocabulary"):
        import_checkpoint(**{**files, "graph": smaller, "graph_weight": weights})
    state.pop("module.head.3.weight")
    torch.save(state, files["checkpoint"])
    width = reference_config("v2_tiny")["dim"]
    with pytest.raises(ValueError, match=rf"does not fit the layout read from it \(v2, {n_genes:,} genes, width {width}, "
                                         r"\d block"):
        import_checkpoint(**files)
    from bulkformer.convert import read_gene_info

    symbols = tmp_path / "symbols.csv"
    pd.DataFrame({"ensg_id": ["TSPAN6", "ENSG00000000005.6"]}).to_csv(symbols, index=False)
    with pytest.warns(UserWarning, match=r"1 of 2 ensg_id values are not human Ensembl gene IDs \(e\.g\. 'TSPAN6'\)"):
        read_gene_info(symbols, 2)
