"""Regenerate the shipped gene annotation in ``annotation/data/`` (rerunnable).

Sources (Debian packages, so the result is reproducible from a package registry):

* ``r-bioc-org.hs.eg.db`` (Bioconductor org.Hs.eg.db): Entrez gene ID, official
  symbol, NCBI gene type, Ensembl gene IDs and aliases / previous symbols, read from
  its SQLite file with :mod:`sqlite3`.
* ``r-bioc-genelendatabase`` (Bioconductor geneLenDataBase): transcript lengths of
  the UCSC ``hg19.ensGene`` track (Ensembl genes on GRCh37), read with ``Rscript``.
  A gene's length is the median length of its transcripts (the convention of goseq,
  which the database was built for).

Prerequisites: ``apt-get install r-base-core r-bioc-org.hs.eg.db r-bioc-genelendatabase``
(the runtime needs none of them: the generated tables ship with the package).

Usage::

    python python/bulkformer/annotation/build.py            # writes annotation/data/
    python python/bulkformer/annotation/build.py --check    # regenerate and compare

Outputs (gzip TSV, deterministic):

* ``genes.tsv.gz``: one row per (Ensembl gene, Entrez gene) pair, plus Ensembl genes
  with no Entrez partner (lengths still matter for TPM denominators) and Entrez genes
  with no Ensembl ID. Columns: ensembl_id, entrez_id, symbol, gene_type, length,
  vocabulary (1 when the row is the default-vocabulary gene).
* ``aliases.tsv.gz``: entrez_id, alias (aliases and previous symbols, NCBI synonyms).
* ``SOURCE.md``: package versions and counts.
"""
from __future__ import annotations

import argparse
import gzip
import io
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ORG_DB_DIR = Path("/usr/lib/R/site-library/org.Hs.eg.db")
ORG_DB_SQLITE = ORG_DB_DIR / "extdata" / "org.Hs.eg.sqlite"
GENELEN_DIR = Path("/usr/lib/R/site-library/geneLenDataBase")
GENELEN_TRACK = "hg19.ensGene"
ANNOTATION_VERSION = "1"  # bump when the derivation (not only the sources) changes; keep __init__.py in step
DATA_DIR = Path(__file__).resolve().parent / "data"


def _description_version(package_dir: Path) -> str:
    for line in (package_dir / "DESCRIPTION").read_text().splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no Version in {package_dir / 'DESCRIPTION'}")


def _debian_version(package: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_org_db(path: Path = ORG_DB_SQLITE) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Genes (entrez_id, symbol, gene_type), Ensembl pairs and aliases from org.Hs.eg.db."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: apt-get install r-bioc-org.hs.eg.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        genes = pd.read_sql_query(
            "SELECT g.gene_id AS entrez_id, i.symbol, t.gene_type FROM genes g "
            "JOIN gene_info i ON g._id = i._id LEFT JOIN genetype t ON g._id = t._id", connection)
        ensembl = pd.read_sql_query(
            "SELECT g.gene_id AS entrez_id, e.ensembl_id FROM ensembl e JOIN genes g ON g._id = e._id",
            connection)
        aliases = pd.read_sql_query(
            "SELECT g.gene_id AS entrez_id, a.alias_symbol AS alias FROM alias a JOIN genes g ON g._id = a._id",
            connection)
        metadata = dict(connection.execute("SELECT name, value FROM metadata").fetchall())
    genes["gene_type"] = genes["gene_type"].fillna("unknown")
    return genes, ensembl.drop_duplicates(), aliases.drop_duplicates(), metadata


