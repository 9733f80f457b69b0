"""Official releases in users' hands: a release folder is verified file by file before
anything is read, bundles carry checksums that loading and `bulkformer verify` check, and
`download` fetches a release from a loopback server (clean, corrupted, truncated,
interrupted then resumed)."""
from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import bulkformer
from bulkformer.checksums import IntegrityError
from bulkformer.cli import app
from bulkformer.convert import import_checkpoint
from bulkformer.download import DownloadError, download_release
from tests.conftest import require_shared, run_cli

runner = CliRunner()


class _Ran:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code, self.output = exit_code, output


@pytest.fixture
def cli(monkeypatch, capsys):
    """The command line as a user meets it (exit codes and messages from its entry point)."""

    def run(args: list[str]) -> _Ran:
        done = run_cli(args, capsys, monkeypatch)
        assert "Traceback" not in done.err, done.err
        return _Ran(done.code, done.out + done.err)

    return run


def latest_release() -> Path:
    return require_shared("fixtures", "reference", "latest_tiny", "bulkformer-latest")


def download_manifest() -> Path:
    return require_shared("fixtures", "reference", "latest_tiny", "download_manifest.json")


def _flip_byte(path: Path, position: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if position is None else position] ^= 0x01
    path.write_bytes(bytes(data))


def test_import_checkpoint_of_a_release_then_info_reports_verified_checksums(tmp_path):
    out = tmp_path / "m"
    result = runner.invoke(app, ["import-checkpoint", str(latest_release()), "-o", str(out),
                                 "--download-manifest", str(download_manifest())])
    assert result.exit_code == 0, result.output
    manifest = json.loads((latest_release() / "manifest.json").read_text())
    summary = json.loads(runner.invoke(app, ["info", str(out)]).output)
    assert summary["config"]["version"] == "latest"
    assert summary["parameters"] == manifest["trainable_parameters"]
    assert summary["checksums"].startswith("verified: ") and "match checksums.json" in summary["checksums"]