def read_gene_lengths(track: str = GENELEN_TRACK) -> pd.Series:
    """Median transcript length (bp) per Ensembl gene from geneLenDataBase, via Rscript."""
    rdata = GENELEN_DIR / "data" / f"{track}.LENGTH.RData"
    if not rdata.exists():
        raise FileNotFoundError(f"{rdata} not found: apt-get install r-bioc-genelendatabase")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lengths.tsv"
        script = (f'e <- new.env(); load("{rdata}", envir = e); x <- get(ls(e)[1], envir = e); '
                  f'write.table(x[, c("Gene", "Transcript", "Length")], "{out}", sep = "\\t", '
                  'quote = FALSE, row.names = FALSE)')
        subprocess.run(["Rscript", "--vanilla", "-e", script], check=True)
        transcripts = pd.read_csv(out, sep="\t", dtype={"Gene": str, "Transcript": str, "Length": "int64"})
    transcripts["Gene"] = transcripts["Gene"].str.replace(r"\.\d+$", "", regex=True)
    lengths = transcripts.groupby("Gene")["Length"].median().round().astype("int64")
    lengths.index.name = "ensembl_id"
    return lengths


def choose_vocabulary(pairs: pd.DataFrame, genes: pd.DataFrame, lengths: pd.Series) -> pd.DataFrame:
    """One Ensembl ID per protein-coding Entrez gene, each Ensembl ID used once.

    Per gene, prefer an Ensembl ID that (1) belongs to this gene only, (2) has a
    length in the GRCh37 track (an established ID), (3) sorts first. An Ensembl ID
    chosen by several genes goes to the lowest Entrez ID (the older record).
    """
    coding = genes.loc[genes["gene_type"] == "protein-coding", ["entrez_id", "symbol"]]
    candidates = pairs.merge(coding, on="entrez_id")
    candidates = candidates[candidates["ensembl_id"].str.match(r"^ENSG\d{11}$")]
    partners = pairs.groupby("ensembl_id")["entrez_id"].nunique()
    candidates = candidates.assign(
        shared=candidates["ensembl_id"].map(partners).gt(1).astype(int),
        no_length=(~candidates["ensembl_id"].isin(lengths.index)).astype(int),
        entrez_number=candidates["entrez_id"].astype("int64"),
    )
    best = (candidates.sort_values(["entrez_number", "shared", "no_length", "ensembl_id"])
            .drop_duplicates("entrez_id"))
    best = best.sort_values(["ensembl_id", "entrez_number"]).drop_duplicates("ensembl_id")
    return best[["ensembl_id", "entrez_id"]]


def build_tables() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    genes, pairs, aliases, metadata = read_org_db()
    lengths = read_gene_lengths()
    vocabulary = choose_vocabulary(pairs, genes, lengths)

    paired = pairs.merge(genes, on="entrez_id", how="left")
    ensembl_only = pd.DataFrame({"ensembl_id": sorted(set(lengths.index) - set(pairs["ensembl_id"]))})
    entrez_only = genes[~genes["entrez_id"].isin(pairs["entrez_id"])]
    table = pd.concat([paired, ensembl_only, entrez_only], ignore_index=True)
    table["length"] = table["ensembl_id"].map(lengths).astype("Int64")
    key = set(zip(vocabulary["ensembl_id"], vocabulary["entrez_id"]))
    table["vocabulary"] = [int((e, z) in key) for e, z in zip(table["ensembl_id"], table["entrez_id"])]
    table["_entrez_number"] = pd.to_numeric(table["entrez_id"]).astype("Int64")
    table = (table.sort_values(["ensembl_id", "_entrez_number"], na_position="last")
             .drop(columns="_entrez_number").reset_index(drop=True))
    table = table[["ensembl_id", "entrez_id", "symbol", "gene_type", "length", "vocabulary"]]

    # aliases that are only the official symbol add nothing
    official = set(zip(genes["entrez_id"], genes["symbol"]))
    aliases = aliases[[(z, a) not in official for z, a in zip(aliases["entrez_id"], aliases["alias"])]]
    aliases = aliases.assign(_n=pd.to_numeric(aliases["entrez_id"])).sort_values(["_n", "alias"]).drop(columns="_n")

    info = {
        "org_db_version": _description_version(ORG_DB_DIR),
        "org_db_debian": _debian_version("r-bioc-org.hs.eg.db"),
        "genelen_version": _description_version(GENELEN_DIR),
        "genelen_debian": _debian_version("r-bioc-genelendatabase"),
        "entrez_date": metadata.get("EGSOURCEDATE", "?"),
        "ensembl_date": metadata.get("ENSOURCEDATE", "?"),
        "n_rows": len(table),
        "n_vocabulary": int(table["vocabulary"].sum()),
        "n_vocabulary_with_length": int(table.loc[table["vocabulary"] == 1, "length"].notna().sum()),
        "n_aliases": len(aliases),
    }
    return table, aliases.reset_index(drop=True), info


def _gzip_tsv(frame: pd.DataFrame) -> bytes:
    # mtime=0 and no file name: identical inputs give byte-identical files
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(frame.to_csv(sep="\t", index=False, lineterminator="\n").encode())
    return buffer.getvalue()


def _source_md(info: dict) -> str:
    return f"""# Shipped gene annotation (version {ANNOTATION_VERSION})

Generated by `python python/bulkformer/annotation/build.py`; do not edit by hand.

| what | source |
| --- | --- |
| Entrez IDs, symbols, gene types, Ensembl IDs, aliases | Bioconductor org.Hs.eg.db {info['org_db_version']} (Debian `r-bioc-org.hs.eg.db` {info['org_db_debian']}); Entrez Gene {info['entrez_date']}, Ensembl {info['ensembl_date']} |
| gene lengths | Bioconductor geneLenDataBase {info['genelen_version']} (Debian `r-bioc-genelendatabase` {info['genelen_debian']}), UCSC track `{GENELEN_TRACK}` (Ensembl genes, GRCh37) |

**Lengths**: the median length (bp, rounded) of each Ensembl gene's transcripts in
`{GENELEN_TRACK}.LENGTH` (the goseq convention). Ensembl genes absent from that GRCh37
track (newer genes) have no length; data preparation then uses the user's lengths, or
1,000 bp as the published BulkFormer code does. User-supplied lengths always win.
(`r-bioc-tcgabiolinksgui.data` was considered and not used: its GENCODE v36 gene table
gives genomic spans, introns included, not transcript lengths.)

**Default vocabulary** (`default_vocabulary()`): NCBI gene type `protein-coding`, one
Ensembl ID per Entrez gene (preferring an ID not shared with another gene, then one with
a GRCh37 length, then the first in sort order); an Ensembl ID claimed by several genes
goes to the lowest Entrez ID. Sorted by Ensembl ID.

| file | rows |
| --- | ---: |
| `genes.tsv.gz` (ensembl_id, entrez_id, symbol, gene_type, length, vocabulary) | {info['n_rows']:,} |
| vocabulary genes (`vocabulary == 1`) | {info['n_vocabulary']:,} ({info['n_vocabulary_with_length']:,} with a length) |
| `aliases.tsv.gz` (entrez_id, alias: NCBI synonyms incl. previous HGNC symbols) | {info['n_aliases']:,} |
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    args = parser.parse_args(argv)
    table, aliases, info = build_tables()
    outputs = {"genes.tsv.gz": _gzip_tsv(table), "aliases.tsv.gz": _gzip_tsv(aliases),
               "SOURCE.md": _source_md(info).encode()}
    if args.check:
        stale = [name for name, blob in outputs.items()
                 if not (args.out / name).exists() or (args.out / name).read_bytes() != blob]
        print("up to date" if not stale else f"stale: {', '.join(stale)}")
        return int(bool(stale))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, blob in outputs.items():
        tmp = args.out / f".{name}.tmp"
        tmp.write_bytes(blob)
        tmp.replace(args.out / name)
    print(f"wrote {', '.join(outputs)} to {args.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