@pytest.mark.parametrize("damaged", ["model.pt", "gene_vocab.csv", "edge_weight.pt"])
def test_a_damaged_release_file_exits_2_names_it_and_writes_nothing(tmp_path, damaged, cli):
    release = tmp_path / "release"
    shutil.copytree(latest_release(), release)
    _flip_byte(release / damaged)
    result = cli(["import-checkpoint", str(release), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert damaged in result.output and "download" in result.output
    assert not (tmp_path / "m").exists()
    with pytest.raises(IntegrityError, match=damaged):
        bulkformer.load(release)


def test_the_download_manifest_is_checked_too(tmp_path, cli):
    manifest = json.loads(download_manifest().read_text())
    manifest["files"]["edge_index.pt"]["sha256"] = "0" * 64
    other = tmp_path / "download.json"
    other.write_text(json.dumps(manifest))
    result = cli(["import-checkpoint", str(latest_release()), "-o", str(tmp_path / "m"),
                  "--download-manifest", str(other)])
    assert result.exit_code == 2 and "edge_index.pt" in result.output and not (tmp_path / "m").exists()


@pytest.mark.parametrize("layout", ["latest", "v2"])
def test_verify_passes_then_names_any_changed_file(tmp_path, layout, request, cli):
    bundle_dir = tmp_path / "bundle"
    if layout == "latest":
        bulkformer.load(latest_release()).save(bundle_dir)
    else:
        shutil.copytree(request.getfixturevalue("reference_bundles")["v2_tiny"], bundle_dir)
    ok = cli(["verify", str(bundle_dir)])
    assert ok.exit_code == 0 and "match checksums.json" in ok.output
    files = sorted(p.name for p in bundle_dir.iterdir() if p.name != "checksums.json")
    assert {"config.json", "model.safetensors", "genes.tsv", "graph.safetensors"} <= set(files)
    for name in files:
        original = (bundle_dir / name).read_bytes()
        _flip_byte(bundle_dir / name, position=len(original) - 2)
        failed = cli(["verify", str(bundle_dir)])
        assert failed.exit_code == 2 and name in failed.output, (name, failed.output)
        with pytest.raises(IntegrityError, match=name):
            bulkformer.load(bundle_dir)
        (bundle_dir / name).write_bytes(original)
    assert cli(["verify", str(bundle_dir)]).exit_code == 0


class _Release(BaseHTTPRequestHandler):
    """Serves the fixture release by name; ``behaviour`` says how to misbehave."""

    files: dict[str, bytes] = {}
    behaviour: dict[str, str] = {}
    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.strip("/")
        self.requests.append((name, self.headers.get("Range")))
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        how = self.behaviour.get(name)
        if how == "corrupt":
            data = data[:10] + bytes([data[10] ^ 1]) + data[11:]
        elif how == "truncate":
            data = data[: len(data) // 2]
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if how == "drop" and start == 0:  # the first transfer stops half-way, the connection closes
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def server():
    _Release.files = {p.name: p.read_bytes() for p in latest_release().iterdir()}
    _Release.behaviour, _Release.requests = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Release)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _download(url: str, out: Path, **kwargs) -> Path:
    return download_release("latest", out, manifest=download_manifest(), base_url=url, progress=False, timeout=10,
                            **kwargs)


def test_download_clean_then_nothing_again(server, tmp_path):
    folder = _download(server, tmp_path / "latest")
    for name in json.loads(download_manifest().read_text())["files"]:
        assert (folder / name).read_bytes() == (latest_release() / name).read_bytes()
    assert not list(folder.glob("*.part"))
    manifest = json.loads((latest_release() / "manifest.json").read_text())
    assert bulkformer.load(folder).model.count_parameters() == manifest["trainable_parameters"]
    served = len(_Release.requests)
    _download(server, tmp_path / "latest")  # complete and verified: nothing fetched again
    assert len(_Release.requests) == served


def test_download_of_a_corrupted_file_names_it_and_keeps_nothing_of_it(server, tmp_path):
    _Release.behaviour["model.pt"] = "corrupt"
    with pytest.raises(IntegrityError, match="model.pt"):
        _download(server, tmp_path / "latest")
    assert not (tmp_path / "latest" / "model.pt").exists() and not (tmp_path / "latest" / "model.pt.part").exists()


def test_download_of_a_truncated_file_fails_naming_it(server, tmp_path):
    _Release.behaviour["gene_vocab.csv"] = "truncate"
    with pytest.raises(DownloadError, match="gene_vocab.csv"):
        _download(server, tmp_path / "latest", retries=1)
    assert not (tmp_path / "latest" / "gene_vocab.csv").exists()


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    _Release.behaviour["model.pt"] = "drop"
    folder = _download(server, tmp_path / "latest")
    assert (folder / "model.pt").read_bytes() == (latest_release() / "model.pt").read_bytes()
    ranges = [r for name, r in _Release.requests if name == "model.pt"]
    assert ranges[0] is None and ranges[1] is not None and int(ranges[1].split("=")[1].rstrip("-")) > 0


def test_download_without_a_network_says_where_to_put_the_files(tmp_path, cli):
    result = cli(["download", "latest", "-o", str(tmp_path / "x"), "--no-progress",
                  "--base-url", "http://127.0.0.1:9"])  # nothing listens on the discard port
    assert result.exit_code == 2
    assert "download the release's files by hand" in result.output and str(tmp_path / "x") in result.output


def _published_normalize_and_align(counts: pd.DataFrame, lengths: dict, gene_list: list[str]) -> np.ndarray:
    """The published v1/v2 notebook's two steps, written out: counts (samples x genes)
    -> TPM with the authors' length table (1,000 bp for genes it lacks; every input gene
    in the denominator) -> natural log1p; then the vocabulary axis, -10 where absent."""
    kb = np.array([lengths.get(gene, 1000) / 1000 for gene in counts.columns])
    rate = counts.to_numpy(dtype=np.float64) / kb
    log_tpm = np.log1p(rate / rate.sum(axis=1, keepdims=True) * 1e6)
    frame = pd.DataFrame(log_tpm, index=counts.index, columns=counts.columns)
    return frame.reindex(columns=gene_list).fillna(-10.0).to_numpy(dtype=np.float64)


def test_a_v2_release_with_its_length_table_prepares_tcga_counts_as_the_release_does(tmp_path):
    counts_path = require_shared("data", "tcga", "TCGA_CHOL_Counts.exp.gz")
    table_path = require_shared("data", "published", "gene_length_df.csv.gz")
    # a v2 release over real genes, laid out as the authors ship one
    model = bulkformer.tiny_bundle(n_genes=400)
    checkpoint, gene_info = tmp_path / "checkpoint.pt", tmp_path / "bulkformer_gene_info.csv"
    torch.save({f"module.{k}": v for k, v in model.model.state_dict().items()}, checkpoint)
    pd.DataFrame({"ensg_id": model.gene_ids}).to_csv(gene_info, index=False)
    torch.save(model.edge_index.clone(), tmp_path / "G.pt")
    torch.save(model.edge_weight.clone(), tmp_path / "G_weight.pt")
    release = dict(checkpoint=checkpoint, gene_info=gene_info, graph=tmp_path / "G.pt",
                   graph_weight=tmp_path / "G_weight.pt")
    with pytest.warns(UserWarning, match=r"no gene_lengths given.*gene_length_df.csv"):
        import_checkpoint(**release)
    bundle = import_checkpoint(**release, gene_lengths=table_path, out=tmp_path / "bundle")
    bundle = bulkformer.load(tmp_path / "bundle")  # the table travels with the bundle
    assert bundle.length_table is not None and len(bundle.length_table) > 70_000

    counts = pd.read_csv(counts_path, sep="\t", index_col=0)
    table = pd.read_csv(table_path)
    expected = _published_normalize_and_align(counts.T, dict(zip(table["ensg_id"], table["length"])), bundle.gene_ids)
    prepared = bulkformer.prepare(counts_path, bundle, orientation="genes_by_samples")
    assert prepared.values.shape == expected.shape
    assert float(np.abs(prepared.values - expected).max()) <= 1e-6
    assert set(prepared.report.length_sources) <= {"release", "default_1000bp"}
    # without the table (shipped lengths) the scale differs: what the table fixes
    plain = bulkformer.prepare(counts_path, model, orientation="genes_by_samples")
    assert float(np.abs(plain.values - expected).max()) > 0.1
